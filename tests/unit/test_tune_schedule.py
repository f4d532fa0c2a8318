"""`wren tune`'s schedule: the learning rate (train.learning_rate_at), a warm-up, then a cosine
decay over the run to a tenth, so the last steps of a time-boxed run settle instead of stopping
mid-stride; and how often held-out scoring interrupts training (train.eval_interval)."""

from __future__ import annotations

import itertools

import pytest

from wren.model.tune.train import (
    FINAL_LR_FRACTION,
    WARMUP_STEPS,
    eval_interval,
    learning_rate_at,
)


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


@pytest.mark.parametrize(
    ("budget_s", "scoring_s"), [(60, 5), (300, 25), (600, 25), (900, 35), (3600, 40), (900, 400)]
)
def test_scoring_takes_a_small_share_of_a_run(budget_s: float, scoring_s: float) -> None:
    interval = eval_interval(budget_s, scoring_s)
    assert budget_s / interval <= 4  # scorings during the run (plus the one at its end)
    assert scoring_s / interval <= 1 / 6  # at least six seconds of training per second scoring
