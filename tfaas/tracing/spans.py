"""A worker's OpenTelemetry spans: one per request, its stages as children, and one per version load.

A request's span (``SERVER``, named ``<entrypoint> <api>``: ``REST predict``, ``GRPC classify``) starts
when its front opens the request's record and ends when the record closes, with the model, version,
API, entrypoint and outcome as attributes; it continues the trace of the request's W3C ``traceparent``
header or gRPC metadata, when it has one (OpenTelemetry's propagators, ``OTEL_PROPAGATORS``). Its stages
(:mod:`tfaas.request_timing`) become child spans at the times they ran: a ``run`` that waited for its
batch starts where its ``queue`` ended. A version's ``load`` span goes from LOADING to AVAILABLE, or to
END with the error of a failed load (a trace of its own).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tfaas import tracing
from tfaas.core.states import EventBus, ManagerState, ServableState
from tfaas.request_timing import Interval

if TYPE_CHECKING:
    from tfaas.inference.request_metrics import RequestRecord

GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
"""The gRPC codes that make a server span an error (OpenTelemetry's conventions for RPC spans)."""

TRACES_PATH = "/v1/traces"
"""Where an OTLP/HTTP collector takes spans, under the endpoint's URL."""


class Tracing:
    """Spans of one worker, made by ``provider`` (which exports them)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("tfaas")
        self._loads: dict[tuple[str, int], trace.Span] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Send the spans not yet exported, and stop (at the worker's exit)."""
        self._provider.shutdown()

    def request(self, record: RequestRecord) -> RequestSpan:
        """Start the span of the request ``record`` has just begun to record."""
        parent = propagate.extract(tracing.incoming())
        started = time.time_ns()
        span = self._tracer.start_span(_name(record), context=parent, kind=SpanKind.SERVER, start_time=started)
        return RequestSpan(self._tracer, span, started, record.started)

    def watch(self, bus: EventBus) -> Callable[[], None]:
        """Follow the version loads on ``bus``; returns the function that stops following them."""
        return bus.subscribe(self.on_state)

    def on_state(self, event: ServableState) -> None:
        """An EventBus subscriber: a version's ``load`` span opens at LOADING, closes at AVAILABLE or END."""
        key = (event.id.name, event.id.version)
        if event.state is ManagerState.LOADING:
            span = self._tracer.start_span(
                "load",
                attributes={"tfaas.model": event.id.name, "tfaas.model.version": event.id.version},
                start_time=_nanoseconds(event.time),
            )
            with self._lock:
                earlier = self._loads.pop(key, None)
                self._loads[key] = span
            if earlier is not None:  # NOTE: a load tried again: the earlier try ends where this one starts
                earlier.end(_nanoseconds(event.time))
            return
        if event.state not in (ManagerState.AVAILABLE, ManagerState.END):
            return
        with self._lock:
            span = self._loads.pop(key, None)
        if span is None:
            return
        span.set_attribute("tfaas.state", event.state.name)
        if event.error:
            span.set_status(Status(StatusCode.ERROR, event.error))
            span.add_event("exception", {"exception.message": event.error}, _nanoseconds(event.time))
        span.end(_nanoseconds(event.time))


class RequestSpan:
    """One request's span, open; :meth:`end` closes it with the request's outcome and stages."""

    def __init__(self, tracer: trace.Tracer, span: trace.Span, started_ns: int, started: float) -> None:
        self._tracer, self._span = tracer, span
        self._started_ns, self._started = started_ns, started

    def end(self, record: RequestRecord, code: str, http_status: int | None, intervals: Iterable[Interval]) -> None:
        """Close the span: ``record``'s model and version, the outcome (TF Serving's ``code``, and the HTTP
        status of a request that has one), and a child span per stage interval. A server's error marks the span
        an error, as OpenTelemetry's conventions say: a 5xx, or for gRPC one of :data:`GRPC_SERVER_ERRORS`."""
        span = self._span
        if not span.is_recording():  # NOTE: not sampled (OTEL_TRACES_SAMPLER): nothing to add, nothing sent
            return
        span.update_name(_name(record))  # NOTE: a front may learn the API only once it has routed the request
        span.set_attributes(
            {
                "tfaas.model": record.model,
                "tfaas.api": record.api,
                "tfaas.entrypoint": record.entrypoint,
                "tfaas.status": code,
            }
        )
        if record.version:  # NOTE: none where the request failed before it reached a version
            span.set_attribute("tfaas.model.version", int(record.version))
        if http_status is not None:
            span.set_attribute("http.response.status_code", http_status)
        if http_status >= 500 if http_status is not None else code in GRPC_SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code))
        parent = trace.set_span_in_context(span)
        for stage, start, end in _placed(intervals):
            child = self._tracer.start_span(stage, context=parent, start_time=self._wall(start))
            child.end(self._wall(end))
        span.end()

    def _wall(self, moment: float) -> int:
        """A ``perf_counter()`` moment of this request in nanoseconds since the epoch, as spans take them."""
        return self._started_ns + int((moment - self._started) * 1e9)


def _placed(intervals: Iterable[Interval]) -> Iterator[Interval]:
    """The stage intervals as spans show them: a ``run`` holding the wait for its batch starts at its end."""
    intervals = list(intervals)
    queue_ends = [end for stage, _, end in intervals if stage == "queue"]
    for stage, start, end in intervals:
        if stage == "run":
            start = max([start, *(q for q in queue_ends if start <= q <= end)])
        yield stage, start, end


def _name(record: RequestRecord) -> str:
    """A request span's name: ``REST predict``, ``GRPC classify``, ..."""
    return f"{record.entrypoint} {record.api}"


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)


def otlp_provider(endpoint: str) -> TracerProvider:
    """A provider exporting in batches over OTLP/HTTP to ``endpoint`` (a collector's URL, as
    ``OTEL_EXPORTER_OTLP_ENDPOINT``: spans go to its ``/v1/traces``), or where the ``OTEL_*`` variables say
    when ``endpoint`` is empty; the service is ``tfaas`` unless ``OTEL_SERVICE_NAME`` names another."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=traces_url(endpoint) if endpoint else None)
    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def traces_url(endpoint: str) -> str:
    """The URL spans are posted to, for a collector at ``endpoint`` (which may name it already)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def _resource() -> Resource:
    """OpenTelemetry's resource from the environment, named ``tfaas`` where the environment names no service."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "tfaas"}))
    return resource
