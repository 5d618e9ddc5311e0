"""``RequestTally``: the request metrics of one process, written a pass at a time instead of a series at a time.

Every answered request counts in two counters and, when it succeeded, in six histograms (tfaas's and TF
Serving's latency, and its stages). prometheus_client writes each observation on its own: in multi-process
mode a lock, a pid check and an mmap write for a histogram's sum and again for its bucket, the bucket found by
a linear search. That is about 22 µs a request, 7–9% of a batch-1 predict's CPU on the event loop
(perf/RESULTS.md). The tally keeps the requests that end while others are still under way in this process and
writes them together, each series they touched once: a counter by its count, a histogram by its sum and the
count of every bucket hit (found by bisection).

When the writes happen, so that a scrape never misses an answered request for long:

- at once, before its answer is sent, when the request that ends was the last one under way in this process.
  A client that waited for all its answers before it scrapes (every test does) finds all of them counted;
- in the ending request's own thread once :data:`MAX_WAITING` requests wait;
- else by the tally's thread, :data:`MAX_DELAY_SECONDS` after the first of them ended;
- and at shutdown (:meth:`RequestTally.flush`).

Passes are written one at a time, so when the last request's pass is written every earlier one is too.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

if TYPE_CHECKING:
    from tfaas.metrics import Metrics

log = logging.getLogger("tfaas.metrics")

MAX_WAITING = 256
"""Ended requests written by the request that makes them this many, whatever is still under way."""
MAX_DELAY_SECONDS = 0.25
"""The longest an ended request waits for its metrics to be written while others are under way."""


class Observation(NamedTuple):
    """One answered request, as the metrics count it (see ``Metrics.observe_request``); ``stages`` is
    where its time went, for a successful one."""

    model: str
    version: str
    api: str
    entrypoint: str
    http_status: int
    code: str
    seconds: float
    stages: Mapping[str, float]


_GroupKey = tuple[str, str, str, str, int, str]
"""The labels requests share when they count in the same series: model, version, API, entrypoint, HTTP status, code."""


class _Series(NamedTuple):
    """The series one group of requests counts in (the latency histograms only for OK)."""

    requests: Any
    tf_request_count: Any
    seconds: Any
    tf_latency: Any

    @classmethod
    def of(cls, metrics: Metrics, key: _GroupKey) -> _Series:
        model, version, api, entrypoint, status, code = key
        ok = code == "OK"
        return cls(
            metrics.child(metrics.requests, model, version, api, str(status)),
            metrics.child(metrics.tf_request_count, model, code),
            metrics.child(metrics.request_seconds, model, api) if ok else None,
            metrics.child(metrics.tf_request_latency, model, api, entrypoint) if ok else None,
        )


class RequestTally:
    """The ended requests of this process not yet written to ``metrics``; see the module docstring."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # NOTE: one pass at a time (see the module docstring)
        self._under_way = 0
        self._waiting: list[Observation] = []
        self._wake = threading.Condition(self._lock)
        self._thread_pid = 0  # NOTE: the process that started the thread; a forked child starts its own
        self._series: dict[_GroupKey, _Series] = {}

    def started(self) -> None:
        """A request is under way."""
        with self._lock:
            self._under_way += 1

    def ended(self, observation: Observation) -> None:
        """The request counted by :meth:`started` was answered: write it now, with those waiting, or later
        (see the module docstring)."""
        with self._lock:
            self._under_way -= 1
            self._waiting.append(observation)
            now = self._under_way <= 0 or len(self._waiting) >= MAX_WAITING
            if not now and len(self._waiting) == 1:
                self._ensure_thread()
                self._wake.notify()
        if now:
            self.flush()

    def flush(self) -> None:
        """Write every ended request now."""
        with self._writing:
            with self._lock:
                waiting, self._waiting = self._waiting, []
            if waiting:
                try:
                    self.write(waiting)
                except Exception:  # NOTE: metrics must never fail a request that has been answered
                    log.exception("Recording request metrics failed")

    def write(self, observations: list[Observation]) -> None:
        """Add ``observations`` to their series now, each series written once."""
        groups: dict[_GroupKey, list[Observation]] = {}
        for o in observations:
            groups.setdefault((o.model, o.version, o.api, o.entrypoint, o.http_status, o.code), []).append(o)
        for key, group in groups.items():
            series = self._series.get(key) or self._series.setdefault(key, _Series.of(self._metrics, key))
            series.requests.inc(len(group))
            series.tf_request_count.inc(len(group))
            if series.seconds is None or series.tf_latency is None:
                continue  # NOTE: a request that failed is counted, not timed
            seconds = [o.seconds for o in group]
            _observe_all(series.seconds, seconds)
            _observe_all(series.tf_latency, [s * 1e6 for s in seconds])
            stages: dict[str, list[float]] = {}
            for o in group:
                for stage, value in o.stages.items():
                    stages.setdefault(stage, []).append(value)
            for stage, values in stages.items():
                _observe_all(self._metrics.child(self._metrics.request_stage_seconds, key[0], key[2], stage), values)

    def _ensure_thread(self) -> None:
        """Start the thread that writes late passes, once per process (called with the lock held)."""
        if self._thread_pid != os.getpid():
            self._thread_pid = os.getpid()
            threading.Thread(target=self._write_late, name="tfaas-request-tally", daemon=True).start()

    def _write_late(self) -> None:
        while True:
            with self._lock:
                while not self._waiting:
                    self._wake.wait()
            time.sleep(MAX_DELAY_SECONDS)
            self.flush()


def _observe_all(histogram: Any, observed: list[float]) -> None:
    """``histogram.observe(v)`` for every ``v`` of ``observed``, with one write for the sum and one per bucket hit.

    NOTE: prometheus_client has no call for this; it reads the members its ``observe`` uses (``_sum``,
    ``_buckets``, ``_upper_bounds``, the same since its first releases); tests/test_request_tally.py compares
    the result with ``observe``'s, so a change there fails the tests, not a server.
    """
    bounds = histogram._upper_bounds
    histogram._sum.inc(sum(observed))
    hits: dict[int, int] = {}
    for value in observed:
        bucket = bisect.bisect_left(bounds, value)
        hits[bucket] = hits.get(bucket, 0) + 1
    for bucket, count in hits.items():
        histogram._buckets[bucket].inc(count)
