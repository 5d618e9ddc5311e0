"""SIGTERM, as systemd, Docker and Kubernetes send it: in-flight requests finish, then the server exits 0.

The slow requests run on a SavedModel that sleeps in TensorFlow (``slow_models.write_sleepy_model``);
TensorFlow runs its sleeps one at a time, so when SIGTERM comes one request is running and the others
wait inside the worker: all of them must be answered.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.slow_models import write_sleepy_model

pytestmark = pytest.mark.e2e

REQUEST_SECONDS = 1.5
IN_FLIGHT = 3


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sleepy") / "sleepy"
    write_sleepy_model(base / "1")
    return base


def start_sleepy_server(start_server, base: Path, graceful_timeout: float):
    server = start_server(
        "--model_name",
        "sleepy",
        "--model_base_path",
        str(base),
        "--graceful_timeout",
        str(graceful_timeout),
        "--version_settle_seconds",
        "0",
    )
    server.wait_available("sleepy", 1)
    assert server.post("/v1/models/sleepy:predict", json={"instances": [0.0]}).status_code == 200
    return server


def send_in_background(server, seconds: float, results: list) -> threading.Thread:
    def send() -> None:
        try:
            response = requests.post(
                server.url + "/v1/models/sleepy:predict", json={"instances": [seconds]}, timeout=60
            )
            results.append((response.status_code, response.json()))
        except requests.RequestException as exc:
            results.append((None, repr(exc)))

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_sigterm_finishes_every_in_flight_request_unloads_and_exits_0(start_server, sleepy: Path):
    server = start_sleepy_server(start_server, sleepy, graceful_timeout=20)
    results: list = []
    threads = [send_in_background(server, REQUEST_SECONDS, results) for _ in range(IN_FLIGHT)]
    time.sleep(0.5)  # NOTE: the worker has accepted them all by now (8 threads, a local socket)
    assert not results, "the slow requests ended too soon for the test to mean anything"

    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    late: list = []
    late_thread = send_in_background(server, 0.0, late)  # NOTE: after SIGTERM: must not be served

    for thread in [*threads, late_thread]:
        thread.join(timeout=60)
    exit_code = server.process.wait(timeout=30)
    elapsed = time.monotonic() - stopped_at

    assert results == [(200, {"predictions": [REQUEST_SECONDS]})] * IN_FLIGHT, server.log()
    assert late[0][0] is None, f"a request sent after SIGTERM was answered: {late}"
    assert exit_code == 0, server.log()
    assert elapsed < 20, f"took {elapsed:.1f} s to stop"
    log = server.log()
    assert "Unloaded servable {name: sleepy version: 1}" in log
    assert log.index("Unloaded servable {name: sleepy version: 1}") > log.index("Handling signal: term")


def test_a_request_longer_than_the_grace_time_does_not_hold_the_stop(start_server, sleepy: Path):
    server = start_sleepy_server(start_server, sleepy, graceful_timeout=2)
    results: list = []
    thread = send_in_background(server, 30.0, results)
    time.sleep(1.0)

    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    exit_code = server.process.wait(timeout=30)
    elapsed = time.monotonic() - stopped_at
    thread.join(timeout=60)

    assert exit_code == 0, server.log()
    assert elapsed < 2 + 3, f"took {elapsed:.1f} s to stop with graceful_timeout 2"
    assert results[0][0] is None  # NOTE: cut off at the grace time, as promised
