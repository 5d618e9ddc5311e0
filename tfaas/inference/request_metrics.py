"""Counting and timing every inference request once, whichever front it came through.

A front opens a :class:`RequestRecord` around all its work on a request (parse, the service call,
encode) with :func:`recorded`; the service notes the version it took a handle on; when the ``with``
ends the request is counted with its outcome: OK, or the code and HTTP status of the ``TfaasError`` that
ended it (500 for anything else, 499 for a client that went away). Where the worker traces
(:mod:`tfaas.tracing`), the record is a span too.

Label values are bounded: ``model`` is the requested name only when it is a served model (else ``""``,
so a client cannot create series by naming models that do not exist), and ``version`` is only ever the
version a handle was actually taken on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from tfaas import request_timing
from tfaas.errors import TfaasError

if TYPE_CHECKING:
    from tfaas.request_timing import Interval
    from tfaas.server_core import ServerCore
    from tfaas.tracing.spans import RequestSpan

log = logging.getLogger("tfaas.inference")

REST = "REST"
GRPC = "GRPC"
"""The ``entrypoint`` label values, as TF Serving's ``request_latency`` names its two fronts."""
V2 = "V2"
"""The ``entrypoint`` of the Open Inference Protocol's calls, REST and gRPC alike."""

_current: ContextVar[RequestRecord | None] = ContextVar("tfaas_request_record", default=None)


@dataclass
class RequestRecord:
    """What one request is, as far as its front and the service found out."""

    api: str
    model: str = ""
    entrypoint: str = REST
    version: str = ""
    started: float = field(default_factory=time.perf_counter)


def note_version(version: int) -> None:
    """The current request took a handle on ``version`` (ignored outside a recorded request)."""
    record = _current.get()
    if record is not None:
        record.version = str(version)


@contextmanager
def recorded(core: ServerCore, api: str, model: str = "", entrypoint: str = REST) -> Iterator[RequestRecord]:
    """Count and time the request the ``with`` body serves; exceptions pass through, counted."""
    record = RequestRecord(api, model, entrypoint)
    token = _current.set(record)
    span = core.tracing.request(record) if core.tracing is not None else None
    request_timing.begin(intervals=span is not None)
    status, code = 200, "OK"
    try:
        yield record
    except TfaasError as exc:
        status, code = exc.http_status, exc.code
        raise
    except asyncio.CancelledError:
        status, code = 499, "CANCELLED"
        raise
    except Exception:
        status, code = 500, "INTERNAL"
        raise
    finally:
        _current.reset(token)
        stages = request_timing.take()
        _observe(core, record, status, code, stages.seconds)
        if span is not None:
            _end_span(span, record, status, code, stages.intervals or [])


def _observe(core: ServerCore, record: RequestRecord, status: int, code: str, stages: dict[str, float]) -> None:
    """Record an answered request, and its stages when it succeeded."""
    try:
        served = record.model in core.model_names
        model = record.model if served else ""
        core.metrics.observe_request(
            model=model,
            version=record.version if served else "",
            api=record.api,
            entrypoint=record.entrypoint,
            http_status=status,
            code=code,
            seconds=time.perf_counter() - record.started,
        )
        if code == "OK":
            core.metrics.observe_stages(model=model, api=record.api, stages=stages)
    except Exception:  # NOTE: metrics must never fail a request that has been answered
        log.exception("Recording request metrics failed")


def _end_span(span: RequestSpan, record: RequestRecord, status: int, code: str, intervals: list[Interval]) -> None:
    """Close the request's span (the HTTP status only for REST: a gRPC call has none)."""
    try:
        span.end(record, code, status if record.entrypoint == REST else None, intervals)
    except Exception:  # NOTE: as the metrics, tracing must never fail a request that has been answered
        log.exception("Ending the request's span failed")
