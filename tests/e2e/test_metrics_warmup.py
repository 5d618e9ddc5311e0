"""Metrics across two gunicorn workers, and warmup in the real server; one server for the module.

Models (built here): ``plain`` (0.5x+2, for counting requests), ``warm`` (counts its calls; its version 1
has 3 warmup records, replayed twice), ``flaky`` (version 1 serves; version 2, added while serving, has
a corrupt warmup file).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest
import requests
import yaml
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.conftest import install_version
from tests.e2e.server import ServerProcess, wait_for
from tests.servables.test_warmup import predict_log, write_counting_model, write_warmup
from tests.test_metrics import value

pytestmark = pytest.mark.e2e

WORKERS = 2
ITERATIONS = 2
WARMUP_RECORDS = 3


@pytest.fixture(scope="module")
def root(tmp_path_factory, half_plus) -> Path:
    root = tmp_path_factory.mktemp("metrics")
    install_version(half_plus(2), root / "plain", 1)
    install_version(half_plus(1), root / "flaky", 1)
    write_counting_model(root / "warm" / "1")
    write_warmup(root / "warm" / "1", [predict_log()] * WARMUP_RECORDS)
    return root


@pytest.fixture(scope="module")
def prometheus_dir(tmp_path_factory) -> Path:
    """A user-chosen PROMETHEUS_MULTIPROC_DIR, with a stale file the server must clear at start."""
    path = tmp_path_factory.mktemp("prometheus")
    (path / "counter_1.db").write_bytes(b"stale")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, root: Path, prometheus_dir: Path) -> Iterator[ServerProcess]:
    config = root / "tfaas.yaml"
    models = [{"name": name, "base_path": str(root / name)} for name in ("plain", "warm", "flaky")]
    config.write_text(yaml.safe_dump({"models": models}))
    server = ServerProcess(
        [
            "--config", str(config), "--workers", str(WORKERS), "--num_request_iterations_for_warmup", str(ITERATIONS),
            "--load_retry_initial_seconds", "5", "--load_retry_max_seconds", "10",  # NOTE: a failed version stays END
            "--version_settle_seconds", "0.2", "--file_system_poll_wait_seconds", "0.2",
        ],
        tmp_path_factory.mktemp("server") / "server.log",
        env={"PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir)},
    )  # fmt: skip
    try:
        # NOTE: both workers' copies AVAILABLE (the scrape sums the workers); a first answer can take
        # seconds while the workers import TensorFlow, hence the patient probe.
        for model in ("plain", "warm", "flaky"):
            wait_for(lambda model=model: available_copies(server, model, "1") == WORKERS, 90, interval=0.2)
        yield server
    finally:
        server.stop()


def available_copies(server: ServerProcess, model: str, version: str) -> float | None:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited early:\n{server.log()}")
    try:
        return metric(server, "tfaas_model_version_state", model, version, "AVAILABLE")
    except requests.RequestException:
        return None


def scrape(server: ServerProcess, path: str = "/monitoring/prometheus/metrics") -> str:
    response = requests.get(server.url + path, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def metric(server: ServerProcess, name: str, model: str, version: str, state: str) -> float | None:
    return value(scrape(server), name, model=model, version=version, state=state)


def predict(server: ServerProcess, model: str, x: float = 1.0) -> requests.Response:
    # NOTE: a new connection each time, so the kernel hands requests to either worker.
    return requests.post(f"{server.url}/v1/models/{model}:predict", json={"instances": [[x]]}, timeout=30)


def test_warmup_ran_in_every_worker_before_the_first_request(server, root):
    first = predict(server, "warm")
    assert first.status_code == 200, first.text
    # Each worker replayed 3 records twice before its copy became AVAILABLE; the answer counts calls.
    assert first.json()["predictions"] == [[WARMUP_RECORDS * ITERATIONS + 1]]

    text = scrape(server)
    assert value(text, "tfaas_model_warmup_records_total", model="warm", status="OK") == WORKERS * WARMUP_RECORDS
    read = value(
        text, ":tensorflow:serving:model_warmup_records_read_total", model_path=str(root / "warm" / "1"), status="OK"
    )
    assert read == WORKERS * WARMUP_RECORDS
    log = server.log()
    warmup = root / "warm" / "1" / "assets.extra" / "tf_serving_warmup_requests"
    finished = f"Finished reading warmup data for model at {warmup}. Number of warmup records read: 3. Elapsed"
    assert log.count(finished) == WORKERS
    assert log.count(f"No warmup data file found at {root / 'plain' / '1'}") == WORKERS


def served_per_worker(prometheus_dir: Path) -> dict[str, float]:
    """``{counter file: 200s of plain}``, read from each worker's own file (one file per process)."""
    per_worker = {}
    for name in os.listdir(prometheus_dir):
        if name.startswith("counter_"):
            families = MultiProcessCollector.merge([str(prometheus_dir / name)], accumulate=True)
            per_worker[name] = sum(
                s.value
                for f in families
                for s in f.samples
                if s.name == "tfaas_requests_total" and s.labels.get("model") == "plain" and s.labels["code"] == "200"
            )
    return per_worker


def test_requests_are_counted_across_both_workers(server, prometheus_dir):
    ok, missing, bad = 0, 10, 6
    # NOTE: new connections go to either worker as the kernel picks; send until both have served some.
    while ok < 200 and (ok == 0 or min(served_per_worker(prometheus_dir).values()) == 0):
        for _ in range(20):
            assert predict(server, "plain").status_code == 200
        ok += 20
    for _ in range(missing):
        assert predict(server, "nope").status_code == 404
    for _ in range(bad):
        assert requests.post(f"{server.url}/v1/models/plain:predict", data=b"{", timeout=30).status_code == 400

    for path in ("/monitoring/prometheus/metrics", "/metrics"):
        text = scrape(server, path)
        assert value(text, "tfaas_requests_total", model="plain", version="1", api="predict", code="200") == ok
        assert value(text, "tfaas_requests_total", model="", version="", api="predict", code="404") == missing
        assert value(text, "tfaas_requests_total", model="plain", version="", api="predict", code="400") == bad
        assert value(text, "tfaas_request_duration_seconds_count", model="plain", api="predict") == ok
        assert value(text, ":tensorflow:serving:request_count_total", model_name="plain", status="OK") == ok
        assert (
            value(text, ":tensorflow:serving:request_count_total", model_name="plain", status="INVALID_ARGUMENT") == bad
        )
        assert ":tensorflow:serving:request_count{" in text  # TF Serving's spelling, no _total
        assert value(text, "tfaas_model_load_duration_seconds_count", model="plain") == WORKERS

    # The totals are sums over both workers' files (and the stale file was cleared at start).
    per_worker = served_per_worker(prometheus_dir)
    assert "counter_1.db" not in per_worker
    assert len(per_worker) == WORKERS and min(per_worker.values()) > 0, per_worker
    assert sum(per_worker.values()) == ok


def test_a_corrupt_warmup_file_fails_version_2_and_version_1_keeps_serving(server, root, half_plus):
    staging = root / "flaky" / "tmp-2"
    shutil.copytree(half_plus(3), staging)
    (staging / "assets.extra").mkdir()
    (staging / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"garbage, not TFRecord" * 4)
    staging.rename(root / "flaky" / "2")

    wait_for(lambda: metric(server, "tfaas_model_version_state", "flaky", "2", "END") == WORKERS, 60)
    text = scrape(server)
    assert value(text, "tfaas_model_load_failures_total", model="flaky") >= WORKERS
    assert value(text, "tfaas_model_version_state", model="flaky", version="1", state="AVAILABLE") == WORKERS
    status = {v["version"]: v for v in server.get("/v1/models/flaky").json()["model_version_status"]}
    assert status["2"]["state"] == "END"
    assert status["2"]["status"]["error_message"].startswith("corrupted record at 0")
    assert "Please verify your warmup data is in TFRecord format" in status["2"]["status"]["error_message"]
    assert status["1"]["state"] == "AVAILABLE"
    for _ in range(4):
        response = predict(server, "flaky", 2.0)
        assert response.status_code == 200 and response.json()["predictions"] == [[2.0]]  # 0.5 * 2 + 1: version 1
