"""The inference worker: supersession, priorities, cancellation, one job at a time, and a
worker that survives whatever a job or an awaiting side does."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from wren.engine import scheduler as scheduler_module
from wren.engine.scheduler import BACKGROUND, BATCH, INTERACTIVE, Scheduler
from wren.errors import GenerationCancelled
from wren.types import CancelToken


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


# -- the worker survives (watchdog) ------------------------------------------------------


def assert_worker_still_runs_jobs(sched: Scheduler) -> None:
    """A later, ordinary job still runs to completion (the worker thread is alive)."""
    later, _ = sched.submit(lambda c: "still serving", INTERACTIVE)
    assert later.result(5) == "still serving"
    assert sched._thread.is_alive()


class CancelledRightAfterTheCheck(Future):  # type: ignore[type-arg]
    """The awaiting side cancels the future right after the worker looked at it: `done()`
    answers False, and by the time the worker completes the future, it is cancelled."""

    def done(self) -> bool:
        was = super().done()
        if not was and self._state == "PENDING":  # type: ignore[attr-defined]
            self.cancel()
        return was


def test_a_future_cancelled_between_check_and_set_does_not_kill_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sched = Scheduler()
    gate = threading.Event()
    sched.submit(lambda c: gate.wait(5), INTERACTIVE)
    monkeypatch.setattr(scheduler_module, "Future", CancelledRightAfterTheCheck)
    racy, token = sched.submit(lambda c: "never", INTERACTIVE, key="doc")
    monkeypatch.setattr(scheduler_module, "Future", Future)
    token.cancel("superseded by a newer request")  # takes the cancelled-job branch
    gate.set()
    with pytest.raises(BaseException):  # noqa: B017 - cancelled or GenerationCancelled
        racy.result(5)
    assert_worker_still_runs_jobs(sched)
    sched.close()


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError])
def test_a_job_raising_any_base_exception_leaves_the_worker_running(
    error: type[BaseException],
) -> None:
    sched = Scheduler()

    def job(cancel: CancelToken) -> None:
        raise error("from the job")

    fut, _ = sched.submit(job, BATCH)
    with pytest.raises(error):
        fut.result(5)
    assert_worker_still_runs_jobs(sched)
    sched.close()


def test_failing_bookkeeping_is_logged_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sched = Scheduler()
    real = sched._release_key
    calls = 0

    def broken_once(job: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bookkeeping bug")
        real(job)

    monkeypatch.setattr(sched, "_release_key", broken_once)
    first, _ = sched.submit(lambda c: "first", INTERACTIVE, key="k")
    assert first.result(5) == "first"  # settled before the bookkeeping failed
    assert_worker_still_runs_jobs(sched)
    assert "bookkeeping failed" in caplog.text
    sched.close()


def test_a_nested_job_cancelled_by_its_awaiting_side_does_not_end_the_batch_job() -> None:
    sched = Scheduler()
    started = threading.Event()
    queued = threading.Event()

    def batch(cancel: CancelToken) -> str:
        started.set()
        queued.wait(5)
        for _ in range(3):
            cancel.raise_if_cancelled()  # runs the queued interactive jobs right here
        return "batch"

    b, _ = sched.submit(batch, BATCH)
    started.wait(5)
    nested, _ = sched.submit(lambda c: "nested", INTERACTIVE)
    nested.cancel()  # the awaiting side gave up before it ran
    after, _ = sched.submit(lambda c: "after", INTERACTIVE)
    queued.set()
    assert b.result(5) == "batch"
    assert after.result(5) == "after"
    assert nested.cancelled()
    assert_worker_still_runs_jobs(sched)
    sched.close()


# -- one forward pass at a time, measured where the passes run ---------------------------


class CountingModel:
    """A stand-in forward pass that counts how many run at the same moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.passes = 0

    def forward(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.passes += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.002)  # long enough for another thread to overlap, if one could
        finally:
            with self._lock:
                self.in_flight -= 1


def decoding_job(model: CountingModel, steps: int) -> Callable[[CancelToken], int]:
    def job(cancel: CancelToken) -> int:
        for _ in range(steps):
            cancel.raise_if_cancelled()  # a checkpoint between passes, as the decoder has
            model.forward()
        return steps

    return job


def test_the_in_flight_count_sees_two_passes_run_at_once() -> None:
    """The measurement itself can fail: two jobs run side by side (no scheduler) show 2."""
    model = CountingModel()
    threads = [
        threading.Thread(target=decoding_job(model, 20), args=(CancelToken(),)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert model.peak == 2


def test_never_two_forward_passes_at_once_with_nested_priorities() -> None:
    """Interactive jobs run inside batch checkpoints, batch inside background ones: still one
    forward pass at a time."""
    sched = Scheduler()
    model = CountingModel()
    futures = [sched.submit(decoding_job(model, 30), BACKGROUND, key="prefill:a")[0]]
    time.sleep(0.01)
    for i in range(6):
        futures.append(sched.submit(decoding_job(model, 10), BATCH)[0])
        futures.append(sched.submit(decoding_job(model, 5), INTERACTIVE, key=f"c{i % 2}")[0])
        time.sleep(0.005)
    for fut in futures:
        with contextlib.suppress(GenerationCancelled):  # superseded by a newer request
            fut.result(10)
    assert model.passes > 60
    assert model.peak == 1
    sched.close()


def test_before_job_hook_sees_each_jobs_priority_and_the_resume() -> None:
    """The hook runs before every job, and again when a batch job resumes after a nested
    interactive one (so thread settings follow the job that runs)."""
    seen: list[int] = []
    sched = Scheduler(before_job=seen.append)
    started = threading.Event()
    release = threading.Event()

    def batch(cancel: CancelToken) -> str:
        started.set()
        release.wait(10)
        cancel.checkpoint()  # the interactive job runs here
        return "batch"

    fut_b, _ = sched.submit(batch, BATCH)
    assert started.wait(10)
    fut_i, _ = sched.submit(lambda c: "interactive", INTERACTIVE)
    release.set()
    assert fut_b.result(10) == "batch" and fut_i.result(10) == "interactive"
    assert seen == [BATCH, INTERACTIVE, BATCH]
    sched.close()


def test_a_failing_before_job_hook_costs_no_job() -> None:
    def hook(priority: int) -> None:
        raise RuntimeError("broken hook")

    sched = Scheduler(before_job=hook)
    fut, _ = sched.submit(lambda c: 42, INTERACTIVE)
    assert fut.result(10) == 42
    sched.close()
