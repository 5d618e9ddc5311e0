"""Tracing in process, through OpenTelemetry's in-memory exporter: a worker's ASGI app over a real
ServerCore whose loader is a small fake (no TensorFlow, no server, no collector)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from tests.asgi_client import AsgiClient, worker_client
from tests.server.test_rest_api import TimesVersion, TimesVersionLoader
from tfaas import request_timing, tracing
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.core.states import EventBus, ManagerState
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.inference import request_metrics
from tfaas.inference.request_metrics import GRPC
from tfaas.inference.types import PredictRequest
from tfaas.server_core import ModelSpec, ServerCore
from tfaas.tracing.spans import Tracing, traces_url

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class FailsOnVersion2(TimesVersionLoader):
    """Version 1 loads; version 2 fails with an error text that a span must carry as it is."""

    def load(self) -> TimesVersion:
        if self.id.version == 2:
            raise RuntimeError("version 2 is <broken> & cannot load")
        return super().load()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def core(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[ServerCore]:
    """A traced core serving ``m``: version 1 loads, version 2 fails."""
    for version in (1, 2):
        (tmp_path / "m" / str(version)).mkdir(parents=True)
        (tmp_path / "m" / str(version) / "saved_model.pb").write_bytes(b"fake")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(
        enable_batching=False,
        models=(ModelConfig("m", str(tmp_path / "m"), version_policy=ServableVersionPolicy("all")),),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
        max_num_load_retries=0,
    )
    core = ServerCore(settings, loader_factory=FailsOnVersion2, tracing=Tracing(provider))
    core.start()
    assert core.wait_until(lambda: core.available_versions("m") == [1] and core.states("m")[2].error, 5)
    yield core
    core.stop()
    provider.shutdown()


@pytest.fixture
def client(core: ServerCore) -> Iterator[AsgiClient]:
    with worker_client(core) as client:
        yield client


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> dict[str, ReadableSpan]:
    return {
        span.name: span
        for span in exporter.get_finished_spans()
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    }


def test_a_rest_predict_is_one_server_span_continuing_the_callers_trace(client, exporter):
    response = client.post("/v1/models/m:predict", json={"instances": [[3.0]]}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200

    (span,) = named(exporter, "REST predict")
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes) == {
        "tfaas.model": "m",
        "tfaas.model.version": 1,
        "tfaas.api": "predict",
        "tfaas.entrypoint": "REST",
        "tfaas.status": "OK",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID and span.parent.is_remote


def test_the_stages_are_child_spans_inside_the_request_in_the_order_they_ran(client, exporter):
    client.post("/v1/models/m:predict", json={"instances": [[3.0]]})

    (span,) = named(exporter, "REST predict")
    stages = children(exporter, span)
    assert set(stages) == {"parse", "run", "encode"}
    parse, run, encode = stages["parse"], stages["run"], stages["encode"]
    assert span.start_time <= parse.start_time <= parse.end_time <= run.start_time
    assert run.start_time <= run.end_time <= encode.start_time <= encode.end_time <= span.end_time
    assert all(stage.context.trace_id == span.context.trace_id for stage in stages.values())


def test_without_traceparent_the_request_starts_a_trace(client, exporter):
    client.get("/v1/models/m")
    (span,) = named(exporter, "REST status")
    assert span.parent is None and span.attributes["tfaas.model"] == "m"


def test_client_and_server_errors_are_told_apart(client, exporter):
    assert client.post("/v1/models/nope:predict", json={"instances": [[1.0]]}).status_code == 404
    assert client.post("/v1/models/m/versions/2:predict", json={"instances": [[1.0]]}).status_code == 404
    (missing, _) = named(exporter, "REST predict")
    assert missing.attributes["tfaas.model"] == "nope" and missing.attributes["tfaas.status"] == "NOT_FOUND"
    assert missing.attributes["http.response.status_code"] == 404 and "tfaas.model.version" not in missing.attributes
    assert missing.status.status_code is StatusCode.UNSET  # NOTE: a client's error is no server error


def test_a_grpc_request_has_no_http_status_and_continues_its_metadatas_trace(core, exporter):
    with worker_client(core) as client:
        service = client._service
        tracing.receive([("traceparent", TRACEPARENT), ("user-agent", "grpc-python")])
        with service.recorded("predict", "m", GRPC):
            service.predict(PredictRequest(ModelSpec("m"), {"x": np.ones((1, 1), np.float32)}))
        with pytest.raises(RuntimeError), service.recorded("predict", "m", GRPC):
            raise RuntimeError("a bug")

    ok, failed = named(exporter, "GRPC predict")
    assert ok.attributes["tfaas.entrypoint"] == "GRPC" and "http.response.status_code" not in ok.attributes
    assert format(ok.context.trace_id, "032x") == TRACE_ID
    assert failed.attributes["tfaas.status"] == "INTERNAL" and failed.status.status_code is StatusCode.ERROR


def test_a_run_that_waited_for_its_batch_starts_where_its_queue_ended(core, exporter):
    with worker_client(core) as client, client._service.recorded("predict", "m"):
        started = time.perf_counter()
        time.sleep(0.02)
        request_timing.add("queue", 0.01, ended=started + 0.01)
        request_timing.add("run", time.perf_counter() - started)

    (span,) = named(exporter, "REST predict")
    stages = children(exporter, span)
    assert stages["queue"].end_time == stages["run"].start_time
    assert stages["queue"].end_time - stages["queue"].start_time == pytest.approx(10_000_000, abs=1000)
    assert stages["run"].end_time - stages["run"].start_time >= 9_000_000


def test_each_load_is_a_span_from_loading_to_available_or_to_its_error(core, exporter):
    loads = {span.attributes["tfaas.model.version"]: span for span in named(exporter, "load")}
    assert set(loads) == {1, 2}
    assert loads[1].attributes["tfaas.model"] == "m" and loads[1].attributes["tfaas.state"] == "AVAILABLE"
    assert loads[1].status.status_code is StatusCode.UNSET and loads[1].parent is None
    assert loads[1].end_time >= loads[1].start_time
    assert loads[2].attributes["tfaas.state"] == "END"
    assert loads[2].status.status_code is StatusCode.ERROR
    assert "version 2 is <broken> & cannot load" in loads[2].status.description
    assert loads[2].events[0].name == "exception"


def test_tracing_is_on_with_an_endpoint_and_off_otherwise():
    on = Settings(otlp_endpoint="http://collector:4318")
    assert tracing.enabled(on, {}) and not tracing.enabled(Settings(), {})
    assert tracing.enabled(Settings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.enabled(Settings(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing.enabled(on, {"OTEL_SDK_DISABLED": "true"})
    assert traces_url("http://c:4318/") == traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_off_opentelemetry_is_never_imported_and_a_request_is_served():
    program = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.asgi_client import worker_client
from tfaas.config import Settings
from tfaas.server import gunicorn_app, grpc_listener
from tfaas.server_core import ServerCore
with worker_client(ServerCore(Settings())) as client:
    assert client.get("/v1/models/m", headers={{"traceparent": {TRACEPARENT!r}}}).status_code == 404
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "opentelemetry imported"
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_span_id_is_not_reused_across_requests(client, exporter):
    for _ in range(3):
        client.get("/v1/models/m", headers={"traceparent": TRACEPARENT})
    spans = named(exporter, "REST status")
    assert len({span.context.span_id for span in spans}) == 3
    assert {span.context.trace_id for span in spans} == {int(TRACE_ID, 16)}


def test_a_load_span_ends_with_the_servable_id():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = Tracing(provider)
    bus = EventBus()
    traced.watch(bus)
    bus.publish(ServableId("a", 7), ManagerState.LOADING)
    bus.publish(ServableId("a", 7), ManagerState.LOADING)  # a retried load: the first try ends
    bus.publish(ServableId("a", 7), ManagerState.AVAILABLE)
    first, second = exporter.get_finished_spans()
    assert first.end_time <= second.start_time and second.attributes["tfaas.state"] == "AVAILABLE"


def test_a_request_the_sampler_leaves_out_sends_nothing():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    core = ServerCore(Settings(), tracing=Tracing(provider))
    with request_metrics.recorded(core, "predict", "m"), request_timing.timed("parse"):
        pass
    assert exporter.get_finished_spans() == ()
