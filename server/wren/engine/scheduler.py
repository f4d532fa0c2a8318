"""One inference worker: one generation at a time, interactive work first.

- `submit(fn, priority, key)` queues `fn(cancel)` and returns a concurrent Future.
- A newer job with the same `key` (e.g. "complete:<uri>") cancels the older one, queued or
  running; the running one stops at its next decoding step.
- Interactive jobs (priority 0) outrank batch jobs (explain/fix/generate). A running batch
  job calls `cancel.checkpoint()` at every step; the scheduler uses that hook to run queued
  interactive jobs right there, on the same thread, then lets the batch job continue.
- The asyncio event loop never runs a forward pass: jobs run on the worker thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from wren.engine.types import CancelToken
from wren.errors import GenerationCancelled

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
    def __init__(self) -> None:
        self._queue: list[_Job] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._by_key: dict[str, _Job] = {}
        self._running: list[_Job] = []  # stack: a batch job with interactive jobs run inside it
        self._closed = False
        self.max_concurrent_seen = 0  # for tests: generations running at the same time
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
                future.set_exception(GenerationCancelled("the server is shutting down"))
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
            self._run(job)

    def _run(self, job: _Job) -> None:
        if job.cancel.cancelled or not job.future.set_running_or_notify_cancel():
            if not job.future.done():
                job.future.set_exception(GenerationCancelled(job.cancel.reason))
            self._release_key(job)
            return
        if job.priority > INTERACTIVE:
            job.cancel.checkpoint = lambda: self._run_urgent(job.priority)
        self._running.append(job)
        self.max_concurrent_seen = max(self.max_concurrent_seen, self._generating())
        try:
            result = job.fn(job.cancel)
        except BaseException as err:  # delivered to the awaiting request
            job.future.set_exception(err)
        else:
            job.future.set_result(result)
        finally:
            self._running.remove(job)
            self._release_key(job)
            with self._cond:
                self._cond.notify_all()  # wake `wait_idle`

    def _generating(self) -> int:
        # Nested interactive jobs run while the batch job is paused at a checkpoint.
        return 1 if self._running else 0

    def _run_urgent(self, below: int) -> None:
        while (job := self._pop_urgent(below)) is not None:
            self._run(job)

    def _release_key(self, job: _Job) -> None:
        if job.key is not None:
            with self._cond:
                if self._by_key.get(job.key) is job:
                    del self._by_key[job.key]
