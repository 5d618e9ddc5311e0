"""The gRPC side of :func:`tfaas.tracing.receive`: each call's metadata, for the span of its request."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import grpc

from tfaas import tracing


class TraceMetadata(grpc.aio.ServerInterceptor):
    """Hands every call's metadata (its ``traceparent``, if any) to :func:`tfaas.tracing.receive`.

    NOTE: grpc.aio finds a call's handler, through its interceptors, in the task that then runs the
    handler: what is set here is what the handler's request record sees."""

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        tracing.receive(handler_call_details.invocation_metadata or ())
        return await continuation(handler_call_details)
