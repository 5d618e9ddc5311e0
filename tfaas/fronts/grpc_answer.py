"""How every gRPC front ends a call: its work counted as one request of the service, a ``TfaasError`` as the
call's status.

A ``TfaasError`` ends the call with the gRPC status of its code name (``NOT_FOUND``, ``INVALID_ARGUMENT``,
``UNAVAILABLE``, ...) and its message, past :data:`MESSAGE_LIMIT` characters cut with ``...TRUNCATED`` (as
TF Serving's ``ToGRPCStatus``); anything else is a fault of the server: ``INTERNAL`` with a generic message,
the traceback logged. No client message can end the worker.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, TypeVar

import grpc

from tfaas.errors import TfaasError
from tfaas.inference.request_metrics import RequestRecord
from tfaas.inference.service import InferenceService

log = logging.getLogger("tfaas.grpc")

T = TypeVar("T")

MESSAGE_LIMIT = 1024
"""TF Serving cuts an error message longer than this (``kErrorMessageLimit``)."""

INTERNAL_MESSAGE = "Internal error while serving the request (the server's log has the details)"


async def answered(
    service: InferenceService,
    context: grpc.aio.ServicerContext,
    api: str,
    entrypoint: str,
    answer: Callable[[RequestRecord], Awaitable[T]],
) -> T:
    """``answer``'s result, counted as one ``api`` request of ``entrypoint``; its error as the call's status."""
    try:
        with service.recorded(api, entrypoint=entrypoint) as record:
            return await answer(record)
    except TfaasError as error:
        await context.abort(_status_code(error.code), _truncated(error.message))
    except Exception:  # NOTE: a fault of the server, never of the client: no detail goes out
        log.exception("gRPC %s failed", api)
        await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    raise AssertionError("context.abort returns only by raising")


def _status_code(code: str) -> grpc.StatusCode:
    return grpc.StatusCode[code] if code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN


def _truncated(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "...TRUNCATED"
