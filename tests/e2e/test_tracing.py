"""Tracing end to end: the real server with an OTLP endpoint still serves, and its spans reach a collector.

The collector is a small HTTP server of the test's own that keeps every OTLP/HTTP export it receives
(``POST /v1/traces``, protobuf), decoded with OpenTelemetry's own messages.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.e2e.conftest import install_version
from tests.e2e.server import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
GRPC_TRACE_ID = "1bf7651916cd43dd8448eb211c80319d"


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP trace collector on 127.0.0.1 that keeps the spans it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.spans: list[tuple[dict[str, str], Span]] = []
        """Each span received, with its resource's string attributes."""
        self.paths: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, path: str, body: bytes) -> None:
        self.paths.append(path)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((resource, span) for span in scope_spans.spans)


class _CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.keep(self.path, body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    collector = Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    yield collector
    collector.shutdown()
    collector.server_close()


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, half_plus, collector: Collector) -> ServerProcess:
    base = tmp_path_factory.mktemp("traced") / "half"
    install_version(half_plus(2.0), base, 1)
    # NOTE: OpenTelemetry's own variables are honoured: spans leave every 100 ms, for a short test.
    env = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "tfaas-under-test"}
    server = start_server(
        "--model_name", "half", "--model_base_path", str(base), "--otlp_endpoint", collector.endpoint, env=env
    )
    server.wait_available("half", 1)
    return server


def attributes(span: Span) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def spans_named(collector: Collector, name: str) -> list[Span]:
    return [span for _, span in collector.spans if span.name == name]


def test_the_traced_server_serves_and_its_request_span_continues_the_callers_trace(server, collector):
    response = server.post("/v1/models/half:predict", json={"instances": [[1.0]]}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200 and response.json() == {"predictions": [[2.5]]}

    def the_request_span() -> Span | None:
        return next((s for s in spans_named(collector, "REST predict") if s.trace_id.hex() == TRACE_ID), None)

    span = wait_for(the_request_span, timeout=30)
    assert span.parent_span_id.hex() == "b7ad6b7169203331" and span.kind == Span.SPAN_KIND_SERVER
    assert attributes(span) == {
        "tfaas.model": "half",
        "tfaas.model.version": 1,
        "tfaas.api": "predict",
        "tfaas.entrypoint": "REST",
        "tfaas.status": "OK",
        "http.response.status_code": 200,
    }
    stages = {s.name for _, s in collector.spans if s.parent_span_id == span.span_id}
    assert {"parse", "run", "encode"} <= stages
    resource = next(resource for resource, s in collector.spans if s is span)
    assert resource["service.name"] == "tfaas-under-test" and set(collector.paths) == {"/v1/traces"}


def test_a_grpc_call_continues_the_trace_of_its_metadata(server, collector):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)] * 2)
    request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=[1]))
    with grpc.insecure_channel(server.grpc_target) as channel:
        answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30, metadata=[("traceparent", f"00-{GRPC_TRACE_ID}-b7ad6b7169203332-01")]
        )
    assert list(answer.outputs["y"].float_val) == [2.5]

    def the_call_span() -> Span | None:
        return next((s for s in spans_named(collector, "GRPC predict") if s.trace_id.hex() == GRPC_TRACE_ID), None)

    span = wait_for(the_call_span, timeout=30)
    assert attributes(span)["tfaas.entrypoint"] == "GRPC" and attributes(span)["tfaas.status"] == "OK"


def test_the_load_of_the_version_is_a_span(server, collector):
    def the_load_span() -> Span | None:
        return next(iter(spans_named(collector, "load")), None)

    span = wait_for(the_load_span, timeout=30)
    assert attributes(span) == {"tfaas.model": "half", "tfaas.model.version": 1, "tfaas.state": "AVAILABLE"}
    assert span.end_time_unix_nano > span.start_time_unix_nano


def test_the_server_log_says_where_spans_go(server, collector):
    assert f"Tracing on: spans go over OTLP/HTTP to {collector.endpoint}" in server.log()


def test_a_dead_collector_costs_no_request(start_server, tmp_path_factory, half_plus):
    """An endpoint nobody listens on: the exporter's failures stay in the log, the requests are answered."""
    base = tmp_path_factory.mktemp("traced_nowhere") / "half"
    install_version(half_plus(2.0), base, 1)
    nowhere = f"http://127.0.0.1:{free_port()}"
    server = start_server("--model_name", "half", "--model_base_path", str(base), "--otlp_endpoint", nowhere)
    server.wait_available("half", 1)
    for _ in range(5):
        assert server.post("/v1/models/half:predict", json={"instances": [[1.0]]}).status_code == 200
