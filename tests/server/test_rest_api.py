"""TF Serving's /v1 API through the worker's ASGI app, over a real ServerCore whose loader is a small fake
(no TensorFlow)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from tests.asgi_client import worker_client
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.fronts import LOOP_REQUEST_BYTES
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ServerCore

SIGNATURE = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorInfo("x", "x:0", "DT_FLOAT", (None, 1))},
    {"y": TensorInfo("y", "y:0", "DT_FLOAT", (None, 1))},
)


class TimesVersion:
    """A servable computing ``y = x * version``."""

    signatures = {"serving_default": SIGNATURE}

    def __init__(self, id: ServableId) -> None:
        self.version = id.version

    def run(self, signature_name, inputs):
        return {"y": inputs["x"] * np.float32(self.version)}

    def submit(self, signature_name, inputs, on_done=None):
        return None


class TimesVersionLoader:
    def __init__(self, id: ServableId, path: str) -> None:
        self.id = id

    def load(self) -> TimesVersion:
        return TimesVersion(self.id)

    def unload(self) -> None:
        pass


@pytest.fixture
def client(tmp_path: Path):
    for version in (1, 2):
        (tmp_path / "m" / str(version)).mkdir(parents=True)
        (tmp_path / "m" / str(version) / "saved_model.pb").write_bytes(b"fake")
    model = ModelConfig(
        name="m",
        base_path=str(tmp_path / "m"),
        version_policy=ServableVersionPolicy("all"),
        version_labels={"stable": 1},
    )
    settings = Settings(
        enable_batching=False,  # NOTE: the fake servables here do not batch
        models=(model,),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
    )
    core = ServerCore(settings, loader_factory=TimesVersionLoader)
    core.start()
    assert core.wait_until(lambda: core.available_versions("m") == [2, 1], 5)
    with worker_client(core) as client:
        yield client
    core.stop()


def test_predict_latest_version_and_label(client):
    assert client.post("/v1/models/m:predict", json={"instances": [[3.0]]}).json == {"predictions": [[6.0]]}
    assert client.post("/v1/models/m/versions/1:predict", json={"inputs": [[3.0]]}).json == {"outputs": [[3.0]]}
    assert client.post("/v1/models/m/labels/stable:predict", json={"instances": [[3.0]]}).json == {
        "predictions": [[3.0]]
    }


def test_paths_are_matched_case_insensitively_like_tf_serving(client):
    assert client.post("/V1/Models/m:PREDICT", json={"instances": [[1.0]]}).status_code == 200


@pytest.mark.parametrize(
    "method,path,status,message",
    [
        ("GET", "/v1/foo", 400, "Malformed request: GET /v1/foo"),
        ("GET", "/v1/models/m:predict", 405, "Method GET is not allowed"),
        ("PUT", "/v1/models/m", 405, "Method PUT is not allowed"),
        ("GET", "/v1/models/m/version/1", 400, "Malformed request"),
        ("GET", "/v1/models/m/versions/HELLO", 400, "Malformed request"),
        ("GET", "/v1/models/m/versions/99999999999999999999", 400, "Failed to convert version"),
        ("GET", "/nowhere", 404, "requested URL was not found"),
        ("GET", "/v1/models/m/versions/7", 404, "Could not find version 7 of model m"),
    ],
)
def test_routing_errors_are_json(client, method, path, status, message):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert message in response.json["error"]


def test_status_lists_versions_highest_first(client):
    versions = client.get("/v1/models/m").json["model_version_status"]
    assert [(v["version"], v["state"]) for v in versions] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/v1/models/empty:predict", {"instances": [[1.0]]}),
        ("POST", "/v1/models/empty:classify", {"examples": [{"x": 1.0}]}),
        ("POST", "/v1/models/empty:regress", {"examples": [{"x": 1.0}]}),
        ("GET", "/v1/models/empty/metadata", None),
    ],
)
def test_a_model_with_no_version_is_a_404_in_tf_servings_words(tmp_path: Path, method, path, body):
    (tmp_path / "empty").mkdir()
    settings = Settings(models=(ModelConfig(name="empty", base_path=str(tmp_path / "empty")),))
    core = ServerCore(settings, loader_factory=TimesVersionLoader)
    core.start()
    try:
        with worker_client(core) as client:
            response = client.open(path, method=method, json=body)
    finally:
        core.stop()
    assert response.status_code == 404
    assert response.json == {"error": "Servable not found for request: Latest(empty)"}


def test_a_large_body_in_pieces_is_answered_as_a_small_one(client):
    """A body past LOOP_REQUEST_BYTES does all its work on the service's pool; one in several messages is read
    into one buffer. Neither changes the answer."""
    rows = [[float(i)] for i in range(10_000)]
    body = json.dumps({"instances": rows})
    assert len(body) > LOOP_REQUEST_BYTES
    response = client.post("/v1/models/m/versions/2:predict", data=body, pieces=3)
    assert response.status_code == 200 and response.json == {"predictions": [[2.0 * row[0]] for row in rows]}


def test_head_has_the_get_answers_length_and_no_body(client):
    for path in ("/v1/models/m", "/v1/models/m/versions/7"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code and head.data == b"", path
        assert head.content_length == len(get.data) > 0 and head.mimetype == "application/json", path


class Sleepy(TimesVersion):
    """Takes a second over every call."""

    def run(self, signature_name, inputs):
        time.sleep(1.0)
        return super().run(signature_name, inputs)


class SleepyLoader(TimesVersionLoader):
    def load(self) -> Sleepy:
        return Sleepy(self.id)


def test_a_call_past_rest_api_timeout_in_ms_is_a_504_deadline_exceeded(tmp_path: Path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"fake")
    settings = Settings(
        enable_batching=False,
        models=(ModelConfig(name="m", base_path=str(tmp_path / "m")),),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
        rest_api_timeout_in_ms=200,
    )
    core = ServerCore(settings, loader_factory=SleepyLoader)
    core.start()
    try:
        assert core.wait_until_ready(5)
        with worker_client(core) as client:
            response = client.post("/v1/models/m:predict", json={"instances": [[1.0]]})
            assert response.status_code == 504  # NOTE: the call itself would have answered 200, after 1 s
            assert response.json == {"error": "Deadline exceeded: the request took longer than 200 ms"}
            assert client.get("/v1/models/m").status_code == 200  # NOTE: a quick call is unaffected
        text = core.metrics.render().decode()
        assert re.search(r':tensorflow:serving:request_count\{model_name="m",status="DEADLINE_EXCEEDED"\} 1', text)
    finally:
        core.stop()
