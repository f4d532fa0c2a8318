"""One inference worker: one generation at a time, interactive work first.

- `submit(fn, priority, key)` queues `fn(cancel)` and returns a concurrent Future.
- A newer job with the same `key` (e.g. "complete:<uri>") cancels the older one, queued or
  running; the running one stops at its next decoding step.
- Interactive jobs (priority 0) outrank batch jobs (explain/fix/generate). A running batch
  job calls `cancel.checkpoint()` at every step; the scheduler uses that hook to run queued
  interactive jobs right there, on the same thread, then lets the batch job continue.
- The asyncio event loop never runs a forward pass: jobs run on the worker thread.
- The worker survives anything a job or a future does: the awaiting side may cancel a
  future at any moment (every `$/cancelRequest`), so completing one tolerates a future that
  is already done, and the loop logs any exception that escapes a job's bookkeeping and goes on.

How many forward passes run at once is measured where they run (the backend), not here.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from wren.errors import GenerationCancelled, GenerationError
from wren.types import CancelToken

log = logging.getLogger(__name__)

INTERACTIVE = 0
BATCH = 1
BACKGROUND = 2


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    fn: Callable[[CancelToken], Any] = field(compare=False)
    cancel: CancelToken = field(compare=False)
    future: Future[Any] = field(compare=False)
    key: str | None = field(compare=False, default=None)


class Scheduler:
    def __init__(self, before_job: Callable[[int], None] | None = None) -> None:
        """`before_job(priority)` runs on the worker before each job (and again when a paused
        job resumes after nested ones): the composition root uses it to give interactive work
        more threads than batch and background work."""
        self._before_job = before_job
        self._queue: list[_Job] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._by_key: dict[str, _Job] = {}
        self._running: list[_Job] = []  # stack: a batch job with interactive jobs run inside it
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="wren-inference", daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[[CancelToken], Any], priority: int = INTERACTIVE, key: str | None = None
    ) -> tuple[Future[Any], CancelToken]:
        cancel = CancelToken()
        future: Future[Any] = Future()
        job = _Job(priority, next(self._seq), fn, cancel, future, key)
        with self._cond:
            if self._closed:
                _settle(future, error=GenerationCancelled("the server is shutting down"))
                return future, cancel
            if key is not None:
                old = self._by_key.get(key)
                if old is not None:
                    old.cancel.cancel("superseded by a newer request")
                self._by_key[key] = job
            heapq.heappush(self._queue, job)
            self._cond.notify()
        return future, cancel

    def cancel_background(self) -> None:
        """Real requests pre-empt speculative background work (prefill)."""
        with self._cond:
            for job in self._queue + self._running:
                if job.priority == BACKGROUND:
                    job.cancel.cancel("pre-empted")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for job in self._queue + self._running:
                job.cancel.cancel("the server is shutting down")
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until no job is running; after `close()` a running job
        stops at its next step, so this bounds how long shutting down takes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def _pop_urgent(self, below: int) -> _Job | None:
        with self._cond:
            if self._queue and self._queue[0].priority < below:
                return heapq.heappop(self._queue)
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                job = heapq.heappop(self._queue)
            try:
                self._run(job)
            except BaseException:  # the worker must outlive any job; nothing else runs them
                log.exception("inference worker: a job's bookkeeping failed; going on")
                _settle(job.future, error=GenerationError("internal error in the inference worker"))

    def _run(self, job: _Job) -> None:
        if job.cancel.cancelled or not job.future.set_running_or_notify_cancel():
            # Cancelled before it started (by a newer request, or by the awaiting side, which
            # may also do so right now: `_settle` tolerates a future that is already done).
            _settle(job.future, error=GenerationCancelled(job.cancel.reason))
            self._release_key(job)
            return
        if job.priority > INTERACTIVE:
            job.cancel.checkpoint = lambda: self._run_urgent(job.priority)
        self._running.append(job)
        self._prepare(job.priority)
        try:
            result = job.fn(job.cancel)
        except BaseException as err:  # delivered to the awaiting request
            _settle(job.future, error=err)
        else:
            _settle(job.future, result=result)
        finally:
            self._running.remove(job)
            if self._running:  # a paused job goes on with its own settings
                self._prepare(self._running[-1].priority)
            self._release_key(job)
            with self._cond:
                self._cond.notify_all()  # wake `wait_idle`

    def _prepare(self, priority: int) -> None:
        if self._before_job is None:
            return
        try:
            self._before_job(priority)
        except Exception:  # a failing hook must not cost the job
            log.exception("before_job hook failed")

    def _run_urgent(self, below: int) -> None:
        while (job := self._pop_urgent(below)) is not None:
            try:
                self._run(job)
            except BaseException:  # the paused job goes on; the nested one's future is settled
                log.exception("inference worker: a nested job's bookkeeping failed; going on")
                _settle(job.future, error=GenerationError("internal error in the inference worker"))

    def _release_key(self, job: _Job) -> None:
        if job.key is not None:
            with self._cond:
                if self._by_key.get(job.key) is job:
                    del self._by_key[job.key]


def _settle(future: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Complete `future` unless it already is (the awaiting side may cancel it at any moment:
    between a `done()` check and the set, `set_*` would raise InvalidStateError)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
