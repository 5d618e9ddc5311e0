"""TF Serving's gRPC API: ``tensorflow.serving.PredictionService`` and ``ModelService`` over the inference
service, with the servicers ``tensorflow-serving-api`` ships (no hand-written protos).

A thin front: each RPC parses its message with :mod:`tfaas.codecs.tf_serving_proto`, calls the
:class:`~tfaas.inference.service.InferenceService` inside ``service.recorded(api, model, GRPC)``, and
encodes the result. Errors are TF Serving's (:mod:`tfaas.fronts.grpc_answer`): a ``TfaasError`` ends the call
with the gRPC status of its code name and its message; anything else is ``INTERNAL``. No client message can
end the worker.

Where the work runs, on the worker's event loop or off it: ``Predict`` takes the request's bytes (no
deserializer), so a small one (up to :data:`~tfaas.fronts.LOOP_REQUEST_BYTES`) is parsed, decoded and encoded on the
loop, its model call awaited (``predict_async``: the batcher's thread wakes the loop), and a large one
does all of it on the service's pool, the loop never stalls on a large message. Classify, regress,
multi-inference, metadata and reloads run on the pool (their model calls block); status on the loop.

As TF Serving's gRPC API (not its REST API), a ``Predict`` of an unknown signature is
``FAILED_PRECONDITION``: ``Serving signature key "x" not found.``. A ``HandleReloadConfigRequest``
returns once the new models serve (as TF Serving's) and reports no ``metric`` (TF Serving's are its C++
counters).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfaas import request_timing
from tfaas.codecs import tf_serving_proto as codec
from tfaas.errors import FailedPrecondition, InvalidArgument, SignatureNotFound
from tfaas.fronts import LOOP_REQUEST_BYTES
from tfaas.fronts.grpc_answer import answered
from tfaas.inference.request_metrics import GRPC, RequestRecord
from tfaas.inference.service import InferenceService
from tfaas.inference.types import PredictRequest

log = logging.getLogger("tfaas.grpc")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over ``service``; a predict input may decode to at most
    ``max_tensor_bytes`` (a few bytes of ``float_val`` may ask for any shape)."""

    def __init__(self, service: InferenceService, max_tensor_bytes: int) -> None:
        self._service = service
        self._max_tensor_bytes = max_tensor_bytes

    async def Predict(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # noqa: N802
        """A serialized ``PredictRequest`` in, a serialized ``PredictResponse`` out (see :func:`add_to_server`)."""

        async def answer(record: RequestRecord) -> bytes:
            try:
                if len(request) <= LOOP_REQUEST_BYTES:
                    result = await self._service.predict_async(self._predict_request(request, record))
                    return _encoded(codec.predict_response, result)
                return await self._service.in_pool(self._predict_off_loop, request, record)
            except SignatureNotFound as error:
                raise FailedPrecondition(f'Serving signature key "{error.signature_name}" not found.') from None

        return await answered(self._service, context, "predict", GRPC, answer)

    def _predict_off_loop(self, request: bytes, record: RequestRecord) -> bytes:
        return _encoded(codec.predict_response, self._service.predict(self._predict_request(request, record)))

    def _predict_request(self, data: bytes, record: RequestRecord) -> PredictRequest:
        with request_timing.timed("parse"):
            try:
                proto = predict_pb2.PredictRequest.FromString(data)
            except DecodeError:
                raise InvalidArgument("Could not parse the PredictRequest") from None
            record.model = proto.model_spec.name
            return codec.predict_request(proto, self._max_tensor_bytes)

    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._examples_call(request, context, "classify", codec.classification_response)

    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._examples_call(request, context, "regress", codec.regression_response)

    async def _examples_call(
        self, request: Any, context: grpc.aio.ServicerContext, api: str, encode: Callable[[Any], Any]
    ) -> Any:
        """Classify and regress: the request's tf.Examples run by the service's method of that name, on its pool."""

        async def answer(record: RequestRecord) -> Any:
            record.model = request.model_spec.name
            return encode(await self._service.in_pool(getattr(self._service, api), codec.examples_request(request)))

        return await answered(self._service, context, api, GRPC, answer)

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        async def answer(record: RequestRecord) -> Any:
            record.model = request.tasks[0].model_spec.name if request.tasks else ""
            result = await self._service.in_pool(self._service.multi_inference, codec.multi_inference_request(request))
            return codec.multi_inference_response(result)

        return await answered(self._service, context, "multi_inference", GRPC, answer)

    async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        async def answer(record: RequestRecord) -> Any:
            record.model = request.model_spec.name
            spec = codec.metadata_model_spec(request)
            return await self._service.in_pool(lambda: codec.metadata_response(self._service.metadata(spec)))

        return await answered(self._service, context, "metadata", GRPC, answer)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService`` over ``service``."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        async def answer(record: RequestRecord) -> Any:
            record.model = request.model_spec.name
            version = codec.status_version(request)
            return codec.status_response(self._service.status(request.model_spec.name, version))

        return await answered(self._service, context, "status", GRPC, answer)

    async def HandleReloadConfigRequest(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Serve exactly the request's model list from now on; answers once its models serve."""

        async def answer(record: RequestRecord) -> Any:
            models = codec.model_configs(request.config)
            log.info("HandleReloadConfigRequest: serving %s", ", ".join(m.name for m in models) or "no model")
            await self._service.in_pool(self._service.reload_config, models)
            return model_management_pb2.ReloadConfigResponse()

        return await answered(self._service, context, "reload_config", GRPC, answer)


def add_to_server(server: grpc.aio.Server, prediction: PredictionServicer, model: ModelServicer) -> None:
    """Serve both services on ``server``; ``Predict`` with no (de)serializer (it handles the bytes)."""
    methods = {
        "Predict": grpc.unary_unary_rpc_method_handler(prediction.Predict),
        "Classify": _method(prediction.Classify, classification_pb2.ClassificationRequest),
        "Regress": _method(prediction.Regress, regression_pb2.RegressionRequest),
        "MultiInference": _method(prediction.MultiInference, inference_pb2.MultiInferenceRequest),
        "GetModelMetadata": _method(prediction.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(PREDICTION_SERVICE, methods),))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)


def _method(call: Callable[..., Any], request_type: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=request_type.FromString, response_serializer=_serialized
    )


def _serialized(response: Any) -> bytes:
    return response.SerializeToString()


def _encoded(encode: Callable[[Any], Any], result: Any) -> bytes:
    with request_timing.timed("encode"):
        return encode(result).SerializeToString()
