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
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from tfaas import request_timing
from tfaas.errors import TfaasError
from tfaas.request_tally import Observation

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


def recorded(core: ServerCore, api: str, model: str = "", entrypoint: str = REST) -> Recording:
    """Count and time the request the ``with`` body serves; exceptions pass through, counted."""
    return Recording(core, api, model, entrypoint)


class Recording:
    """The context manager of :func:`recorded`.

    NOTE: a class, not a generator ``contextmanager``: every request enters one, and a generator's
    context manager costs several times as much to enter and leave.
    """

    __slots__ = ("_core", "_record", "_token", "_span")

    def __init__(self, core: ServerCore, api: str, model: str = "", entrypoint: str = REST) -> None:
        self._core = core
        self._record = RequestRecord(api, model, entrypoint)
        self._token: Token[RequestRecord | None] | None = None
        self._span: RequestSpan | None = None

    def __enter__(self) -> RequestRecord:
        self._token = _current.set(self._record)
        tracing = self._core.tracing
        self._span = tracing.request(self._record) if tracing is not None else None
        request_timing.begin(intervals=self._span is not None)
        self._core.metrics.tally.started()  # NOTE: last, as only an entered recording ends
        return self._record

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
        status, code = _outcome(exc)
        stages = request_timing.take()
        _observe(self._core, self._record, status, code, stages.seconds)
        if self._span is not None:
            _end_span(self._span, self._record, status, code, stages.intervals or [])


def _outcome(exc: BaseException | None) -> tuple[int, str]:
    """The HTTP status and TF Serving code a request ended with, from the exception that ended it (if any;
    one that is not an ``Exception``, a worker's exit, leaves it counted as answered)."""
    if isinstance(exc, TfaasError):
        return exc.http_status, exc.code
    if isinstance(exc, asyncio.CancelledError):
        return 499, "CANCELLED"
    if isinstance(exc, Exception):
        return 500, "INTERNAL"
    return 200, "OK"


def _observe(core: ServerCore, record: RequestRecord, status: int, code: str, stages: dict[str, float]) -> None:
    """Count an answered request in the metrics (its stages when it succeeded), through the tally."""
    served = record.model in core.model_names
    seconds = time.perf_counter() - record.started
    model, version = (record.model, record.version) if served else ("", "")
    core.metrics.tally.ended(Observation(model, version, record.api, record.entrypoint, status, code, seconds, stages))


def _end_span(span: RequestSpan, record: RequestRecord, status: int, code: str, intervals: list[Interval]) -> None:
    """Close the request's span (the HTTP status only for REST: a gRPC call has none)."""
    try:
        span.end(record, code, status if record.entrypoint == REST else None, intervals)
    except Exception:  # NOTE: as the metrics, tracing must never fail a request that has been answered
        log.exception("Ending the request's span failed")
