"""Request and load tracing with OpenTelemetry, off by default.

On when an OTLP endpoint is set: the ``otlp_endpoint`` setting (``--otlp_endpoint``,
``TFAAS_OTLP_ENDPOINT``), or OpenTelemetry's own ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` keeps it off. Then each worker sends, over
OTLP/HTTP, one span per request (every front records its requests in
:func:`tfaas.inference.request_metrics.recorded`, which opens it) with a child span per stage (parse,
queue, run, encode), and one span per version load (:mod:`tfaas.tracing.spans`). The other ``OTEL_*``
variables (service name, resource attributes, sampler, headers, batch sizes, propagators) are
OpenTelemetry's to read, and it does.

NOTE: off, nothing here imports OpenTelemetry, and a request costs one ``None`` check: the transport
hands its headers to :func:`receive` and the request metrics open a span only where a worker's
``ServerCore.tracing`` is set.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    from tfaas.config import Settings
    from tfaas.tracing.spans import Tracing

log = logging.getLogger("tfaas.tracing")

OTEL_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""OpenTelemetry's variables that name where spans go, either of which turns tracing on."""

Header = tuple[bytes | str, bytes | str]
"""A request header or gRPC metadata item: ASGI's ``(bytes, bytes)``, gRPC's ``(str, str | bytes)``."""

_incoming: ContextVar[Iterable[Header]] = ContextVar("tfaas_trace_headers", default=())


def enabled(settings: Settings, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``settings`` and the environment turn tracing on (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(settings.otlp_endpoint or any(environ.get(name) for name in OTEL_ENDPOINTS))


def from_settings(settings: Settings) -> Tracing | None:
    """A worker's tracing, exporting to the OTLP endpoint ``settings`` or the environment name; ``None``
    when tracing is off (OpenTelemetry is then never imported)."""
    if not enabled(settings):
        return None
    from tfaas.tracing.spans import Tracing, otlp_provider

    provider = otlp_provider(settings.otlp_endpoint)
    log.info("Tracing on: spans go over OTLP/HTTP to %s", settings.otlp_endpoint or "the OTEL_* endpoint")
    return Tracing(provider)


def receive(headers: Iterable[Header]) -> None:
    """The request the calling task or thread serves came with ``headers``: its span continues the trace
    they carry (W3C ``traceparent``). Called by the transports only where tracing is on."""
    _incoming.set(headers)


def incoming() -> dict[str, str]:
    """The current request's headers as :func:`receive` got them (names in lower case), for the propagator."""
    return {_text(name).lower(): _text(value) for name, value in _incoming.get()}


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
