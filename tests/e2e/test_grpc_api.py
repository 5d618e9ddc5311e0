"""TF Serving's gRPC API end to end: the real server (gunicorn, two workers) driven with the stubs that
``tensorflow-serving-api`` ships, as TF Serving's users drive theirs.

One server serves most tests: ``half_plus_two`` (TF2, the README's example), ``labelled`` (TF2, versions 1
and 2 with the labels ``stable`` and ``canary``), ``tf1`` (TF Serving's TF1 half_plus_two export, with
classify and regress signatures), ``swap`` (a version is dropped in under load), ``removed`` (a config
reload removes it) and ``slow`` (its load takes :data:`SLOW_LOAD_SECONDS`: the server is not ready, and
``slow`` is loading, until then). The golden comparison uses the session's ``multi`` server; the SIGTERM
test a server of its own.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format, text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import REPO, ServerProcess, wait_for
from tests.e2e.slow_models import write_sleepy_model, write_slow_loading_model
from tests.tfserving_models import write_half_plus_two_tf1

pytestmark = pytest.mark.e2e

SLOW_LOAD_SECONDS = 25
TIMEOUT = 30
GOLDEN = REPO / "tests" / "golden"


# ---- the server and its clients -------------------------------------------------------------------


def config_text(root: Path, *, added: bool = False, removed: bool = True) -> str:
    """The model list: the server's at start, and the one a reload applies (``added`` in, ``removed`` out)."""
    labels = 'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }'
    configs = [
        model_config("half_plus_two", root / "half_plus_two"),
        model_config("labelled", root / "labelled", "model_version_policy { all {} } " + labels),
        model_config("tf1", root / "tf1"),
        model_config("swap", root / "swap"),
        model_config("slow", root / "slow"),
    ]
    if removed:
        configs.append(model_config("removed", root / "removed"))
    if added:
        configs.append(model_config("added", root / "added"))
    return model_config_list(configs)


@pytest.fixture(scope="module")
def root(tmp_path_factory, half_plus) -> Path:
    root = tmp_path_factory.mktemp("grpc")
    install_version(half_plus(2), root / "half_plus_two", 1)
    install_version(half_plus(2), root / "labelled", 1)
    install_version(half_plus(3), root / "labelled", 2)
    write_half_plus_two_tf1(root / "tf1" / "123", classify_x2_to_y3=True)
    install_version(half_plus(2), root / "swap", 1)
    install_version(half_plus(2), root / "removed", 1)
    install_version(half_plus(5), root / "added", 1)
    write_slow_loading_model(root / "slow" / "1", SLOW_LOAD_SECONDS)
    (root / "models.config").write_text(config_text(root))
    return root


@pytest.fixture(scope="module")
def server(start_server, root: Path) -> ServerProcess:
    """Two workers, so that the swap runs through their windows; returned as soon as gRPC answers."""
    server = start_server(
        "--model_config_file",
        str(root / "models.config"),
        "--grpc_socket_path",
        str(root / "grpc.sock"),
        "--file_system_poll_wait_seconds",
        "0.5",
        "--version_settle_seconds",
        "0.5",
        env={"TFAAS_WORKERS": "2"},
    )
    wait_for(lambda: health_status(server, "") is not None, timeout=120, interval=0.1)
    return server


@pytest.fixture(scope="module")
def channel(server: ServerProcess):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def predictions(channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def serving(server: ServerProcess) -> ServerProcess:
    """The server once the models the tests predict with serve (``slow`` may still load)."""
    for name, version in (("half_plus_two", 1), ("labelled", 1), ("labelled", 2), ("tf1", 123), ("swap", 1)):
        server.wait_available(name, version, timeout=120)
    return server


def health_status(server: ServerProcess, service: str) -> str | None:
    """The health service's answer for ``service`` (None while nothing answers gRPC)."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            raise
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def predict_request(
    model: str, x: Any, *, version: int | None = None, label: str = "", signature: str = ""
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    return request


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=TIMEOUT)
    return error.value


def examples(*values: dict[str, float]) -> list[example_pb2.Example]:
    made = []
    for features in values:
        example = example_pb2.Example()
        for key, value in features.items():
            example.features.feature[key].float_list.value.append(value)
        made.append(example)
    return made


# ---- while the server loads -----------------------------------------------------------------------


def test_health_says_not_serving_until_ready_and_loading_is_unavailable(server, predictions):
    """First in the module: ``slow`` takes its time, so the server is not ready yet."""
    names = ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService", "PredictionService")
    assert {name: health_status(server, name) for name in names} == dict.fromkeys(names, "NOT_SERVING")

    def slow_error() -> grpc.RpcError:
        error = rpc_error(predictions.Predict, predict_request("slow", [[1.0]]))
        return error if error.code() == grpc.StatusCode.UNAVAILABLE else None  # NOTE: NOT_FOUND before its scan

    error = wait_for(slow_error, timeout=SLOW_LOAD_SECONDS / 2, interval=0.2)
    assert error.details() == "Model slow is loading: version 1 is loading"
    assert health_status(server, "") == "NOT_SERVING"
    wait_for(lambda: health_status(server, "") == "SERVING", timeout=SLOW_LOAD_SECONDS + 90, interval=0.2)
    assert {name: health_status(server, name) for name in names} == dict.fromkeys(names, "SERVING")
    response = predictions.Predict(predict_request("slow", [[2.0]]), timeout=TIMEOUT)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[3.0]]


def test_reflection_lists_the_services(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services


# ---- every RPC ------------------------------------------------------------------------------------


def test_predict_by_version_label_and_latest_echoes_what_served(serving, predictions):
    for spec, version, y in (({}, 2, 3.5), ({"version": 1}, 1, 2.5), ({"label": "canary"}, 2, 3.5)):
        response = predictions.Predict(predict_request("labelled", [[1.0]], **spec), timeout=TIMEOUT)
        assert response.model_spec.name == "labelled"
        assert response.model_spec.version.value == version
        assert response.model_spec.signature_name == "serving_default"
        assert list(response.outputs["y"].float_val) == [y]  # NOTE: TF Serving's typed field, read directly


def test_predict_tf1_with_output_filter_and_typed_inputs(serving, predictions):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].dtype = tf.float32.as_datatype_enum
    request.inputs["x"].tensor_shape.dim.add().size = 3
    request.inputs["x"].float_val.extend([1.0, 2.0])  # NOTE: TensorFlow's rule: the last value fills the shape
    request.output_filter.append("y")
    response = predictions.Predict(request, timeout=TIMEOUT)
    assert response.model_spec.version.value == 123 and list(response.outputs) == ["y"]
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 3.0, 3.0]


def test_classify_regress_and_multi_inference(serving, predictions):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.extend(examples({"x": 2.0}, {"x": 4.0}))
    response = predictions.Classify(request, timeout=TIMEOUT)
    assert response.model_spec.version.value == 123 and response.model_spec.signature_name == "classify_x_to_y"
    assert [[(c.label, c.score) for c in row.classes] for row in response.result.classifications] == [
        [("", 3.0)],
        [("", 4.0)],
    ]

    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "regress_x_to_y2"
    request.input.example_list_with_context.context.CopyFrom(examples({"x": 10.0})[0])
    request.input.example_list_with_context.examples.extend(examples({"x": 2.0}, {}))
    response = predictions.Regress(request, timeout=TIMEOUT)
    assert [r.value for r in response.result.regressions] == [4.0, 8.0]  # NOTE: the context fills a missing x

    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y2", "regress")):
        task = request.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name, task.model_spec.signature_name = "tf1", signature
    request.input.example_list.examples.extend(examples({"x": 2.0}))
    response = predictions.MultiInference(request, timeout=TIMEOUT)
    classified, regressed = response.results
    assert classified.model_spec.signature_name == "classify_x_to_y"
    assert classified.classification_result.classifications[0].classes[0].score == 3.0
    assert regressed.model_spec.version.value == 123
    assert [r.value for r in regressed.regression_result.regressions] == [4.0]


def test_metadata_is_a_signature_def_map_equal_to_the_rest_one(serving, predictions):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "labelled"
    request.model_spec.version_label = "stable"
    response = predictions.GetModelMetadata(request, timeout=TIMEOUT)
    assert response.model_spec.name == "labelled" and response.model_spec.version.value == 1
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    rest = serving.get("/v1/models/labelled/labels/stable/metadata").json()["metadata"]["signature_def"]
    as_json = json_format.MessageToDict(
        signature_defs, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    assert as_json == rest
    assert signature_defs.signature_def["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum


def test_model_status(serving, models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "labelled"
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    states = [
        (s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state)) for s in response.model_version_status
    ]
    assert states == [(2, "AVAILABLE"), (1, "AVAILABLE")]
    assert all(s.HasField("status") and s.status.error_code == 0 for s in response.model_version_status)
    request.model_spec.version.value = 1
    assert [s.version for s in models.GetModelStatus(request, timeout=TIMEOUT).model_version_status] == [1]


# ---- errors: TF Serving's codes and texts -----------------------------------------------------------


def test_error_codes_and_texts(serving, predictions, models):
    cases = [
        (predict_request("nope", [[1.0]]), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (
            predict_request("labelled", [[1.0]], version=9),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(labelled, 9)",
        ),
        (
            predict_request("labelled", [[1.0]], label="nightly"),
            grpc.StatusCode.INVALID_ARGUMENT,  # NOTE: TF Serving's code for an unknown label
            "Unrecognized servable version label: nightly",
        ),
        (predict_request("", [[1.0]]), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (
            predict_request("labelled", [[1.0]], signature="nope"),
            grpc.StatusCode.FAILED_PRECONDITION,  # NOTE: TF Serving's gRPC Predict (its REST says 400 INVALID_ARGUMENT)
            'Serving signature key "nope" not found.',
        ),
    ]
    for request, code, details in cases:
        error = rpc_error(predictions.Predict, request)
        assert (error.code(), error.details()) == (code, details)

    wrong_input = predict_request("labelled", [[1.0]])
    wrong_input.inputs["z"].CopyFrom(wrong_input.inputs["x"])
    del wrong_input.inputs["x"]
    error = rpc_error(predictions.Predict, wrong_input)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("input size does not match signature: 1!=1 len({z}) != len({x}).")

    filtered = predict_request("labelled", [[1.0]])
    filtered.output_filter.append("nope")
    error = rpc_error(predictions.Predict, filtered)
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: nope Outputs expected to be in the set {y}.",
    )

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "tf1"
    classify.model_spec.signature_name = "nope"
    classify.input.example_list.examples.extend(examples({"x": 1.0}))
    error = rpc_error(predictions.Classify, classify)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nope" in error.details()
    classify.ClearField("input")
    error = rpc_error(predictions.Classify, classify)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["other"])
    metadata.model_spec.name = "labelled"
    error = rpc_error(predictions.GetModelMetadata, metadata)
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field other is not supported",
    )

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    error = rpc_error(models.GetModelStatus, status)
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
    error = rpc_error(models.GetModelStatus, get_model_status_pb2.GetModelStatusRequest())
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")

    reload = model_management_pb2.ReloadConfigRequest()
    error = rpc_error(models.HandleReloadConfigRequest, reload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("ServerModelConfig type not supported by HandleReloadConfigRequest.")


def test_malformed_messages_are_invalid_arguments_and_the_worker_answers_on(serving, channel, predictions):
    malformed = [
        ("tensor_content of the wrong size", b"\0" * 7, [2, 2]),
        ("a negative dimension", b"", [-1]),
        ("a shape of 2**60 floats from one value", b"", [1 << 30, 1 << 30]),
    ]
    for why, content, shape in malformed:
        request = predict_request("labelled", [[1.0]])
        tensor = request.inputs["x"]
        tensor.ClearField("tensor_content")
        tensor.ClearField("tensor_shape")
        for size in shape:
            tensor.tensor_shape.dim.add().size = size
        if content:
            tensor.tensor_content = content
        else:
            tensor.float_val.append(1.0)
        error = rpc_error(predictions.Predict, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, why
        assert error.details().startswith("tensor parsing error: x: "), why
    unknown_dtype = predict_request("labelled", [[1.0]])
    unknown_dtype.inputs["x"].dtype = 1234
    assert rpc_error(predictions.Predict, unknown_dtype).details() == "tensor parsing error: x: unsupported dtype 1234"
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    error = rpc_error(raw, b"\xff\xff\xff not a protobuf")
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Could not parse the PredictRequest")
    response = predictions.Predict(predict_request("half_plus_two", [[4.0]]), timeout=TIMEOUT)
    assert list(response.outputs["y"].float_val) == [4.0]


def test_a_large_request_is_answered_off_the_loop(serving):
    """A message past 64 KiB (here 5 MiB of tensor_content) takes the pool's path; the server takes it
    where grpc's default limit (4 MiB) would not: its limit is max_request_body_bytes."""
    x = np.arange(5 << 18, dtype=np.float32).reshape(-1, 1)
    options = [("grpc.max_receive_message_length", 64 << 20)]  # NOTE: the client's own limit, for the answer
    with grpc.insecure_channel(serving.grpc_target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("half_plus_two", x), timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), 0.5 * x + 2)


# ---- concurrency, swaps, reloads ----------------------------------------------------------------------


def test_the_unix_socket_serves_the_same_api(serving, root):
    """``--grpc_socket_path``: every worker in rotation takes its connections (forwarded to its gRPC server)."""
    with grpc.insecure_channel(f"unix:{root / 'grpc.sock'}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        futures = [stub.Predict.future(predict_request("half_plus_two", [[float(i)]]), timeout=60) for i in range(20)]
        assert [list(f.result().outputs["y"].float_val) for f in futures] == [[0.5 * i + 2] for i in range(20)]
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "half_plus_two"}), timeout=TIMEOUT
        )
    assert status.model_version_status[0].version == 1


def test_200_concurrent_calls_on_one_channel(serving, predictions):
    futures = [
        predictions.Predict.future(predict_request("half_plus_two", [[float(i)]]), timeout=60) for i in range(200)
    ]
    answers = [list(future.result().outputs["y"].float_val) for future in futures]
    assert answers == [[0.5 * i + 2] for i in range(200)]


def test_a_version_dropped_in_under_grpc_load_fails_no_call(serving, root, half_plus):
    """Two workers, each leaving rotation for its window while it loads version 2: every call of four
    client threads on one channel succeeds, on version 1 then 2."""
    stop = threading.Event()
    failures: list[str] = []
    seen: list[tuple[int, float]] = []

    def load(channel: grpc.Channel) -> None:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while not stop.is_set():
            try:
                response = stub.Predict(predict_request("swap", [[2.0]]), timeout=TIMEOUT)
                seen.append((response.model_spec.version.value, response.outputs["y"].float_val[0]))
            except grpc.RpcError as error:
                failures.append(f"{error.code()}: {error.details()}")

    with grpc.insecure_channel(serving.grpc_target) as channel, ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(load, channel) for _ in range(4)]
        wait_for(lambda: len(seen) > 20, timeout=TIMEOUT)
        install_version(half_plus(3), root / "swap", 2)
        wait_for(lambda: seen and seen[-1][0] == 2, timeout=120, interval=0.1)
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.result()
    assert failures == []
    assert {answer for answer in seen} == {(1, 3.0), (2, 4.0)}
    last = max(i for i, (version, _) in enumerate(seen) if version == 1)
    assert all(version == 2 for version, _ in seen[last + 1 :])


def test_grpc_calls_are_counted_in_the_metrics(serving, predictions):
    predictions.Predict(predict_request("half_plus_two", [[1.0]]), timeout=TIMEOUT)
    text = serving.get("/metrics").text
    counts = {}
    for labels, value in re.findall(r"^:tensorflow:serving:request_latency_count\{([^}]*)\} (\S+)$", text, re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(fields["model_name"], fields["API"], fields["entrypoint"])] = float(value)
    assert counts[("half_plus_two", "predict", "GRPC")] >= 1
    assert counts[("tf1", "classify", "GRPC")] >= 1 and counts[("labelled", "metadata", "GRPC")] >= 1
    assert ("half_plus_two", "predict", "REST") not in counts  # NOTE: these tests spoke only gRPC to it


def test_readme_client_example(serving):
    """The README's Python client, run as it is written (its address made this server's)."""
    readme = (REPO / "README.md").read_text()
    code = re.search(r"<!-- grpc-client-example -->\n```python\n(.*?)```", readme, re.S)[1]
    code = code.replace("localhost:8500", serving.grpc_target)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[[2.5], [3.0]]", "[2.5, 3.0]"]


def test_reload_config_adds_a_model_and_removes_another(serving, root, models, predictions):
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(config_text(root, added=True, removed=False), request.config)
    response = models.HandleReloadConfigRequest(request, timeout=120)
    assert response.status.error_code == 0
    answer = predictions.Predict(predict_request("added", [[2.0]]), timeout=TIMEOUT)
    assert list(answer.outputs["y"].float_val) == [6.0]

    def removed() -> bool:
        try:
            predictions.Predict(predict_request("removed", [[2.0]]), timeout=TIMEOUT)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.NOT_FOUND
        return False

    wait_for(removed, timeout=TIMEOUT)
    listed = {model["name"] for model in serving.get("/v1/models").json()["models"]}
    assert "added" in listed and "removed" not in listed


# ---- REST and gRPC give the same numbers --------------------------------------------------------------


def golden_predict_cases() -> list[Path]:
    cases = []
    for path in sorted(GOLDEN.glob("*.json")):
        golden = json.loads(path.read_text())
        if golden["request"]["path"].endswith(":predict") and golden["response"]["status"] == 200:
            cases.append(path)
    return cases


def golden_body(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(request["body_text"]) if "body_text" in request else request["body"]


def as_bytes(value: Any) -> bytes:
    """A REST string value: text as UTF-8, ``{"b64": ...}`` decoded (unpadded and wrapped as TF Serving reads it)."""
    if isinstance(value, dict):
        text = re.sub(r"\s", "", value["b64"])
        return base64.b64decode(text + "=" * (-len(text) % 4))
    return value.encode("utf-8")


def as_array(value: Any, dtype: np.dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "O":
        array = np.asarray(value, dtype=object)
        flat = [as_bytes(v) for v in array.reshape(-1).tolist()] if array.ndim else [as_bytes(value)]
        return np.array(flat, dtype=object).reshape(array.shape)
    with np.errstate(over="ignore"):  # NOTE: 1e39 as a float32 is inf, for REST as for this conversion
        return np.asarray(value, dtype=dtype)


def rest_inputs(body: dict[str, Any], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """The arrays a REST predict body feeds, by alias: row (``instances``) or columnar (``inputs``) format."""
    if "instances" in body:
        rows = body["instances"]
        if isinstance(rows[0], dict):
            return {alias: as_array([row[alias] for row in rows], dtype) for alias, dtype in dtypes.items()}
        (alias,) = dtypes
        return {alias: as_array(rows, dtypes[alias])}
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        return {alias: as_array(inputs[alias], dtype) for alias, dtype in dtypes.items()}
    (alias,) = dtypes
    return {alias: as_array(inputs, dtypes[alias])}


def rest_outputs(answer: dict[str, Any], grpc_outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of a REST predict answer, by alias, with the gRPC outputs' dtypes."""
    aliases = sorted(grpc_outputs)
    if "predictions" in answer:
        rows = answer["predictions"]
        if len(aliases) == 1:
            return {aliases[0]: as_array(rows, grpc_outputs[aliases[0]].dtype)}
        return {alias: as_array([row[alias] for row in rows], grpc_outputs[alias].dtype) for alias in aliases}
    outputs = answer["outputs"]
    if len(aliases) == 1 and not (isinstance(outputs, dict) and aliases[0] in outputs):
        return {aliases[0]: as_array(outputs, grpc_outputs[aliases[0]].dtype)}
    return {alias: as_array(outputs[alias], grpc_outputs[alias].dtype) for alias in aliases}


def spec_of(path: str) -> dict[str, Any]:
    match = re.fullmatch(r"/v1/models/(\w+)(?:/versions/(\d+)|/labels/(\w+))?:predict", path)
    assert match, path
    return {"version": int(match[2]) if match[2] else None, "label": match[3] or ""}


@pytest.mark.parametrize("path", golden_predict_cases(), ids=lambda p: p.stem)
def test_rest_and_grpc_answer_the_same_numbers(multi_server, path: Path):
    golden = json.loads(path.read_text())
    body = golden_body(golden["request"])
    spec = spec_of(golden["request"]["path"])
    signature = body.get("signature_name", "serving_default")
    with grpc.insecure_channel(multi_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata.model_spec.name = "multi"
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        stub.GetModelMetadata(metadata, timeout=TIMEOUT).metadata["signature_def"].Unpack(signature_defs)
        inputs = signature_defs.signature_def[signature].inputs
        dtypes = {alias: tf.dtypes.as_dtype(info.dtype).as_numpy_dtype for alias, info in sorted(inputs.items())}
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "multi"
        request.model_spec.signature_name = signature
        if spec["version"] is not None:
            request.model_spec.version.value = spec["version"]
        if spec["label"]:
            request.model_spec.version_label = spec["label"]
        for alias, array in rest_inputs(body, dtypes).items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
        response = stub.Predict(request, timeout=TIMEOUT)
    grpc_outputs = {alias: tf.make_ndarray(tensor) for alias, tensor in response.outputs.items()}
    expected = rest_outputs(json.loads(golden["response"]["body_text"]), grpc_outputs)
    assert sorted(expected) == sorted(grpc_outputs)
    for alias, array in grpc_outputs.items():
        assert array.shape == expected[alias].shape, alias
        np.testing.assert_array_equal(array, expected[alias], err_msg=alias)


# ---- SIGTERM ----------------------------------------------------------------------------------------


def test_sigterm_drains_grpc_calls_in_flight(start_server, tmp_path_factory):
    """Calls over TCP and over the Unix socket (which a server that died left behind: it is taken over)
    all finish; the socket's path goes with the server."""
    root = tmp_path_factory.mktemp("sleepy")
    write_sleepy_model(root / "sleepy" / "1")
    unix_path = root / "grpc.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(unix_path))
    server = start_server(
        "--model_name",
        "sleepy",
        "--model_base_path",
        str(root / "sleepy"),
        "--version_settle_seconds",
        "0",
        "--grpc_socket_path",
        str(unix_path),
    )
    server.wait_available("sleepy", 1)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sleepy"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([1.5])))
    with grpc.insecure_channel(server.grpc_target) as tcp, grpc.insecure_channel(f"unix:{unix_path}") as unix:
        stubs = [prediction_service_pb2_grpc.PredictionServiceStub(channel) for channel in (tcp, unix, tcp)]
        in_flight = [stub.Predict.future(request, timeout=60) for stub in stubs]
        time.sleep(0.5)  # NOTE: the calls reach the worker (TensorFlow sleeps one at a time: 4.5 s in all)
        server.process.terminate()
        answers = [list(call.result().outputs["y"].float_val) for call in in_flight]
    assert answers == [[1.5]] * 3
    assert server.process.wait(60) == 0
    assert not unix_path.exists()
