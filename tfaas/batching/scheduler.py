"""``BatchScheduler``: queues of tasks grouped into batches, run by a few batch threads.

How it works, in TF Serving's terms (its ``SharedBatchScheduler``):

- Every compatible kind of task (for tfaas: one signature, with the same dtypes and inner dims) has a
  queue; a batch only ever holds tasks of one queue, so they can always be joined.
- A queue is a deque of batches: the back one is open, the others are closed. A task joins the open
  batch when it fits in ``max_batch_size`` rows; otherwise that batch closes and a new one opens. A
  queue that already holds ``max_enqueued_batches`` batches refuses the task: ``Unavailable`` (503).
- A batch thread takes the front batch of a queue (round robin over the queues) when it is closed,
  or once it has waited ``batch_timeout_micros`` since its first task. With the default timeout of 0
  a free thread takes whatever has arrived at once, and tasks batch up while every thread is busy.
- ``close()`` refuses new tasks, lets the threads finish every queued batch, and joins them; that is
  what unloading a version waits for, so no queued request is lost.

The scheduler knows nothing of tensors: ``process`` gets a batch's tasks and must call ``finish`` or
``fail`` on each; whatever it leaves unfinished fails with the exception it raised.
"""

from __future__ import annotations

import _thread
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from tfaas.batching.parameters import BatchingParameters
from tfaas.errors import Unavailable

log = logging.getLogger("tfaas.batching")


class Task:
    """One request's share of a batch: ``size`` rows of ``payload``.

    The request waits for it in one of two ways: a thread blocks in :meth:`wait`, or an event loop
    passes ``on_done``, which the batch thread calls once the task has its result (then :meth:`wait`
    returns at once).
    """

    __slots__ = ("size", "payload", "enqueued", "started", "done", "_signal", "_result", "_error", "_on_done")

    def __init__(self, size: int, payload: Any, on_done: Callable[[Task], None] | None = None) -> None:
        self.size = size
        self.payload = payload
        self.enqueued = 0.0
        self.started = 0.0  # NOTE: when its batch began to run (perf_counter), for the queue-wait metric
        self.done = False
        self._signal = _thread.allocate_lock()  # NOTE: the cheapest one-shot signal CPython has
        self._signal.acquire()
        self._result: Any = None
        self._error: BaseException | None = None
        self._on_done = on_done

    def finish(self, result: Any) -> None:
        """Hand ``result`` to the waiting request (once)."""
        self._result = result
        self._settle()

    def fail(self, error: BaseException) -> None:
        """Make the waiting request raise ``error`` (once)."""
        self._error = error
        self._settle()

    def _settle(self) -> None:
        self.done = True
        self._signal.release()
        if self._on_done is not None:
            try:
                self._on_done(self)
            except Exception:  # NOTE: e.g. the waiting loop closed; the batch's other tasks still get theirs
                log.exception("Handing a batched result to its request failed")

    def wait(self) -> Any:
        """Block until the task's batch has run; its result, or the error raised for it."""
        self._signal.acquire()
        if self._error is not None:
            raise self._error
        return self._result


@dataclass(eq=False)
class _Batch:
    tasks: list[Task] = field(default_factory=list)
    size: int = 0
    opened: float = 0.0
    closed: bool = False


class BatchScheduler:
    """Queues and batch threads for one servable; see the module docstring."""

    def __init__(
        self,
        parameters: BatchingParameters,
        process: Callable[[list[Task]], None],
        name: str,
    ) -> None:
        self.parameters = parameters
        self._process = process
        self._queues: dict[Hashable, deque[_Batch]] = {}
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run_batches, name=f"batch-{name}-{i}", daemon=True)
            for i in range(parameters.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def schedule(self, key: Hashable, task: Task) -> None:
        """Queue ``task`` on queue ``key``; ``Unavailable`` when that queue is full or the scheduler closed."""
        params = self.parameters
        with self._cond:
            if self._closing:
                raise Unavailable("The batch scheduler is shutting down")
            batches = self._queues.setdefault(key, deque())
            batch = batches[-1] if batches else None
            if batch is None or batch.closed or batch.size + task.size > params.max_batch_size:
                if len(batches) >= params.max_enqueued_batches:
                    raise Unavailable("The batch scheduling queue to which this task was submitted is full")
                if batch is not None:
                    batch.closed = True
                batch = _Batch(opened=time.monotonic())
                batches.append(batch)
            task.enqueued = time.perf_counter()
            batch.tasks.append(task)
            batch.size += task.size
            if batch.size >= params.max_batch_size:
                batch.closed = True
            self._cond.notify()

    def queued_tasks(self) -> int:
        """Tasks waiting for a batch thread: what a test waits on before it lets a held batch go."""
        with self._cond:
            return sum(len(batch.tasks) for batches in self._queues.values() for batch in batches)

    def close(self) -> None:
        """Refuse new tasks, run every queued batch, and stop the threads."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _run_batches(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> _Batch | None:
        """The next batch to run, waiting as long as none is ready; None once closed and drained."""
        timeout = self.parameters.batch_timeout_seconds
        with self._cond:
            while True:
                now = time.monotonic()
                wait: float | None = None
                for key, batches in list(self._queues.items()):
                    front = batches[0]
                    due = front.opened + timeout
                    if front.closed or due <= now or self._closing:
                        batches.popleft()
                        del self._queues[key]  # NOTE: re-inserted at the end: round robin over the queues
                        if batches:
                            self._queues[key] = batches
                        return front
                    wait = due - now if wait is None else min(wait, due - now)
                if self._closing:
                    return None
                self._cond.wait(wait)

    def _run(self, batch: _Batch) -> None:
        started = time.perf_counter()
        for task in batch.tasks:
            task.started = started
        try:
            self._process(batch.tasks)
        except BaseException as error:  # NOTE: whatever went wrong, no request thread may wait forever
            log.exception("A batch of %d rows failed", batch.size)
            for task in batch.tasks:
                if not task.done:
                    task.fail(error)
