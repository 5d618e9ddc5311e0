"""Where a request's time goes: parse, queue, run, encode — collected per request.

The transport times the stages it runs (parse, run, encode); the batcher, which runs on the request
thread until it hands the request to a batch, adds the time the request waited for its batch
(``queue``). :func:`take` returns what one request collected, for the metrics and, when tracing is on,
for its spans: then each stage's interval (start and end) is kept too. The collection lives in a context
variable: per thread for a request served on a pool thread, per asyncio task for one served on the
event loop (each request is a task of its own there).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

Interval = tuple[str, float, float]
"""A stage, and when it started and ended (``time.perf_counter()`` seconds)."""


@dataclass(slots=True)
class Stages:
    """What one request collected: seconds per stage, and each stage's interval when asked for."""

    seconds: dict[str, float]
    intervals: list[Interval] | None


_current: ContextVar[Stages | None] = ContextVar("tfaas_request_stages", default=None)


def begin(intervals: bool = False) -> None:
    """Start collecting for the request the calling thread (or asyncio task) serves; ``intervals``: keep
    each stage's start and end as well (for tracing)."""
    _current.set(Stages({}, [] if intervals else None))


def add(stage: str, seconds: float, ended: float | None = None) -> None:
    """Add ``seconds`` to ``stage`` of the current request (ignored outside a request); the stage ended
    at ``ended`` (``perf_counter()``; by default now)."""
    stages = _current.get()
    if stages is not None:
        stages.seconds[stage] = stages.seconds.get(stage, 0.0) + seconds
        if stages.intervals is not None:
            end = time.perf_counter() if ended is None else ended
            stages.intervals.append((stage, end - seconds, end))


def timed(stage: str) -> Timed:
    """Time the ``with`` body as ``stage``."""
    return Timed(stage)


class Timed:
    """The context manager of :func:`timed` (NOTE: a class: a generator's context manager costs several times
    as much, and a request enters two or three)."""

    __slots__ = ("_stage", "_started")

    def __init__(self, stage: str) -> None:
        self._stage = stage
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        add(self._stage, time.perf_counter() - self._started)


def take() -> Stages:
    """The stages the current request collected, and stop collecting.

    ``run`` is timed around the whole model call, which includes the wait for a batch; the wait is
    reported as ``queue`` and taken out of ``run``, so the stages add up to the request's work. (The
    intervals are as timed: a ``run`` interval holds the ``queue`` one.)
    """
    stages = _current.get() or Stages({}, None)
    _current.set(None)
    seconds = stages.seconds
    if "queue" in seconds and "run" in seconds:
        seconds["run"] = max(seconds["run"] - seconds["queue"], 0.0)
    return stages
