"""The inference worker: supersession, priorities, cancellation, one job at a time."""

from __future__ import annotations

import threading
import time

import pytest

from wren.engine.scheduler import BATCH, INTERACTIVE, Scheduler
from wren.engine.types import CancelToken
from wren.errors import GenerationCancelled


def steps(n: int, log: list[str], name: str, active: list[int], peak: list[int]):  # type: ignore[no-untyped-def]
    def job(cancel: CancelToken) -> str:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        try:
            for _ in range(n):
                cancel.raise_if_cancelled()
                time.sleep(0.002)
            log.append(name)
            return name
        finally:
            active[0] -= 1

    return job


def test_newer_job_with_same_key_cancels_older() -> None:
    sched = Scheduler()
    log: list[str] = []
    active, peak = [0], [0]
    gate = threading.Event()
    _blocker, _ = sched.submit(lambda c: gate.wait(5), INTERACTIVE)
    old, _ = sched.submit(steps(5, log, "old", active, peak), INTERACTIVE, key="doc")
    new, _ = sched.submit(steps(5, log, "new", active, peak), INTERACTIVE, key="doc")
    gate.set()
    assert new.result(5) == "new"
    with pytest.raises(GenerationCancelled):
        old.result(5)
    assert log == ["new"]
    sched.close()


def test_running_job_stops_at_next_step_when_cancelled() -> None:
    sched = Scheduler()
    started = threading.Event()

    def long(cancel: CancelToken) -> None:
        started.set()
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.001)

    fut, token = sched.submit(long, BATCH)
    started.wait(5)
    token.cancel()
    with pytest.raises(GenerationCancelled):
        fut.result(5)
    sched.close()


def test_interactive_runs_inside_a_batch_checkpoint() -> None:
    sched = Scheduler()
    log: list[str] = []
    active, peak = [0], [0]
    started = threading.Event()

    def batch(cancel: CancelToken) -> str:
        started.set()
        for _ in range(200):
            cancel.raise_if_cancelled()
            time.sleep(0.002)
        log.append("batch")
        return "batch"

    b, _ = sched.submit(batch, BATCH)
    started.wait(5)
    i, _ = sched.submit(steps(3, log, "interactive", active, peak), INTERACTIVE)
    assert i.result(5) == "interactive"
    assert not b.done()  # the batch job was paused, not finished or cancelled
    assert b.result(5) == "batch"
    assert log == ["interactive", "batch"]
    sched.close()


def test_close_cancels_queued_work() -> None:
    sched = Scheduler()
    gate = threading.Event()
    sched.submit(lambda c: gate.wait(5), INTERACTIVE)
    queued, _ = sched.submit(lambda c: c.raise_if_cancelled(), INTERACTIVE)
    sched.close()
    gate.set()
    with pytest.raises(GenerationCancelled):
        queued.result(5)
