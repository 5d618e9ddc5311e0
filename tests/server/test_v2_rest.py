"""The Open Inference Protocol's REST API (``/v2``) through the worker's ASGI app, over a real ServerCore whose
loader is a small fake (no TensorFlow): routing, the JSON and binary forms, errors, the repository extension
and its guard. tritonclient drives the real server in ``tests/e2e/test_v2_api.py``."""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from tests.asgi_client import AsgiClient, worker_client
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.fronts import LOOP_REQUEST_BYTES
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ServerCore

SIGNATURE = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    {"s": TensorInfo("s", "s:0", "DT_STRING", (None,)), "x": TensorInfo("x", "x:0", "DT_FLOAT", (None, 2))},
    {"upper": TensorInfo("upper", "u:0", "DT_STRING", (None,)), "y": TensorInfo("y", "y:0", "DT_FLOAT", (None, 2))},
)
METADATA = {
    "name": "m",
    "versions": ["2", "1"],
    "platform": "tensorflow_savedmodel",
    "inputs": [{"name": "s", "datatype": "BYTES", "shape": [-1]}, {"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [
        {"name": "upper", "datatype": "BYTES", "shape": [-1]},
        {"name": "y", "datatype": "FP32", "shape": [-1, 2]},
    ],
}
TOKEN = "s3cret"


class TimesVersion:
    """``y = x * version``, ``upper`` = ``s`` upper-cased."""

    signatures = {"serving_default": SIGNATURE}

    def __init__(self, id: ServableId) -> None:
        self.version = id.version

    def run(self, signature_name, inputs):
        upper = np.empty(len(inputs["s"]), np.object_)
        upper[:] = [bytes(s).upper() for s in inputs["s"]]
        return {"y": inputs["x"] * np.float32(self.version), "upper": upper}

    def submit(self, signature_name, inputs, on_done=None):
        return None


@dataclass
class TimesVersionLoader:
    """Loads a :class:`TimesVersion` (the loader factory of the cores here)."""

    id: ServableId
    path: str

    def load(self) -> TimesVersion:
        return TimesVersion(self.id)

    def unload(self) -> None:
        """Nothing to release."""


def write_model(base: Path, *versions: int) -> Path:
    for version in versions:
        (base / str(version)).mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"fake")
    return base


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Callable[..., AsgiClient]]:
    """A client of a worker serving ``m`` (versions 1 and 2, label ``stable`` = 1) and, in its model repository,
    ``r``; ``settings`` change the server's."""
    made: list[tuple[ServerCore, AsgiClient]] = []

    def client(**settings: Any) -> AsgiClient:
        model = ModelConfig(
            name="m",
            base_path=str(write_model(tmp_path / "m", 1, 2)),
            version_policy=ServableVersionPolicy("all"),
            version_labels={"stable": 1},
        )
        write_model(tmp_path / "repository" / "r", 1)
        base = Settings(
            enable_batching=False,  # NOTE: the fake servables here do not batch
            models=(model,),
            model_repository=str(tmp_path / "repository"),
            version_settle_seconds=0,
            file_system_poll_wait_seconds=-1,
        )
        core = ServerCore(dataclasses.replace(base, **settings), loader_factory=TimesVersionLoader)
        core.start()
        serving = {"r": [1], **({} if "models" in settings else {"m": [2, 1]})}
        assert core.wait_until(lambda: all(core.available_versions(n) == v for n, v in serving.items()), 5)
        made.append((core, worker_client(core)))
        return made[-1][1]

    yield client
    for core, made_client in made:
        made_client.close()
        core.stop()


@pytest.fixture
def client(client_for) -> AsgiClient:
    return client_for()


def infer_body(**changes: Any) -> dict[str, Any]:
    body = {
        "id": "42",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1.0, 2.0], [3.0, 4.5]]},
            {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["ab", "héllo"]},
        ],
    }
    return {**body, **changes}


def binary_body(json_part: dict[str, Any], *binaries: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(json_part).encode()
    return head + b"".join(binaries), {"Inference-Header-Content-Length": str(len(head))}


def split_binary(response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers["Inference-Header-Content-Length"])
    return json.loads(response.data[:length]), response.data[length:]


def length_prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


# ---- health and metadata ------------------------------------------------------------------------------


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").json == {"live": True}
    assert client.get("/v2/health/ready").json == {"ready": True}
    assert client.get("/v2").json == {
        "name": "tfaas",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data", "model_repository"],
    }


def test_readiness_is_a_503_while_a_configured_model_does_not_serve(client_for, tmp_path):
    (tmp_path / "empty").mkdir()
    client = client_for(models=(ModelConfig(name="empty", base_path=str(tmp_path / "empty")),))
    response = client.get("/v2/health/ready")
    assert response.status_code == 503 and response.json["error"].startswith("The server is not ready: empty: ")
    assert client.get("/v2/health/live").status_code == 200


def test_model_metadata_of_the_latest_a_version_and_a_label(client):
    assert client.get("/v2/models/m").json == METADATA
    assert client.get("/v2/models/m/versions/1").json == METADATA
    assert client.get("/v2/models/m/versions/stable").json == METADATA
    assert client.get("/v2/models/m/versions/7").status_code == 404
    label = client.get("/v2/models/m/versions/nope")
    assert label.status_code == 400 and label.json == {"error": "Unrecognized servable version label: nope"}


def test_model_readiness_by_status_code(client):
    assert client.get("/v2/models/m/ready").json == {"name": "m", "ready": True}
    assert client.get("/v2/models/m/versions/1/ready").status_code == 200
    assert client.get("/v2/models/m/versions/3/ready").status_code == 404
    unknown = client.get("/v2/models/nope/ready")
    assert unknown.status_code == 404 and unknown.json == {"error": "Servable not found for request: Latest(nope)"}


def test_unknown_paths_and_methods(client):
    for path in ("/v2/models/m/stats", "/v2/models/m/config", "/v2/nothing", "/v2/"):
        response = client.get(path)
        assert response.status_code == 404 and "No Open Inference Protocol endpoint" in response.json["error"]
    wrong = client.get("/v2/models/m/infer")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "OPTIONS, POST"
    assert client.options("/v2/models/m").headers["Allow"] == "GET, HEAD, OPTIONS"
    head = client.head("/v2/models/m")
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) > 0


# ---- infer ------------------------------------------------------------------------------------------------


def test_infer_json_nested_and_flat_with_the_id_echoed(client):
    response = client.post("/v2/models/m/infer", json=infer_body())
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "Inference-Header-Content-Length" not in response.headers
    assert response.json == {
        "model_name": "m",
        "model_version": "2",
        "id": "42",
        "outputs": [
            {"name": "upper", "datatype": "BYTES", "shape": [2], "data": ["AB", "HéLLO"]},
            {"name": "y", "datatype": "FP32", "shape": [2, 2], "data": [2.0, 4.0, 6.0, 9.0]},
        ],
    }
    flat = infer_body()
    flat["inputs"][0]["data"] = [1.0, 2, 3.0, 4.5]
    del flat["id"]
    answer = client.post("/v2/models/m/versions/1/infer", json=flat).json
    assert "id" not in answer and answer["model_version"] == "1"
    assert answer["outputs"][1]["data"] == [1.0, 2.0, 3.0, 4.5]


def test_requested_outputs_in_their_order_and_unknown_ones(client):
    body = infer_body(outputs=[{"name": "y"}, {"name": "upper"}])
    assert [o["name"] for o in client.post("/v2/models/m/infer", json=body).json["outputs"]] == ["y", "upper"]
    body = infer_body(outputs=[{"name": "y"}])
    assert [o["name"] for o in client.post("/v2/models/m/infer", json=body).json["outputs"]] == ["y"]
    response = client.post("/v2/models/m/infer", json=infer_body(outputs=[{"name": "nope"}]))
    assert response.status_code == 400 and "output tensor alias not found in signature: nope" in response.json["error"]


def test_infer_binary_inputs_and_outputs_as_tritonclient_sends_them(client):
    x = np.array([[1.0, 2.0], [3.0, 4.5]], np.float32)
    strings = length_prefixed(b"ab", b"\xff\x00z")
    head = infer_body(parameters={"binary_data_output": True})
    head["inputs"][0] = {"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}}
    head["inputs"][1] = {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 13}}
    data, headers = binary_body(head, x.tobytes(), strings)
    response = client.post("/v2/models/m/infer", data=data, headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    answer, binary = split_binary(response)
    assert answer["outputs"] == [
        {"name": "upper", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 13}},
        {"name": "y", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}},
    ]
    assert binary[:13] == length_prefixed(b"AB", b"\xff\x00Z")
    np.testing.assert_array_equal(np.frombuffer(binary[13:], "<f4").reshape(2, 2), x * 2)


def test_each_output_in_binary_or_json_as_it_asks(client):
    body = infer_body(outputs=[{"name": "upper", "parameters": {"binary_data": False}}, {"name": "y"}])
    body["parameters"] = {"binary_data_output": True}
    answer, binary = split_binary(client.post("/v2/models/m/infer", json=body))
    assert answer["outputs"][0]["data"] == ["AB", "HéLLO"] and "data" not in answer["outputs"][1]
    assert len(binary) == 16


def test_a_large_body_is_answered_the_same(client):
    rows = LOOP_REQUEST_BYTES // 8
    x = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [rows, 2], "parameters": {"binary_data_size": x.nbytes}},
            {"name": "s", "datatype": "BYTES", "shape": [rows], "data": ["a"] * rows},
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }
    data, headers = binary_body(body, x.tobytes())
    assert len(data) > LOOP_REQUEST_BYTES
    _, binary = split_binary(client.post("/v2/models/m/infer", data=data, headers=headers))
    np.testing.assert_array_equal(np.frombuffer(binary, "<f4").reshape(rows, 2), x * 2)


def with_input(index: int, **changes: Any) -> dict[str, Any]:
    body = infer_body()
    body["inputs"][index] = {**body["inputs"][index], **changes}
    return body


@pytest.mark.parametrize(
    "body,message",
    [
        (with_input(0, datatype="FP64"), "Input 'x' of model 'm' is FP32; the request sends FP64"),
        (with_input(0, datatype="FLOAT"), "Input 'x' has an unknown datatype 'FLOAT'"),
        (with_input(0, shape=[4]), "Input 'x' of model 'm' has shape [-1, 2]; the request sends [4]"),
        (with_input(0, shape=[1, 2]), "Input 'x' has 4 elements, but its shape [1, 2] holds 2"),
        (with_input(0, shape=[-1, 2]), "Input 'x' has shape [-1, 2]: dimensions are integers of 0 or more"),
        (with_input(0, data=[[1.0, 2.0], [3.0]]), "Input 'x': 'data' must be lists of one length per level"),
        (with_input(0, data=[[1.0, 2.0], [3.0, "4"]]), "holding FP32 elements (float/int)"),
        (with_input(0, data=[[1.0, 2.0], [3.0, True]]), "holding FP32 elements (float/int)"),
        (with_input(1, data=["a", 1]), "holding BYTES elements (string)"),
        (with_input(0, name="z"), "Unexpected input 'z' for model 'm': its inputs are s, x"),
        ({"inputs": [infer_body()["inputs"][0]]}, "Model 'm' needs the inputs s, which the request lacks"),
        ({"inputs": [infer_body()["inputs"][0]] * 2}, "Input 'x' is given more than once"),
        ({"input": []}, "The request needs 'inputs': a list of tensors"),
        (infer_body(id=7), "The request's 'id' must be a string"),
        (infer_body(outputs=[{"name": "y"}, {"name": "y"}]), "An output is requested more than once"),
        (infer_body(parameters={"signature_name": "other"}), 'Serving signature name: "other" not found'),
        ([1], "The request body must be a JSON object"),
    ],
)
def test_requests_that_do_not_fit_are_400s(client, body, message):
    response = client.post("/v2/models/m/infer", json=body)
    assert response.status_code == 400 and message in response.json["error"], response.json


def test_binary_sizes_are_checked_against_the_body(client):
    x = np.ones((2, 2), np.float32).tobytes()
    head = with_input(0, parameters={"binary_data_size": 16})
    del head["inputs"][0]["data"]
    cases = [
        (binary_body(head, x)[0], {"Inference-Header-Content-Length": "100000"}, "must be the length of the JSON"),
        (*binary_body(head, x[:4]), "'binary_data_size' 16 is not within the 4 bytes of binary data left"),
        (*binary_body(head, x + b"!"), "The body holds 1 bytes after its JSON part"),
        (*binary_body(with_input(0, parameters={"binary_data_size": 16}), x), "has both 'data' and"),
    ]
    head["inputs"][1] = {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}}
    cases.append((*binary_body(head, x, length_prefixed(b"ab") + b"\x09\x00\x00"), "its BYTES data must be exactly 2"))
    cases.append((*binary_body(head, x, struct.pack("<I", 99) + b"abcde"), "is 99 bytes long, past the end"))
    for data, headers, message in cases:
        response = client.post("/v2/models/m/infer", data=data, headers=headers)
        assert response.status_code == 400 and message in response.json["error"], (message, response.json)


def test_unsupported_extensions_are_400s_and_bodies_over_the_limit_413s(client_for):
    client = client_for(max_request_body_bytes=4096)
    body = infer_body(outputs=[{"name": "y", "parameters": {"classification": 2}}])
    assert client.post("/v2/models/m/infer", json=body).status_code == 400
    shared = with_input(0, parameters={"shared_memory_region": "r"})
    response = client.post("/v2/models/m/infer", json=shared)
    assert response.status_code == 400 and "shared memory is not supported" in response.json["error"]
    assert client.post("/v2/models/m/infer", data=b" " * 5000).status_code == 413
    assert client.post("/v2/models/m/infer", data=b"{").status_code == 400


def test_unknown_models_and_versions_are_404s(client):
    assert client.post("/v2/models/nope/infer", json=infer_body()).status_code == 404
    assert client.post("/v2/models/m/versions/9/infer", json=infer_body()).status_code == 404
    too_large = client.post(f"/v2/models/m/versions/{2**63}/infer", json=infer_body())
    assert too_large.status_code == 400


def test_v2_calls_are_counted_with_their_entrypoint(client):
    client.post("/v2/models/m/infer", json=infer_body())
    client.get("/v2/models/m")
    metrics = client.get("/monitoring/prometheus/metrics").data.decode()
    assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="V2",model_name="m"}' in metrics
    assert ':tensorflow:serving:request_latency_count{API="metadata",entrypoint="V2",model_name="m"}' in metrics
    assert 'tfaas_request_stage_seconds_count{api="predict",model="m",stage="encode"}' in metrics


# ---- the model repository extension ----------------------------------------------------------------------


def index(client: AsgiClient, **body: Any) -> list[dict[str, Any]]:
    response = client.post("/v2/repository/index", data=json.dumps(body) if body else b"")
    assert response.status_code == 200, response.json
    return response.json


def test_index_load_and_unload(client_for):
    client = client_for(enable_model_management=True)
    ready = [
        {"name": "m", "version": "2", "state": "READY", "reason": ""},
        {"name": "m", "version": "1", "state": "READY", "reason": ""},
        {"name": "r", "version": "1", "state": "READY", "reason": ""},
    ]
    assert index(client) == ready and index(client, ready=True) == ready

    unloaded = client.post("/v2/repository/models/r/unload", json={"parameters": {"unload_dependents": False}})
    assert unloaded.status_code == 200 and unloaded.json == {"name": "r", "unload": True}
    assert client.get("/v2/models/r/ready").status_code == 404
    assert client.post("/v2/models/r/infer", json=infer_body()).status_code == 404
    assert index(client)[2]["name"] == "r" and index(client)[2]["state"] in ("UNLOADING", "UNAVAILABLE")
    assert [e["name"] for e in index(client, ready=True)] == ["m", "m"]

    assert client.post("/v2/repository/models/r/load").json == {"name": "r", "load": True}
    assert client.post("/v2/models/r/infer", json=infer_body()).json["model_name"] == "r"
    assert client.post("/v2/repository/models/m/unload").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200, "an unloaded model is not waited for"
    assert client.post("/v2/repository/models/m/load").status_code == 200
    assert index(client, ready=True)[:2] == ready[:2]

    assert client.post("/v2/repository/models/nope/load").status_code == 404
    override = client.post("/v2/repository/models/m/load", json={"parameters": {"config": "{}"}})
    assert override.status_code == 400 and "not supported" in override.json["error"]
    assert client.post("/v2/repository/models/m/load", json={"parameters": [1]}).status_code == 400
    assert client.post("/v2/repository/index", json={"ready": "yes"}).status_code == 400


@pytest.mark.parametrize(
    "settings,status,message",
    [
        ({}, 403, "start the server with --enable_model_management"),
        ({"enable_model_management": True, "read_only": True}, 403, "read-only"),
        ({"enable_model_management": True, "admin_token": TOKEN}, 401, "Authorization: Bearer <admin token>"),
    ],
    ids=["management off (the default)", "read-only", "no token"],
)
def test_load_and_unload_are_guarded_like_every_write(client_for, settings, status, message):
    client = client_for(**settings)
    for call in ("load", "unload"):
        response = client.post(f"/v2/repository/models/m/{call}")
        assert response.status_code == status and message in response.json["error"]
    assert client.get("/v2/models/m/ready").status_code == 200
    assert len(index(client)) == 3, "the index is a read: always answered"


def test_the_admin_token_lets_a_load_through(client_for):
    client = client_for(enable_model_management=True, admin_token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/v2/repository/models/r/unload", headers=headers).status_code == 200
    assert client.post("/v2/repository/models/r/load", headers=headers).status_code == 200
