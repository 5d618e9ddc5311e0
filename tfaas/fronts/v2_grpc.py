"""The Open Inference Protocol's gRPC API (KServe V2): ``inference.GRPCInferenceService`` over the inference
service, beside TF Serving's services on the gRPC port (:mod:`tfaas.server.grpc_listener`).

ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer, from the protocol's own
``.proto`` (:mod:`tfaas.protos.open_inference_grpc_pb2`), each a thin call as in TF Serving's gRPC front:
parse with :mod:`tfaas.codecs.v2_proto`, call the service inside ``service.recorded(...)`` (entrypoint ``V2``),
encode; a ``TfaasError`` ends the call with the gRPC status of its code. ModelReady and ServerReady answer
``ready: false`` rather than an error for what does not serve. ``ModelInfer`` takes the request's bytes, so
a small one is parsed and answered on the event loop (its model call awaited) and a large one on the
service's pool, as TF Serving's ``Predict``.

tritonclient calls Triton's proto: the same package and service name, these RPCs with the same messages, and
more of its own (statistics, model config, repository, shared memory, trace, logging, streaming). Every
other method of the service is answered ``UNIMPLEMENTED``, naming what this server offers instead.
"""

from __future__ import annotations

from typing import Any, Callable

import grpc
from google.protobuf.message import DecodeError

from tfaas import request_timing
from tfaas.codecs import v2, v2_proto
from tfaas.codecs.v2_proto import InferProto
from tfaas.errors import InvalidArgument, NotFound, Unavailable
from tfaas.fronts import LOOP_REQUEST_BYTES
from tfaas.fronts.grpc_answer import answered
from tfaas.inference.request_metrics import V2, RequestRecord
from tfaas.inference.service import InferenceService
from tfaas.protos import open_inference_grpc_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
UNIMPLEMENTED = (
    "tfaas serves ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer of"
    " inference.GRPCInferenceService; the model repository is on the REST port (POST /v2/repository/...)"
)


class InferenceServicer:
    """``inference.GRPCInferenceService`` over ``service``."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._call(context, "health", lambda record: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._call(
            context, "health", lambda record: pb.ServerReadyResponse(ready=self._service.core.is_ready())
        )

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        def answer(record: RequestRecord) -> Any:
            record.model = request.name
            try:
                self._service.model_ready(v2.model_spec(request.name, request.version))
            except (NotFound, Unavailable):
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self._call(context, "status", answer)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._call(context, "metadata", lambda record: v2_proto.server_metadata())

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        def answer(record: RequestRecord) -> Any:
            record.model = request.name
            spec = v2.model_spec(request.name, request.version)
            return v2_proto.model_metadata(self._service.signature_metadata(spec))

        return await self._call(context, "metadata", answer)

    async def ModelInfer(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # noqa: N802
        """A serialized ``ModelInferRequest`` in, a serialized ``ModelInferResponse`` out."""

        async def answer(record: RequestRecord) -> bytes:
            if len(request) > LOOP_REQUEST_BYTES:
                return await self._service.in_pool(self._infer_on_this_thread, request, record)
            call = _parsed(request, record)
            result = await self._service.predict_async(call.request())
            with request_timing.timed("encode"):
                return call.response(result).SerializeToString()

        return await answered(self._service, context, "predict", V2, answer)

    def _infer_on_this_thread(self, request: bytes, record: RequestRecord) -> bytes:
        call = _parsed(request, record)
        result = self._service.predict(call.request())
        with request_timing.timed("encode"):
            return call.response(result).SerializeToString()

    async def _call(self, context: grpc.aio.ServicerContext, api: str, answer: Callable[[RequestRecord], Any]) -> Any:
        """``answer``'s result, counted as one ``api`` request of the V2 entrypoint; its error as the call's status."""

        async def answered_now(record: RequestRecord) -> Any:
            return answer(record)

        return await answered(self._service, context, api, V2, answered_now)


def _parsed(data: bytes, record: RequestRecord) -> InferProto:
    """The request (parsing timed as ``parse``), its model named in the request's metrics."""
    with request_timing.timed("parse"):
        try:
            proto = pb.ModelInferRequest.FromString(data)
        except DecodeError:
            raise InvalidArgument("Could not parse the ModelInferRequest") from None
        record.model = proto.model_name
        return InferProto(proto)


class _Handler(grpc.GenericRpcHandler):
    """The service's methods, and ``UNIMPLEMENTED`` with :data:`UNIMPLEMENTED` for any other of its name."""

    def __init__(self, servicer: InferenceServicer) -> None:
        self._methods = {
            "ServerLive": _method(servicer.ServerLive, pb.ServerLiveRequest),
            "ServerReady": _method(servicer.ServerReady, pb.ServerReadyRequest),
            "ModelReady": _method(servicer.ModelReady, pb.ModelReadyRequest),
            "ServerMetadata": _method(servicer.ServerMetadata, pb.ServerMetadataRequest),
            "ModelMetadata": _method(servicer.ModelMetadata, pb.ModelMetadataRequest),
            "ModelInfer": grpc.unary_unary_rpc_method_handler(servicer.ModelInfer),
        }
        self._unimplemented = grpc.unary_unary_rpc_method_handler(_unimplemented)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if service != SERVICE:
            return None
        return self._methods.get(method, self._unimplemented)


def _method(call: Callable[..., Any], request_type: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=request_type.FromString, response_serializer=lambda r: r.SerializeToString()
    )


async def _unimplemented(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, UNIMPLEMENTED)
    raise AssertionError("context.abort returns only by raising")


def add_to_server(server: grpc.aio.Server, service: InferenceService) -> None:
    """Serve ``inference.GRPCInferenceService`` over ``service`` on ``server``."""
    server.add_generic_rpc_handlers((_Handler(InferenceServicer(service)),))
