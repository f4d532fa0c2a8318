"""When `wren tune` enables the adapter it wrote (train.verdict): only when it lowered the
held-out loss and did not lower next-token exact match; otherwise kept, not used, and why."""

from __future__ import annotations

from wren.model.tune.train import verdict


def test_an_adapter_that_does_better_on_held_out_code_is_enabled() -> None:
    enabled, reason = verdict(2.10, 1.96, 0.584, 0.603)
    assert enabled
    assert "2.100 → 1.960" in reason and "58.4% → 60.3%" in reason


def test_a_lower_loss_with_fewer_exact_tokens_is_not_enabled() -> None:
    enabled, reason = verdict(2.10, 2.05, 0.60, 0.59)
    assert not enabled
    assert "lowered next-token exact match 60.0% → 59.0%" in reason
    assert "not used" in reason


def test_a_loss_that_did_not_go_down_is_not_enabled() -> None:
    for after in (2.10, 2.30):
        enabled, reason = verdict(2.10, after, 0.50, 0.55)
        assert not enabled
        assert "did not lower held-out loss" in reason and "not used" in reason
