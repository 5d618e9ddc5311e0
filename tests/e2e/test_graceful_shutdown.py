"""SIGTERM, as systemd, Docker and Kubernetes send it: in-flight requests finish, then the server exits 0.

The slow requests run on a SavedModel that sleeps in TensorFlow (``slow_models.write_sleepy_model``);
TensorFlow runs its sleeps one at a time, so when SIGTERM comes one request is running and the others
wait inside the worker: all of them must be answered. So must requests that the kernel has queued on
the worker's listener but the worker has not accepted yet. And a clean start and stop logs no error,
names the address, and writes every line in the configured format.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import install_version
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


def test_requests_the_listener_queued_when_sigterm_comes_are_all_answered(start_server, half_plus, tmp_path):
    # NOTE: a stopped worker is a busy one taken to the extreme: its event loop accepts nothing, and
    # the kernel queues the connections on its listener (they were reset when it closed it).
    install_version(half_plus(2.0), tmp_path / "half", 1)
    server = start_server("--model_name", "half", "--model_base_path", str(tmp_path / "half"))
    server.wait_available("half", 1)
    (worker,) = server.booted_workers()
    body = b'{"instances": [[1.0]]}'
    request = b"POST /v1/models/half:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    os.kill(worker, signal.SIGSTOP)
    try:
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(QUEUED)]
        for client in clients:
            client.sendall(request)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    finally:
        os.kill(worker, signal.SIGCONT)
    answers = []
    for client in clients:
        with client:
            try:
                answers.append(client.recv(65536).split(b"\r\n")[0])
            except ConnectionResetError:
                answers.append(b"reset")
    assert answers == [b"HTTP/1.1 200 OK"] * QUEUED, server.log()
    assert server.process.wait(timeout=30) == 0


QUEUED = 20

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} \[\d+\] \[(?P<level>[A-Z]+)\] [\w.]+: .*")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_clean_start_and_stop_logs_no_error_names_the_address_and_keeps_one_format(
    start_server, tmp_path, log_format
):
    # NOTE: as a newcomer starts it: no model given, so the example models are built first
    server = start_server(env={"TFAAS_EXAMPLES_DIR": str(tmp_path / "examples"), "TFAAS_LOG_FORMAT": log_format})
    server.wait_available("half_plus_two", 2)
    assert server.post("/v1/models/half_plus_two:predict", json={"instances": [[1.0]]}).status_code == 200
    assert server.stop() == 0
    lines = server.log_path.read_text().splitlines()

    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert all(set(entry) >= {"time", "level", "logger", "pid", "message"} for entry in entries), lines
        levels, messages = [entry["level"] for entry in entries], [entry["message"] for entry in entries]
    else:
        matches = [TEXT_LINE.fullmatch(line) for line in lines]
        assert all(matches), [line for line, match in zip(lines, matches) if not match]
        levels, messages = [match["level"] for match in matches], lines
    assert "Building the example models" in messages[0]
    assert not {"ERROR", "CRITICAL"} & set(levels), lines
    assert not [m for m in messages if "E0000" in m or "cuInit" in m or "Error while closing" in m], lines
    assert any(m.endswith(f"Listening at: http://127.0.0.1:{server.port} ({server.process.pid})") for m in messages)
