"""TF Serving's protobuf messages (``tensorflow_serving.apis``) to the inference service's types and back.

What TF Serving's gRPC API carries, and its warmup records too: model specs, ``Input``\\ s of tf.Examples,
predict, classify, regress and multi-inference requests and responses, metadata, status, and the
``ModelServerConfig`` of a config reload. Tensors go through :mod:`tfaas.codecs.tensor_proto`. Checks and
messages are TF Serving's (``Missing ModelSpec``, ``ModelSpec has no name specified.``, ...).

The ``tensorflow_serving`` modules import TensorFlow's package: import this module where TensorFlow is
(a worker), never in the master.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from tfaas.codecs import tensor_proto
from tfaas.codecs.examples_proto import examples
from tfaas.config import ModelConfig, models_from_server_config
from tfaas.core.states import ServableState
from tfaas.errors import ConfigError, InvalidArgument
from tfaas.inference.types import (
    ClassifyResult,
    ExamplesRequest,
    InferenceTask,
    ModelMetadata,
    MultiInferenceRequest,
    MultiInferenceResult,
    PredictRequest,
    PredictResult,
    RegressResult,
    ServedSpec,
)
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE

SIGNATURE_DEF_FIELD = "signature_def"
"""The one ``metadata_field`` TF Serving's GetModelMetadata supports."""

_UNKNOWN_ERROR_CODE = 2  # NOTE: tensorflow.error.Code UNKNOWN, the status of a version that failed (as REST writes it)


# ---- model specs ------------------------------------------------------------------------------------


def model_spec(proto: Any) -> ModelSpec:
    """A request's ``ModelSpec``: its name, and its version (``google.protobuf.Int64Value``) or label."""
    if not proto.name:
        raise InvalidArgument("ModelSpec has no name specified.")
    choice = proto.WhichOneof("version_choice")
    if choice == "version":
        return ModelSpec(proto.name, version=proto.version.value)
    if choice == "version_label":
        return ModelSpec(proto.name, label=proto.version_label)
    return ModelSpec(proto.name)


def required_model_spec(request: Any) -> ModelSpec:
    """The ``model_spec`` of a request that must carry one (TF Serving's ``Missing ModelSpec`` otherwise)."""
    if not request.HasField("model_spec"):
        raise InvalidArgument("Missing ModelSpec")
    return model_spec(request.model_spec)


def signature_name(proto: Any) -> str:
    """A ``ModelSpec``'s signature, ``serving_default`` when it names none."""
    return proto.signature_name or DEFAULT_SIGNATURE


def write_served_spec(served: ServedSpec, proto: Any, with_signature: bool = True) -> None:
    """Fill a response's ``model_spec`` with the version that answered (and the signature it ran)."""
    proto.name = served.name
    proto.version.value = served.version
    if with_signature:
        proto.signature_name = served.signature_name


# ---- predict ---------------------------------------------------------------------------------------


def predict_request(proto: Any, max_tensor_bytes: int) -> PredictRequest:
    """A ``PredictRequest`` with its inputs decoded (each at most ``max_tensor_bytes`` as an array)."""
    inputs = {alias: tensor_proto.decode(tensor, alias, max_tensor_bytes) for alias, tensor in proto.inputs.items()}
    return PredictRequest(
        spec=model_spec(proto.model_spec),
        inputs=inputs,
        signature_name=signature_name(proto.model_spec),
        output_filter=tuple(proto.output_filter),
    )


def predict_response(result: PredictResult) -> Any:
    response = predict_pb2.PredictResponse()
    write_served_spec(result.spec, response.model_spec)
    for alias, array in result.outputs.items():
        tensor_proto.encode(array, response.outputs[alias])
    return response


# ---- classify, regress, multi-inference ------------------------------------------------------------


def examples_request(proto: Any) -> ExamplesRequest:
    """A ``ClassificationRequest`` or ``RegressionRequest`` as the service's request."""
    spec = required_model_spec(proto)
    return ExamplesRequest(spec, examples(proto.input), signature_name(proto.model_spec))


def classification_response(result: ClassifyResult) -> Any:
    response = classification_pb2.ClassificationResponse()
    write_served_spec(result.spec, response.model_spec)
    _write_classifications(result, response.result)
    return response


def regression_response(result: RegressResult) -> Any:
    response = regression_pb2.RegressionResponse()
    write_served_spec(result.spec, response.model_spec)
    _write_regressions(result, response.result)
    return response


def multi_inference_request(proto: Any) -> MultiInferenceRequest:
    tasks = [
        InferenceTask(model_spec(task.model_spec), signature_name(task.model_spec), task.method_name)
        for task in proto.tasks
    ]
    return MultiInferenceRequest(tasks, examples(proto.input))


def multi_inference_response(result: MultiInferenceResult) -> Any:
    response = inference_pb2.MultiInferenceResponse()
    for outcome in result.results:
        entry = response.results.add()
        write_served_spec(outcome.spec, entry.model_spec)
        if isinstance(outcome, ClassifyResult):
            _write_classifications(outcome, entry.classification_result)
        else:
            _write_regressions(outcome, entry.regression_result)
    return response


def _write_classifications(result: ClassifyResult, proto: Any) -> None:
    """One ``Classifications`` per example, one ``Class`` per class: its label (``""`` where the signature has
    no classes output) and its score (0 where it has no scores output)."""
    source = result.scores if result.scores is not None else result.classes
    assert source is not None  # NOTE: the servable refuses a classification signature with neither output
    for row in range(source.shape[0]):
        classes = proto.classifications.add().classes
        for column in range(source.shape[1]):
            entry = classes.add()
            if result.classes is not None:
                entry.label = _text(result.classes[row, column])
            if result.scores is not None:
                entry.score = float(result.scores[row, column])


def _write_regressions(result: RegressResult, proto: Any) -> None:
    for value in result.values.reshape(-1).tolist():
        proto.regressions.add().value = value


def _text(label: Any) -> str:
    return label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)


# ---- metadata, status, config ----------------------------------------------------------------------


def metadata_model_spec(proto: Any) -> ModelSpec:
    """The model spec of a ``GetModelMetadataRequest``, after TF Serving's checks of its fields."""
    spec = required_model_spec(proto)
    if not proto.metadata_field:
        raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in proto.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise InvalidArgument(f"Metadata field {field} is not supported")
    return spec


def metadata_response(metadata: ModelMetadata) -> Any:
    """``metadata["signature_def"]``: an ``Any`` packing the version's ``SignatureDefMap``."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    write_served_spec(metadata.spec, response.model_spec, with_signature=False)
    signature_defs = json_format.ParseDict(metadata.signature_def_map, get_model_metadata_pb2.SignatureDefMap())
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
    return response


def status_version(proto: Any) -> int | None:
    """The version a ``GetModelStatusRequest`` asks about (``None``: all). As TF Serving, a label is ignored."""
    required_model_spec(proto)
    return proto.model_spec.version.value if proto.model_spec.HasField("version") else None


def status_response(states: Sequence[ServableState]) -> Any:
    response = get_model_status_pb2.GetModelStatusResponse()
    for state in states:
        entry = response.model_version_status.add()
        entry.version = state.id.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state.state.name)
        entry.status.SetInParent()  # NOTE: present even when OK, as TF Serving writes it
        if state.error:
            entry.status.error_code = _UNKNOWN_ERROR_CODE
            entry.status.error_message = state.error
    return response


def model_configs(config: Any) -> list[ModelConfig]:
    """The models of a ``ReloadConfigRequest``'s ``ModelServerConfig``, validated as a config file's
    (relative base paths from the server's working directory); ``InvalidArgument`` where they are not."""
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidArgument(
            "ServerModelConfig type not supported by HandleReloadConfigRequest. Only ModelConfigList is currently"
            " supported"
        )
    try:
        return list(models_from_server_config(config, os.getcwd(), "ReloadConfigRequest.config") or ())
    except ConfigError as error:
        raise InvalidArgument(str(error)) from None
