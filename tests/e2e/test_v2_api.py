"""The Open Inference Protocol (KServe V2) end to end: the real server (gunicorn, its coordinator process, a
worker) driven with tritonclient's HTTP and gRPC clients (``triton.py``), as KServe's and Triton's users
drive theirs.

One server: ``multi`` (``multi_model.py``: every datatype, BYTES in and out; label ``stable``), ``half``
(versions 1 and 2: ``y = 0.5 x + 2`` and ``+ 3``) and, in its model repository, ``half_plus_two`` (versions 1
and 2, the latest served: the README's example), with model management on behind an admin token. The same numbers come from TF
Serving's REST and gRPC APIs and both V2 APIs.
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import REPO, ServerProcess
from tests.e2e.triton import Triton, install_tritonclient
from tfaas.protos import open_inference_grpc_pb2 as pb

pytestmark = pytest.mark.e2e

TOKEN = "v2-admin-token"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def triton() -> Triton:
    return install_tritonclient()


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_server, half_plus, multi_model: Path, triton: Triton) -> ServerProcess:
    root = tmp_path_factory.mktemp("v2")
    install_version(half_plus(2), root / "half", 1)
    install_version(half_plus(3), root / "half", 2)
    for version in (1, 2):
        install_version(half_plus(2), root / "repository" / "half_plus_two", version)
    configs = [
        model_config("multi", multi_model, 'version_labels { key: "stable" value: 1 }'),
        model_config("half", root / "half", "model_version_policy { all {} }"),
    ]
    (root / "models.config").write_text(model_config_list(configs))
    management = {"TFAAS_ENABLE_MODEL_MANAGEMENT": "true", "TFAAS_ADMIN_TOKEN": TOKEN}
    server = start_server(
        "--model_config_file",
        str(root / "models.config"),
        "--model_repository",
        str(root / "repository"),
        env=management,
    )
    for model, version in (("multi", 1), ("half", 2), ("half", 1), ("half_plus_two", 2)):
        server.wait_available(model, version)
    return server


def b64(*values: bytes) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


def multi_inputs(binary: bool, strings: tuple[bytes, ...]) -> list[list[Any]]:
    return [
        ["a", "FP32", [2, 2], [1.5, 2.0, -3.0, 0.25], binary],
        ["b", "INT64", [2], [40, -7], binary],
        ["s", "BYTES", [2], b64(*strings), binary],
        ["flag", "BOOL", [2], [True, False], binary],
    ]


# ---- health and metadata ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_health_and_server_metadata(server, triton, protocol):
    calls = [{"protocol": protocol, "call": call} for call in ("live", "ready", "server_metadata")]
    live, ready, metadata = triton.run(server, *calls)
    assert live == {"result": True} and ready == {"result": True}
    assert metadata["result"]["name"] == "tfaas"
    assert metadata["result"]["extensions"] == ["binary_tensor_data", "model_repository"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_model_metadata_and_readiness(server, triton, protocol):
    metadata = triton.result(server, protocol=protocol, call="model_metadata", model="multi")
    assert (metadata["name"], metadata["versions"], metadata["platform"]) == ("multi", ["1"], "tensorflow_savedmodel")
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata["inputs"]] == [
        ("a", "FP32", [-1, 2]),
        ("b", "INT64", [-1]),
        ("flag", "BOOL", [-1]),
        ("s", "BYTES", [-1]),
    ]
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [
        ("echo_bytes", "BYTES"),
        ("not_flag", "BOOL"),
        ("sum", "FP32"),
        ("twice", "INT64"),
        ("upper", "BYTES"),
    ]
    assert triton.result(server, protocol=protocol, call="model_metadata", model="half", version="1")["versions"] == [
        "2",
        "1",
    ]
    readiness = [
        {"protocol": protocol, "call": "model_ready", "model": model, "version": version}
        for model, version in (("half", "1"), ("multi", "stable"), ("half", "3"), ("nope", ""))
    ]
    assert [answer["result"] for answer in triton.run(server, *readiness)] == [True, True, False, False]


# ---- infer --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol,binary", [("http", False), ("http", True), ("grpc", True)], ids=["http JSON", "http binary", "grpc raw"]
)
def test_infer_with_bytes_in_and_out(server, triton, protocol, binary):
    # NOTE: tritonclient sends BYTES that are not UTF-8 only as binary data.
    strings = (b"h\xc3\xa9llo", b"\x00\xffz") if binary else ("héllo".encode(), b"ab c")
    call = {
        "protocol": protocol,
        "call": "infer",
        "model": "multi",
        "id": "r-1",
        "inputs": multi_inputs(binary, strings),
    }
    if not binary:  # NOTE: without outputs tritonclient asks for every output in binary
        call["outputs"] = [[name, False] for name in ("sum", "twice", "echo_bytes", "upper", "not_flag")]
    result = triton.result(server, **call)
    assert (result["model_name"], result["model_version"], result["id"]) == ("multi", "1", "r-1")
    outputs = result["outputs"]
    assert outputs["sum"] == {"datatype": "FP32", "shape": [2], "data": [43.5, -9.75]}
    assert outputs["twice"] == {"datatype": "INT64", "shape": [2], "data": [80, -14]}
    assert outputs["not_flag"] == {"datatype": "BOOL", "shape": [2], "data": [False, True]}
    assert outputs["echo_bytes"] == {"datatype": "BYTES", "shape": [2], "data": b64(*strings)}
    assert outputs["upper"]["data"] == b64(*(s.upper() for s in strings))  # NOTE: TF uppercases ASCII only


@pytest.mark.parametrize("protocol,binary", [("http", False), ("http", True), ("grpc", True)])
def test_every_datatype_through_a_named_signature(server, triton, protocol, binary):
    limits = {
        "int8": ("INT8", [-128, 127]),
        "int16": ("INT16", [-(2**15), 2**15 - 1]),
        "int32": ("INT32", [-(2**31), 2**31 - 1]),
        "int64": ("INT64", [-(2**63), 2**63 - 1]),
        "uint8": ("UINT8", [0, 255]),
        "uint16": ("UINT16", [0, 2**16 - 1]),
        "uint32": ("UINT32", [0, 2**32 - 1]),
        "uint64": ("UINT64", [0, 2**64 - 1]),
        "f32": ("FP32", [1.5, -3.4028234663852886e38]),
        "f64": ("FP64", [0.1, 1e300]),
        "t": ("BOOL", [True, False]),
        "s": ("BYTES", b64(b"x", b"")),
    }
    inputs = [[name, datatype, [2], values, binary] for name, (datatype, values) in limits.items()]
    call = {"protocol": protocol, "call": "infer", "model": "multi", "inputs": inputs}
    outputs = triton.result(server, **call, parameters={"signature_name": "dtypes"})["outputs"]
    for name, (datatype, values) in {**limits, "s_bytes": limits["s"]}.items():
        assert outputs[name] == {"datatype": datatype, "shape": [2], "data": values}, name


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_versions_and_labels(server, triton, protocol):
    x = [["x", "FP32", [1, 1], [4.0], True]]
    calls = [
        {"protocol": protocol, "call": "infer", "model": "half", "version": version, "inputs": x}
        for version in ("", "1", "2")
    ]
    answers = [answer["result"] for answer in triton.run(server, *calls)]
    assert [(a["model_version"], a["outputs"]["y"]["data"]) for a in answers] == [
        ("2", [5.0]),
        ("1", [4.0]),
        ("2", [5.0]),
    ]
    stable = {"protocol": protocol, "call": "model_metadata", "model": "multi", "version": "stable"}
    assert triton.result(server, **stable)["name"] == "multi"


@pytest.mark.parametrize(
    "protocol,not_found,invalid",
    [("http", "404", "400"), ("grpc", "StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT")],
)
def test_errors(server, triton, protocol, not_found, invalid):
    x = ["x", "FP32", [1, 1], [4.0], True]
    unknown = {"protocol": protocol, "call": "infer", "model": "nope", "inputs": [x]}
    version = {**unknown, "model": "half", "version": "7"}
    shape = {**unknown, "model": "half", "inputs": [["x", "FP32", [1, 2], [4.0, 5.0], True]]}
    datatype = {**unknown, "model": "half", "inputs": [["x", "FP64", [1, 1], [4.0], True]]}
    answers = [answer["error"] for answer in triton.run(server, unknown, version, shape, datatype)]
    assert [a["status"] for a in answers] == [not_found, not_found, invalid, invalid]
    assert "Servable not found for request: Latest(nope)" in answers[0]["message"]
    assert "Input 'x' of model 'half' has shape [-1, 1]; the request sends [1, 2]" in answers[2]["message"]
    assert "Input 'x' of model 'half' is FP32; the request sends FP64" in answers[3]["message"]


def test_triton_only_rpcs_are_unimplemented_over_grpc(server, triton):
    for call in ("index", "load"):
        error = triton.error(server, protocol="grpc", call=call, model="half")
        assert error["status"] == "StatusCode.UNIMPLEMENTED" and "POST /v2/repository" in error["message"]


def test_reflection_lists_the_service_with_its_methods(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "inference.GRPCInferenceService" in database.get_services()
        service = DescriptorPool(database).FindServiceByName("inference.GRPCInferenceService")
    served = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert [m.name for m in service.methods] == [m.name for m in served.methods] and len(service.methods) == 6


def test_v2_calls_are_counted_with_their_entrypoint(server, triton):
    x = [["x", "FP32", [1, 1], [4.0], True]]
    triton.run(server, *({"protocol": p, "call": "infer", "model": "half", "inputs": x} for p in ("http", "grpc")))
    metrics = server.get("/monitoring/prometheus/metrics").text
    assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="V2",model_name="half"}' in metrics


# ---- the model repository -----------------------------------------------------------------------------------


def test_repository_index_unload_and_load_with_the_admin_token(server, triton):
    index = triton.result(server, protocol="http", call="index")
    assert [(e["name"], e.get("version"), e["state"]) for e in index] == [
        ("half", "2", "READY"),
        ("half", "1", "READY"),
        ("half_plus_two", "2", "READY"),
        ("multi", "1", "READY"),
    ]
    x = [["x", "FP32", [1, 1], [2.0], True]]
    refused = triton.error(server, protocol="http", call="unload", model="half_plus_two")
    assert refused["status"] == "401" and "Authorization: Bearer" in refused["message"]

    unloaded = [
        {"protocol": "http", "call": "unload", "model": "half_plus_two", "headers": AUTHORIZED},
        {"protocol": "http", "call": "model_ready", "model": "half_plus_two"},
        {"protocol": "grpc", "call": "infer", "model": "half_plus_two", "inputs": x},
        {"protocol": "http", "call": "index"},
    ]
    _, ready, infer, index = triton.run(server, *unloaded)
    assert ready == {"result": False} and infer["error"]["status"] == "StatusCode.NOT_FOUND"
    states = {(e["name"], e.get("version")): (e["state"], e["reason"]) for e in index["result"]}
    assert states[("half_plus_two", "2")] in (("UNLOADING", ""), ("UNAVAILABLE", "unloaded"))
    assert server.get("/readyz").status_code == 200

    loaded = [
        {"protocol": "http", "call": "load", "model": "half_plus_two", "headers": AUTHORIZED},
        {"protocol": "grpc", "call": "model_ready", "model": "half_plus_two"},
        {"protocol": "http", "call": "infer", "model": "half_plus_two", "inputs": x},
    ]
    load, ready, infer = triton.run(server, *loaded)
    assert load == {"result": None} and ready == {"result": True}
    assert infer["result"]["outputs"]["y"]["data"] == [3.0] and infer["result"]["model_version"] == "2"
    missing = triton.error(server, protocol="http", call="load", model="nope", headers=AUTHORIZED)
    assert missing["status"] == "404"


def test_readme_examples(server, triton):
    """The README's tritonclient example, run as it is written, and its curl example's answer, to the byte."""
    readme = (REPO / "README.md").read_text()
    code = re.search(r"<!-- v2-client-example -->\n```python\n(.*?)```", readme, re.S)[1]
    code = code.replace("localhost:8501", server.url.removeprefix("http://"))
    result = subprocess.run([str(triton.python), "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[[2.5], [3.0]]"]
    curl = re.search(r"<!-- v2-curl-example -->\n```sh\n(.*?)```", readme, re.S)[1]
    body, path, answer = re.search(r"-d '(.*?)'.*?localhost:8501(\S+)\n# (.*)\n", curl, re.S).groups()
    assert server.post(path, data=body).content == answer.encode()


# ---- the same numbers from every API --------------------------------------------------------------------------


def test_the_same_numbers_from_v1_rest_v2_rest_tf_serving_grpc_and_v2_grpc(server, triton):
    x = np.array([[0.1], [1 / 3], [-2.5e-8], [123456.79], [3.4e38]], np.float32)
    expected = np.float32(0.5) * x + np.float32(2)

    v1_rest = server.post("/v1/models/half/versions/1:predict", json={"instances": x.tolist()}).json()["predictions"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.version.value = "half", 1
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    with grpc.insecure_channel(server.grpc_target) as channel:
        answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    tf_serving_grpc = tf.make_ndarray(answer.outputs["y"])
    inputs = [["x", "FP32", list(x.shape), x.ravel().tolist(), True]]
    v2_calls = [
        {"protocol": protocol, "call": "infer", "model": "half", "version": "1", "inputs": inputs}
        for protocol in ("http", "grpc")
    ]
    v2_rest, v2_grpc = (answer["result"]["outputs"]["y"]["data"] for answer in triton.run(server, *v2_calls))
    json_inputs = [["x", "FP32", list(x.shape), x.ravel().tolist(), False]]
    v2_json = triton.result(server, **{**v2_calls[0], "inputs": json_inputs, "outputs": [["y", False]]})
    for name, numbers in {
        "V1 REST": v1_rest,
        "TF Serving gRPC": tf_serving_grpc,
        "V2 REST binary": v2_rest,
        "V2 REST JSON": v2_json["outputs"]["y"]["data"],
        "V2 gRPC": v2_grpc,
    }.items():
        np.testing.assert_array_equal(np.asarray(numbers, np.float32).reshape(x.shape), expected, err_msg=name)
