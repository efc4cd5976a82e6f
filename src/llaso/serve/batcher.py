"""Dynamic batching: one worker thread owns the model; requests queue up and run together.

The worker takes the oldest waiting request, then gathers more until it has ``max_batch`` or the oldest
has waited ``max_wait`` seconds (counted from its arrival, so requests that queued while the model was
busy go at once), and hands the batch to ``run`` in one call. Each request gets a
`concurrent.futures.Future`; the event loop awaits it (`asyncio.wrap_future`) and never blocks on the model.
A request whose future was cancelled before its batch ran (its client went away) is dropped from the
batch. `close` refuses new requests, lets the worker finish every request already queued, and joins it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Refused(RuntimeError):
    """The batcher takes no request now (closing, or its queue is full)."""


@dataclass
class _Job(Generic[T, R]):
    item: T
    future: Future[R] = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


_STOP: Any = object()


class Batcher(Generic[T, R]):
    def __init__(
        self, run: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 8, max_wait: float = 0.01,
        max_queue: int = 256,
    ) -> None:  # fmt: skip
        self._run, self.max_batch, self.max_wait, self.max_queue = run, max_batch, max_wait, max_queue
        self._queue: queue.Queue[_Job[T, R]] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._waiting = 0  # jobs queued and not yet taken by the worker
        self.batch_sizes: Counter[int] = Counter()  # how many batches of each size ran
        self.dropped = 0  # jobs cancelled before their batch ran
        self._thread = threading.Thread(target=self._loop, name="llaso-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        job: _Job[T, R] = _Job(item)
        with self._lock:
            if self._closed:
                raise Refused("the server is shutting down")
            if self._waiting >= self.max_queue:
                raise Refused(f"{self._waiting} requests are waiting for the model already")
            self._waiting += 1
            self._queue.put(job)
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests; the worker runs those queued, then ends."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            sizes = dict(sorted(self.batch_sizes.items()))
            return {
                "batches": sum(sizes.values()),
                "requests": sum(k * v for k, v in sizes.items()),
                "batch_sizes": {str(k): v for k, v in sizes.items()},
                "max_batch_size": max(sizes, default=0),
                "dropped": self.dropped,
                "waiting": self._waiting,
            }

    # -- the worker ---------------------------------------------------------------------------------------

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            jobs, stop = self._gather(first)
            self._execute(jobs)

    def _gather(self, first: _Job[T, R]) -> tuple[list[_Job[T, R]], bool]:
        """The batch that starts with ``first``; True when the stop marker came (nothing follows it)."""
        jobs = [first]
        deadline = first.arrived + self.max_wait
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _execute(self, jobs: list[_Job[T, R]]) -> None:
        with self._lock:
            self._waiting -= len(jobs)
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        with self._lock:
            self.dropped += len(jobs) - len(live)
            if live:
                self.batch_sizes[len(live)] += 1
        if not live:
            return
        log.debug("batch of %d request(s)", len(live))
        try:
            results = list(self._run([j.item for j in live]))
            if len(results) != len(live):
                raise RuntimeError(f"the batch gave {len(results)} results for {len(live)} requests")
        except (
            Exception
        ) as e:  # the model failed (out of memory, a bug): these requests' 500, not the server's end
            log.exception("a batch of %d request(s) failed", len(live))
            for j in live:
                j.future.set_exception(e)
            return
        for j, r in zip(live, results, strict=True):
            j.future.set_result(r)
