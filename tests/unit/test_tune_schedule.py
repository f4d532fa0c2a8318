"""`wren tune`'s learning rate (train.learning_rate_at): a warm-up, then a cosine decay over the
run to a tenth, so the last steps of a time-boxed run settle instead of stopping mid-stride."""

from __future__ import annotations

import itertools

import pytest

from wren.model.tune.train import FINAL_LR_FRACTION, WARMUP_STEPS, learning_rate_at


def test_the_rate_warms_up_over_the_first_steps() -> None:
    rates = [learning_rate_at(1.0, step, 0.0) for step in range(WARMUP_STEPS + 2)]
    assert rates[0] == pytest.approx(1 / WARMUP_STEPS)
    assert rates == sorted(rates)
    assert rates[WARMUP_STEPS - 1] == rates[WARMUP_STEPS] == pytest.approx(1.0)


def test_the_rate_decays_to_a_tenth_by_the_end_of_the_run() -> None:
    step = WARMUP_STEPS * 10
    rates = [learning_rate_at(3e-4, step, done / 10) for done in range(11)]
    assert rates[0] == pytest.approx(3e-4)
    assert all(a > b for a, b in itertools.pairwise(rates))
    assert rates[5] == pytest.approx(3e-4 * (1 + FINAL_LR_FRACTION) / 2)
    assert rates[-1] == pytest.approx(3e-4 * FINAL_LR_FRACTION)
    assert learning_rate_at(3e-4, step, 1.7) == rates[-1]  # past the end: held at the floor
