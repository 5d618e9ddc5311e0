"""TF Serving's API messages to the inference service's types and back (no transport, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from tfaas.codecs import tf_serving_proto as codec
from tfaas.core.servable_id import ServableId
from tfaas.core.states import ManagerState, ServableState
from tfaas.errors import InvalidArgument
from tfaas.inference.types import (
    ClassifyResult,
    ModelMetadata,
    MultiInferenceResult,
    PredictResult,
    RegressResult,
    ServedSpec,
)
from tfaas.server_core import ModelSpec


def spec(**fields) -> model_pb2.ModelSpec:
    message = model_pb2.ModelSpec(**{k: v for k, v in fields.items() if k != "version"})
    if "version" in fields:
        message.version.value = fields["version"]
    return message


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (spec(name="m"), ModelSpec("m")),
        (spec(name="m", version=0), ModelSpec("m", version=0)),  # NOTE: a set Int64Value of 0 is a version
        (spec(name="m", version=3), ModelSpec("m", version=3)),
        (spec(name="m", version_label="stable"), ModelSpec("m", label="stable")),
    ],
)
def test_model_spec_version_or_label(message, expected) -> None:
    assert codec.model_spec(message) == expected


def test_a_model_spec_needs_a_name_and_some_requests_need_a_spec() -> None:
    with pytest.raises(InvalidArgument, match=r"^ModelSpec has no name specified\.$"):
        codec.model_spec(spec())
    with pytest.raises(InvalidArgument, match=r"^Missing ModelSpec$"):
        codec.examples_request(classification_pb2.ClassificationRequest())


def example(**floats: float) -> example_pb2.Example:
    message = example_pb2.Example()
    for key, value in floats.items():
        message.features.feature[key].float_list.value.append(value)
    return message


def test_examples_with_a_context_put_its_bytes_first() -> None:
    message = input_pb2.Input()
    message.example_list_with_context.context.CopyFrom(example(n=1))
    message.example_list_with_context.examples.extend([example(x=2), example(x=3)])
    serialized = codec.examples(message)
    assert serialized == [example(n=1).SerializeToString() + example(x=v).SerializeToString() for v in (2, 3)]
    with pytest.raises(InvalidArgument, match=r"^Input is empty\.$"):
        codec.examples(input_pb2.Input())


def test_predict_request_and_response() -> None:
    request = predict_pb2.PredictRequest(model_spec=spec(name="m", version_label="canary"), output_filter=["y"])
    request.inputs["x"].dtype = 1
    request.inputs["x"].tensor_shape.dim.add().size = 2
    request.inputs["x"].float_val.append(4.0)
    decoded = codec.predict_request(request, 1 << 20)
    assert decoded.spec == ModelSpec("m", label="canary") and decoded.signature_name == "serving_default"
    assert decoded.output_filter == ("y",) and decoded.inputs["x"].tolist() == [4.0, 4.0]
    result = codec.predict_response(PredictResult(ServedSpec("m", 2, "serving_default"), {"y": np.float32([1.5])}))
    assert result.model_spec.version.value == 2 and result.model_spec.signature_name == "serving_default"
    assert list(result.outputs["y"].float_val) == [1.5]


def test_classification_and_regression_results() -> None:
    classes = np.array([[b"a", b"b"]], object)
    scores = np.float32([[0.25, 0.75]])
    response = codec.classification_response(ClassifyResult(ServedSpec("m", 1, "c"), classes, scores))
    assert [(c.label, c.score) for c in response.result.classifications[0].classes] == [("a", 0.25), ("b", 0.75)]
    only_scores = codec.classification_response(ClassifyResult(ServedSpec("m", 1, "c"), None, scores))
    assert [c.label for c in only_scores.result.classifications[0].classes] == ["", ""]
    multi = codec.multi_inference_response(
        MultiInferenceResult(
            [
                ClassifyResult(ServedSpec("m", 1, "c"), classes, None),
                RegressResult(ServedSpec("m", 1, "r"), np.float32([[0.5]])),
            ]
        )
    )
    assert multi.results[0].model_spec.signature_name == "c"
    assert multi.results[0].classification_result.classifications[0].classes[1].score == 0
    assert [r.value for r in multi.results[1].regression_result.regressions] == [0.5]


def test_multi_inference_tasks() -> None:
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add(model_spec=spec(name="m", version=1), method_name="tensorflow/serving/classify")
    request.tasks.add(
        model_spec=spec(name="m", version=1, signature_name="r"), method_name="tensorflow/serving/regress"
    )
    request.input.example_list.examples.add()
    decoded = codec.multi_inference_request(request)
    assert [(t.spec, t.signature_name) for t in decoded.tasks] == [
        (ModelSpec("m", version=1), "serving_default"),
        (ModelSpec("m", version=1), "r"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([], "GetModelMetadataRequest must specify at least one metadata_field"),
        (["signature_def", "other"], "Metadata field other is not supported"),
    ],
)
def test_metadata_fields_as_tf_serving_checks_them(fields, message) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec(name="m"), metadata_field=fields)
    with pytest.raises(InvalidArgument, match=f"^{message}$"):
        codec.metadata_model_spec(request)
    with pytest.raises(InvalidArgument, match="^Missing ModelSpec$"):
        codec.metadata_model_spec(get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]))


def test_metadata_packs_a_signature_def_map() -> None:
    signature_defs = {"signature_def": {"serving_default": {"method_name": "tensorflow/serving/predict"}}}
    response = codec.metadata_response(ModelMetadata(ServedSpec("m", 7), signature_defs))
    assert response.model_spec.name == "m" and response.model_spec.version.value == 7
    assert not response.model_spec.signature_name
    unpacked = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(unpacked)
    assert unpacked.signature_def["serving_default"].method_name == "tensorflow/serving/predict"


def test_status() -> None:
    states = [
        ServableState(ServableId("m", 2), ManagerState.END, "it broke"),
        ServableState(ServableId("m", 1), ManagerState.AVAILABLE),
    ]
    response = codec.status_response(states)
    assert [
        (s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state)) for s in response.model_version_status
    ] == [
        (2, "END"),
        (1, "AVAILABLE"),
    ]
    assert response.model_version_status[0].status.error_message == "it broke"
    assert response.model_version_status[1].status.error_code == 0
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec(name="m", version_label="x"))
    assert codec.status_version(request) is None  # NOTE: TF Serving ignores a label here
    assert codec.status_version(get_model_status_pb2.GetModelStatusRequest(model_spec=spec(name="m", version=1))) == 1


def server_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_reload_config_models_are_checked_as_a_config_files(tmp_path: Path) -> None:
    config = server_config(
        f'model_config_list {{ config {{ name: "a" base_path: "{tmp_path}" version_labels {{ key: "s" value: 1 }} }} }}'
    )
    (model,) = codec.model_configs(config)
    assert model.name == "a" and model.base_path == str(tmp_path) and dict(model.version_labels) == {"s": 1}
    assert codec.model_configs(server_config("model_config_list {}")) == []
    with pytest.raises(InvalidArgument, match="Only ModelConfigList is currently supported"):
        codec.model_configs(server_config(""))
    duplicate = server_config(
        f'model_config_list {{ config {{ name: "a" base_path: "{tmp_path}" }} config {{ name: "a" base_path: "/x" }} }}'
    )
    with pytest.raises(InvalidArgument, match=r"models\[1\]\.name: duplicate model name 'a'"):
        codec.model_configs(duplicate)
