"""Counting and timing every inference request once, whichever front it came through.

A front opens a :class:`RequestRecord` around all its work on a request (parse, the service call,
encode) with :func:`recorded`; the service notes the version it took a handle on; when the ``with``
ends the request is counted with its outcome: OK, or the code and HTTP status of the ``TfaasError`` that
ended it (500 for anything else, 499 for a client that went away).

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
    from tfaas.server_core import ServerCore

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
    request_timing.begin()
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
        _observe(core, record, status, code)


def _observe(core: ServerCore, record: RequestRecord, status: int, code: str) -> None:
    """Record an answered request, and its stages (collected in this context) when it succeeded."""
    stages = request_timing.take()
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
