"""``tfaas.metrics``: what is recorded, how it is written, and how it adds up across processes.

Each test builds its metrics in a fresh registry; the multi-process tests run their "workers" as
subprocesses, because prometheus_client picks its mode once, when it is first imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tfaas.core.servable_id import ServableId
from tfaas.core.states import EventBus, ManagerState, ServableState
from tfaas.metrics import Metrics, multiprocess_dir, status_code_name

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def samples(text: bytes | str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, frozenset of label items): value}`` of a Prometheus text exposition.

    NOTE: the parser, as Prometheus, reads a counter's samples as ``<name>_total`` whether or not the
    text has the suffix (TF Serving's names do not).
    """
    text = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def value(text: bytes | str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def event(state: ManagerState, at: float, version: int = 1, error: str | None = None) -> ServableState:
    return ServableState(ServableId("m", version), state, error, at)


def test_requests_are_counted_by_model_version_api_and_code(metrics):
    for _ in range(3):
        metrics.observe_request(model="m", version="2", api="predict", http_status=200, seconds=0.01)
    metrics.observe_request(model="", version="", api="predict", http_status=404, seconds=0.001)
    text = metrics.render()
    assert value(text, "tfaas_requests_total", model="m", version="2", api="predict", code="200") == 3
    assert value(text, "tfaas_requests_total", model="", version="", api="predict", code="404") == 1
    # Only successful requests are timed, as in TF Serving.
    assert value(text, "tfaas_request_duration_seconds_count", model="m", api="predict") == 3
    assert value(text, "tfaas_request_duration_seconds_count", model="", api="predict") is None


def test_tf_serving_names_read_as_tf_serving_writes_them(metrics):
    metrics.observe_request(model="m", version="1", api="predict", http_status=200, seconds=0.002)
    metrics.observe_request(model="m", version="", api="predict", http_status=400, seconds=0.002)
    text = metrics.render().decode()
    lines = text.splitlines()
    # A counter without prometheus_client's _total suffix, as TF Serving's exporter writes it.
    assert "# TYPE :tensorflow:serving:request_count counter" in lines
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1.0' in lines
    assert ':tensorflow:serving:request_count{model_name="m",status="INVALID_ARGUMENT"} 1.0' in lines
    assert "_total" not in "".join(line for line in lines if ":tensorflow:" in line)
    # Latency in microseconds, TF Serving's labels and 33 exponential buckets from 10 µs.
    assert value(text, ":tensorflow:serving:request_latency_sum", model_name="m", API="predict", entrypoint="REST") == (
        pytest.approx(2000)
    )
    buckets = [s for s in samples(text) if s[0] == ":tensorflow:serving:request_latency_bucket"]
    assert len(buckets) == 34  # 33 bounds and +Inf
    assert value(text, "tfaas_requests_total", model="m", version="1", api="predict", code="200") == 1


@pytest.mark.parametrize(
    "http_status,code",
    [
        (200, "OK"),
        (400, "INVALID_ARGUMENT"),
        (404, "NOT_FOUND"),
        (503, "UNAVAILABLE"),
        (500, "INTERNAL"),
        (418, "UNKNOWN"),
    ],
)
def test_status_code_names(http_status, code):
    assert status_code_name(http_status) == code


def test_version_states_load_latency_and_failures_follow_the_bus(metrics):
    bus = EventBus()
    metrics.watch(bus)
    metrics.on_state(event(ManagerState.START, 100.0))
    metrics.on_state(event(ManagerState.LOADING, 100.5))
    text = metrics.render()
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="LOADING") == 1
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="START") == 0
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="END") == 0  # exists, at 0

    metrics.on_state(event(ManagerState.AVAILABLE, 103.0))
    text = metrics.render()
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="AVAILABLE") == 1
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="LOADING") == 0
    assert value(text, "tfaas_model_load_duration_seconds_sum", model="m") == pytest.approx(2.5)
    assert value(text, "tfaas_model_load_duration_seconds_count", model="m") == 1

    # Version 2 fails, is retried and then loads; through the bus this time.
    bus.publish(ServableId("m", 2), ManagerState.START)
    bus.publish(ServableId("m", 2), ManagerState.LOADING)
    bus.publish(ServableId("m", 2), ManagerState.END, "corrupted record at 0")
    text = metrics.render()
    assert value(text, "tfaas_model_load_failures_total", model="m") == 1
    assert value(text, "tfaas_model_version_state", model="m", version="2", state="END") == 1
    bus.publish(ServableId("m", 2), ManagerState.LOADING)
    bus.publish(ServableId("m", 2), ManagerState.AVAILABLE)
    text = metrics.render()
    assert value(text, "tfaas_model_version_state", model="m", version="2", state="END") == 0
    assert value(text, "tfaas_model_version_state", model="m", version="2", state="AVAILABLE") == 1
    assert value(text, "tfaas_model_load_duration_seconds_count", model="m") == 2
    assert value(text, "tfaas_model_load_failures_total", model="m") == 1

    # An unload ends without an error: not a failure.
    for state in (ManagerState.UNLOADING, ManagerState.END):
        metrics.on_state(event(state, 200.0))
    text = metrics.render()
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="END") == 1
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="AVAILABLE") == 0
    assert value(text, "tfaas_model_load_failures_total", model="m") == 1


def test_warmup_is_recorded_under_both_names(metrics):
    metrics.observe_warmup(model="m", model_path="/models/m/1", status="OK", records=3, seconds=0.5)
    text = metrics.render()
    assert value(text, "tfaas_model_warmup_records_total", model="m", status="OK") == 3
    assert value(text, "tfaas_model_warmup_duration_seconds_count", model="m", status="OK") == 1
    assert (
        value(text, ":tensorflow:serving:model_warmup_records_read_total", model_path="/models/m/1", status="OK") == 3
    )
    assert value(text, ":tensorflow:serving:model_warmup_latency_sum", model_path="/models/m/1", status="OK") == 5e5


def test_multiprocess_dir_is_private_and_removed_when_none_is_given():
    environ: dict[str, str] = {}
    with multiprocess_dir(environ) as path:
        assert environ["PROMETHEUS_MULTIPROC_DIR"] == path
        assert os.path.isdir(path) and os.path.basename(path).startswith("tfaas-prometheus-")
    assert not os.path.exists(path)
    assert "PROMETHEUS_MULTIPROC_DIR" not in environ


def test_a_given_multiprocess_dir_is_emptied_of_old_metric_files_and_kept(tmp_path):
    given = tmp_path / "prom"
    given.mkdir()
    for name in ("counter_12.db", "histogram_12.db", "gauge_livesum_12.db", "notes.txt"):
        (given / name).write_text("x")
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(given)}
    with multiprocess_dir(environ) as path:
        assert path == str(given)
        assert sorted(os.listdir(given)) == ["notes.txt"]
    assert given.is_dir() and environ["PROMETHEUS_MULTIPROC_DIR"] == str(given)

    missing = tmp_path / "new"
    with multiprocess_dir({"prometheus_multiproc_dir": str(missing)}):
        assert missing.is_dir()


WORKER = textwrap.dedent(
    """
    import sys
    from tfaas.core.servable_id import ServableId
    from tfaas.core.states import EventBus, ManagerState
    from tfaas.metrics import default_metrics

    metrics = default_metrics()
    bus = EventBus()
    metrics.watch(bus)
    for state in (ManagerState.START, ManagerState.LOADING, ManagerState.AVAILABLE):
        bus.publish(ServableId("m", 1), state)
    for _ in range(int(sys.argv[1])):
        metrics.observe_request(model="m", version="1", api="predict", http_status=200, seconds=0.01)
    if len(sys.argv) > 2:
        sys.stdout.buffer.write(metrics.render())
    """
)


def run_worker(directory: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.run(
        [sys.executable, "-c", WORKER, *args], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )


def test_workers_add_up_and_a_dead_worker_leaves_its_counts_but_not_its_states(tmp_path):
    from prometheus_client.multiprocess import mark_process_dead

    first = run_worker(tmp_path, "3")
    second = run_worker(tmp_path, "4", "render")  # renders what every worker wrote so far
    text = second.stdout
    assert value(text, "tfaas_requests_total", model="m", version="1", api="predict", code="200") == 7
    assert value(text, ":tensorflow:serving:request_count_total", model_name="m", status="OK") == 7
    # livesum: the number of workers whose copy of the version is in the state.
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="AVAILABLE") == 2
    assert value(text, "tfaas_model_load_duration_seconds_count", model="m") == 2
    assert first.returncode == 0

    pids = sorted({name.rsplit("_", 1)[1] for name in os.listdir(tmp_path) if name.startswith("counter_")})
    assert len(pids) == 2
    mark_process_dead(int(pids[0].removesuffix(".db")), str(tmp_path))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    assert value(text, "tfaas_requests_total", model="m", version="1", api="predict", code="200") == 7
    assert value(text, "tfaas_model_version_state", model="m", version="1", state="AVAILABLE") == 1


def test_gunicorns_master_does_not_import_prometheus_client():
    # NOTE: prometheus_client fixes its mode on import; the master must set the directory first.
    code = "import sys, tfaas.cli, tfaas.server.gunicorn_app, tfaas.metrics; print('prometheus_client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"
