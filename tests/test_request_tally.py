"""``tfaas.request_tally``: requests written a pass at a time add up to what prometheus_client's own calls
write, and no answered request waits long to be written."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from tests.test_metrics import samples, value
from tfaas.metrics import Metrics
from tfaas.request_tally import MAX_DELAY_SECONDS, MAX_WAITING, Observation

STAGES = {"parse": 0.00005, "queue": 0.0002, "run": 0.0011, "encode": 0.00003}


def observation(seconds: float = 0.002, status: int = 200, code: str = "OK", model: str = "m") -> Observation:
    return Observation(model, "1", "predict", "REST", status, code, seconds, STAGES if code == "OK" else {})


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def timed_samples(metrics: Metrics) -> dict:
    """Every sample but the ``_created`` timestamps, which differ between two registries."""
    return {key: v for key, v in samples(metrics.render()).items() if not key[0].endswith("_created")}


def test_a_pass_writes_what_prometheus_clients_own_calls_write(metrics):
    # Exact bucket bounds (an observation equal to a bound counts in that bucket), values between bounds,
    # beyond the last finite one, and zero; two models, two statuses.
    seconds = [0.0005, 0.001, 0.0007, 0.0025, 0.0, 90.0, 0.00003, 0.001, 0.0005]
    observations = [observation(s) for s in seconds] + [
        observation(0.003, model="other"),
        observation(0.004, status=404, code="NOT_FOUND"),
    ]
    metrics.tally.write(observations)

    one_by_one = Metrics(CollectorRegistry())
    for o in observations:
        one_by_one.requests.labels(o.model, o.version, o.api, str(o.http_status)).inc()
        one_by_one.tf_request_count.labels(o.model, o.code).inc()
        if o.code == "OK":
            one_by_one.request_seconds.labels(o.model, o.api).observe(o.seconds)
            one_by_one.tf_request_latency.labels(o.model, o.api, o.entrypoint).observe(o.seconds * 1e6)
            for stage, s in o.stages.items():
                one_by_one.request_stage_seconds.labels(o.model, o.api, stage).observe(s)

    assert timed_samples(metrics) == timed_samples(one_by_one)
    assert value(metrics.render(), "tfaas_request_duration_seconds_count", model="m", api="predict") == 9


def test_requests_under_way_hold_the_write_until_the_last_of_them_ends(metrics):
    tally = metrics.tally
    tally.started()
    tally.started()
    tally.ended(observation())
    assert value(metrics.render(), "tfaas_requests_total", model="m", version="1", api="predict", code="200") is None
    tally.ended(observation())
    text = metrics.render()
    assert value(text, "tfaas_requests_total", model="m", version="1", api="predict", code="200") == 2
    assert value(text, "tfaas_request_stage_seconds_count", model="m", api="predict", stage="queue") == 2


def test_a_request_that_ended_is_written_soon_while_another_is_still_under_way(metrics):
    tally = metrics.tally
    tally.started()
    tally.started()
    ended = time.monotonic()
    tally.ended(observation())
    while value(metrics.render(), "tfaas_requests_total", model="m", version="1", api="predict", code="200") != 1:
        assert time.monotonic() - ended < MAX_DELAY_SECONDS + 5, "the waiting request was never written"
        time.sleep(0.02)
    assert time.monotonic() - ended >= MAX_DELAY_SECONDS * 0.9  # NOTE: by the tally's thread, not at once
    tally.ended(observation())
    assert value(metrics.render(), "tfaas_requests_total", model="m", version="1", api="predict", code="200") == 2


def test_the_request_that_makes_the_most_waiting_writes_them(metrics):
    tally = metrics.tally
    for _ in range(MAX_WAITING + 1):
        tally.started()
    for _ in range(MAX_WAITING):
        tally.ended(observation())
    text = metrics.render()  # NOTE: at once: the thread would take MAX_DELAY_SECONDS
    assert value(text, "tfaas_requests_total", model="m", version="1", api="predict", code="200") == MAX_WAITING
    tally.ended(observation())
