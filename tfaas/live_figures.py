"""Live figures per model, read from the Prometheus metrics: request rate, latency quantiles, errors, loads.

What a dashboard shows of :mod:`tfaas.metrics` (summed over every worker): for each model, its requests
and errors (answers that are not 2xx) since the start, and over the last :data:`WINDOW_SECONDS` the
requests and errors per second and the median and 99th percentile latency of its successful requests
(from the histogram's buckets, interpolated within a bucket as Prometheus's ``histogram_quantile``
does); and the count, failures and mean time of its version loads since the start.

The window starts at the newest of the totals this process read at least :data:`WINDOW_SECONDS` ago
(or its oldest; it reads them at most every :data:`READ_SPACING_SECONDS`): a process's first reading, or
one less than :data:`MIN_WINDOW_SECONDS` after it, has none, and gives the quantiles since the start.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tfaas.metrics import Metrics

WINDOW_SECONDS = 10.0
MIN_WINDOW_SECONDS = 1.0
"""A shorter window gives no rates: too few requests to tell."""
READ_SPACING_SECONDS = 0.5

Buckets = tuple[tuple[float, float], ...]
"""A histogram's cumulative buckets: ``(upper bound, count)``, bounds rising, ``+Inf`` last."""


@dataclass
class ModelTotals:
    """One model's counts since the start, as the metrics hold them."""

    requests: float = 0.0
    errors: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)
    """Successful requests' latency histogram: upper bound (seconds) -> cumulative count."""
    loads: float = 0.0
    load_seconds: float = 0.0
    load_failures: float = 0.0

    def buckets(self) -> Buckets:
        return tuple(sorted(self.latency.items()))


class LiveFigures:
    """The figures of every model, over a window of this process's readings of ``metrics``."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._readings: deque[tuple[float, dict[str, ModelTotals]]] = deque()

    def figures(self) -> dict[str, dict[str, Any]]:
        """``{model: figures}`` for every model the metrics know (see :func:`model_figures`)."""
        now = self._clock()
        totals = read_totals(self._metrics.collect())
        with self._lock:
            if not self._readings or now - self._readings[-1][0] >= READ_SPACING_SECONDS:
                self._readings.append((now, totals))
            # NOTE: keeps the newest reading at least a window old, so the window is never shorter
            while len(self._readings) > 1 and now - self._readings[1][0] >= WINDOW_SECONDS:
                self._readings.popleft()
            since, earlier = self._readings[0]
        window = now - since if now - since >= MIN_WINDOW_SECONDS else None
        return {
            name: model_figures(model, earlier.get(name, ModelTotals()) if window else None, window)
            for name, model in totals.items()
        }


def model_figures(now: ModelTotals, earlier: ModelTotals | None, window: float | None) -> dict[str, Any]:
    """One model's figures: totals since the start; rates and quantiles over ``window`` seconds since
    ``earlier`` (with none, no rates, and the quantiles since the start)."""
    buckets = now.buckets()
    rates: dict[str, float | None] = {"requests_per_second": None, "errors_per_second": None}
    if earlier is not None and window:
        buckets = tuple((bound, count - earlier.latency.get(bound, 0.0)) for bound, count in buckets)
        rates = {
            "requests_per_second": (now.requests - earlier.requests) / window,
            "errors_per_second": (now.errors - earlier.errors) / window,
        }
    return {
        "requests_total": int(now.requests),
        "errors_total": int(now.errors),
        "window_seconds": window,
        **rates,
        "latency_p50_seconds": quantile(0.5, buckets),
        "latency_p99_seconds": quantile(0.99, buckets),
        "loads_total": int(now.loads),
        "load_failures_total": int(now.load_failures),
        "load_seconds_mean": now.load_seconds / now.loads if now.loads else None,
    }


def quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q``-quantile of the observations in cumulative ``buckets``, linear within its bucket (the
    lowest bucket starts at 0); the highest finite bound where it falls in ``+Inf``; None without any."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return lower


def read_totals(families: Iterable[Any]) -> dict[str, ModelTotals]:
    """Each served model's totals from the metrics' samples (requests naming no served model, ``""``, are
    left out)."""
    totals: dict[str, ModelTotals] = {}
    for family in families:
        for sample in family.samples:
            model = sample.labels.get("model", "")
            if model:
                _add(totals.setdefault(model, ModelTotals()), sample.name, sample.labels, sample.value)
    return totals


def _add(model: ModelTotals, name: str, labels: dict[str, str], value: float) -> None:
    """Count one sample in ``model``'s totals, where it is one of the figures' metrics."""
    if name == "tfaas_requests_total":
        model.requests += value
        if not labels.get("code", "").startswith("2"):
            model.errors += value
    elif name == "tfaas_request_duration_seconds_bucket":
        bound = float(labels["le"])
        model.latency[bound] = model.latency.get(bound, 0.0) + value  # NOTE: every API's, summed
    elif name == "tfaas_model_load_duration_seconds_count":
        model.loads += value
    elif name == "tfaas_model_load_duration_seconds_sum":
        model.load_seconds += value
    elif name == "tfaas_model_load_failures_total":
        model.load_failures += value


def figure_texts(figures: dict[str, Any]) -> dict[str, str]:
    """:func:`model_figures` as a page shows them (``–`` where a figure has no value yet)."""
    return {
        "requests_total": f"{figures['requests_total']:,}",
        "errors_total": f"{figures['errors_total']:,}",
        "requests_per_second": _rate(figures["requests_per_second"]),
        "errors_per_second": _rate(figures["errors_per_second"]),
        "latency_p50_seconds": _duration(figures["latency_p50_seconds"]),
        "latency_p99_seconds": _duration(figures["latency_p99_seconds"]),
        "loads_total": f"{figures['loads_total']:,}",
        "load_failures_total": f"{figures['load_failures_total']:,}",
        "load_seconds_mean": _duration(figures["load_seconds_mean"]),
        "window_seconds": f"last {figures['window_seconds']:.0f} s" if figures["window_seconds"] else "since start",
    }


NO_VALUE = "–"


def _rate(per_second: float | None) -> str:
    if per_second is None:
        return NO_VALUE
    return f"{per_second:.2f}/s" if per_second < 100 else f"{per_second:,.0f}/s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NO_VALUE
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"
