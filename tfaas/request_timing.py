"""Where a request's time goes: parse, queue, run, encode — collected per request.

The transport times the stages it runs (parse, run, encode); the batcher, which runs on the request
thread until it hands the request to a batch, adds the time the request waited for its batch
(``queue``). :func:`take` returns what one request collected, for the metrics. The collection lives in
a context variable: per thread for a request served on a pool thread, per asyncio task for one served
on the event loop (each request is a task of its own there).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_seconds: ContextVar[dict[str, float] | None] = ContextVar("tfaas_request_seconds", default=None)


def begin() -> None:
    """Start collecting for the request the calling thread (or asyncio task) serves."""
    _seconds.set({})


def add(stage: str, seconds: float) -> None:
    """Add ``seconds`` to ``stage`` of the current request (ignored outside a request)."""
    collected = _seconds.get()
    if collected is not None:
        collected[stage] = collected.get(stage, 0.0) + seconds


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Time the ``with`` body as ``stage``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        add(stage, time.perf_counter() - started)


def take() -> dict[str, float]:
    """The stages the current request collected, and stop collecting.

    ``run`` is timed around the whole model call, which includes the wait for a batch; the wait is
    reported as ``queue`` and taken out of ``run``, so the stages add up to the request's work.
    """
    collected = _seconds.get() or {}
    _seconds.set(None)
    if "queue" in collected and "run" in collected:
        collected["run"] = max(collected["run"] - collected["queue"], 0.0)
    return collected
