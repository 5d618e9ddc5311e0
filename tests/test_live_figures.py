"""Live figures from the Prometheus metrics: quantiles from buckets, rates over a window of readings."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from tfaas.core.servable_id import ServableId
from tfaas.core.states import EventBus, ManagerState
from tfaas.live_figures import LiveFigures, figure_texts, quantile
from tfaas.metrics import Metrics

INF = math.inf


@pytest.mark.parametrize(
    "q,buckets,expected",
    [
        (0.5, ((0.1, 10.0), (1.0, 10.0), (INF, 10.0)), 0.05),  # all in the first bucket, which starts at 0
        (0.5, ((0.1, 0.0), (1.0, 10.0), (INF, 10.0)), 0.55),  # half-way through the second bucket
        (0.99, ((0.1, 50.0), (1.0, 99.0), (INF, 100.0)), 1.0),
        (0.995, ((0.1, 50.0), (1.0, 99.0), (INF, 100.0)), 1.0),  # in +Inf: the highest finite bound
        (0.5, ((0.1, 0.0), (INF, 0.0)), None),
        (0.5, (), None),
    ],
)
def test_quantile_interpolates_within_its_bucket(q, buckets, expected):
    assert quantile(q, buckets) == (pytest.approx(expected) if expected is not None else None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def observe(metrics: Metrics, model: str, seconds: float, status: int = 200, times: int = 1) -> None:
    for _ in range(times):
        metrics.observe_request(model=model, version="1", api="predict", http_status=status, seconds=seconds)


def test_rates_and_quantiles_cover_the_window_totals_the_whole_run():
    metrics, clock = Metrics(CollectorRegistry()), Clock()
    live = LiveFigures(metrics, clock)
    observe(metrics, "m", 0.002, times=10)
    first = live.figures()["m"]
    assert first["window_seconds"] is None and first["requests_per_second"] is None
    assert first["requests_total"] == 10 and 0.001 <= first["latency_p50_seconds"] <= 0.0025

    clock.now += 5
    observe(metrics, "m", 0.2, times=20)
    observe(metrics, "m", 0.0, status=503, times=5)
    later = live.figures()["m"]
    assert later["window_seconds"] == 5.0
    assert later["requests_per_second"] == pytest.approx(25 / 5) and later["errors_per_second"] == pytest.approx(1)
    assert 0.1 <= later["latency_p50_seconds"] <= 0.25  # NOTE: the window's requests only, not the first 10
    assert later["requests_total"] == 35 and later["errors_total"] == 5

    clock.now += 20  # NOTE: the window starts at the newest reading at least 10 s old: 20 s ago
    idle = live.figures()["m"]
    assert idle["window_seconds"] == 20.0 and idle["requests_per_second"] == 0.0
    clock.now += 3
    assert live.figures()["m"]["window_seconds"] == 23.0  # NOTE: 1025 is not yet 10 s old


def test_a_second_reading_within_a_second_gives_no_rate():
    metrics, clock = Metrics(CollectorRegistry()), Clock()
    live = LiveFigures(metrics, clock)
    observe(metrics, "m", 0.01)
    live.figures()
    clock.now += 0.2
    assert live.figures()["m"]["requests_per_second"] is None


def test_loads_and_requests_for_no_served_model():
    metrics = Metrics(CollectorRegistry())
    bus = EventBus()
    metrics.watch(bus)
    bus.publish(ServableId("m", 1), ManagerState.LOADING)
    bus.publish(ServableId("m", 1), ManagerState.AVAILABLE)
    bus.publish(ServableId("m", 2), ManagerState.LOADING)
    bus.publish(ServableId("m", 2), ManagerState.END, "broken")
    observe(metrics, "", 0.01, status=404)
    figures = LiveFigures(metrics).figures()
    assert set(figures) == {"m"}
    assert figures["m"]["loads_total"] == 1 and figures["m"]["load_failures_total"] == 1
    assert figures["m"]["load_seconds_mean"] >= 0 and figures["m"]["requests_total"] == 0


def test_figure_texts():
    metrics, clock = Metrics(CollectorRegistry()), Clock()
    live = LiveFigures(metrics, clock)
    observe(metrics, "m", 0.0004, times=1500)
    texts = figure_texts(live.figures()["m"])
    assert texts["requests_total"] == "1,500" and texts["requests_per_second"] == "–"
    assert texts["latency_p50_seconds"].endswith("µs") and texts["window_seconds"] == "since start"
    clock.now += 3
    observe(metrics, "m", 2.0, times=1500)
    texts = figure_texts(live.figures()["m"])
    assert texts["requests_per_second"] == "500/s" and texts["latency_p50_seconds"].endswith(" s")
    assert texts["window_seconds"] == "last 3 s" and texts["load_seconds_mean"] == "–"
