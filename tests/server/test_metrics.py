"""The metrics routes and the request metrics, through the worker's ASGI app over a real ServerCore with a
fake loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.asgi_client import worker_client
from tests.test_metrics import samples, value
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.metrics import Metrics
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ServerCore

SIGNATURE = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorInfo("x", "x:0", "DT_FLOAT", (None, 1))},
    {"y": TensorInfo("y", "y:0", "DT_FLOAT", (None, 1))},
)


class Doubler:
    signatures = {"serving_default": SIGNATURE}
    params = None
    labels: list[str] = []

    def run(self, signature_name, inputs):
        return {"y": inputs["x"] * np.float32(2)}

    def signature_def_map_json(self):
        return {}

    def submit(self, signature_name, inputs, on_done=None):
        return None


class DoublerLoader:
    def __init__(self, id: ServableId, path: str) -> None:
        pass

    def load(self) -> Doubler:
        return Doubler()

    def unload(self) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "m" / "3").mkdir(parents=True)
    (tmp_path / "m" / "3" / "saved_model.pb").write_bytes(b"fake")  # NOTE: a complete version, to the source
    model = ModelConfig(name="m", base_path=str(tmp_path / "m"))
    settings = Settings(
        enable_batching=False,  # NOTE: the fake servables here do not batch
        models=(model,),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
    )
    metrics = Metrics(CollectorRegistry())
    core = ServerCore(settings, loader_factory=DoublerLoader, metrics=metrics)
    core.start()
    assert core.wait_until_ready(5)
    with worker_client(core) as client:
        yield client, metrics
    core.stop()


def test_requests_are_counted_with_the_served_version_and_the_status(served):
    client, metrics = served
    for _ in range(3):
        assert client.post("/v1/models/m:predict", json={"instances": [[1.0]]}).status_code == 200
    assert client.post("/v1/models/m:predict", data=b"{").status_code == 400
    assert client.post("/v1/models/nope:predict", json={"instances": [[1.0]]}).status_code == 404
    assert client.post("/v1/models/other:classify", json={}).status_code == 400
    assert client.get("/v1/models/m/metadata").status_code == 200
    assert client.get("/v1/models/m").status_code == 200
    assert client.get("/v1/models").status_code == 200
    assert client.get("/v1/bogus").status_code == 400
    assert client.get("/nowhere").status_code == 404  # not /v1: not counted
    assert client.post("/json", json={"values": [1.5], "model": "m"}).json == [3.0]  # TFaaS's predict
    assert client.post("/json", json={"values": ["x"], "model": "m"}).status_code == 400

    text = metrics.render()
    requests_total = {
        (labels["model"], labels["version"], labels["api"], labels["code"]): v
        for (name, items), v in samples(text).items()
        if name == "tfaas_requests_total"
        for labels in [dict(items)]
    }
    assert requests_total == {
        ("m", "3", "predict", "200"): 4,
        ("m", "", "predict", "400"): 1,  # failed before taking a handle
        ("", "", "predict", "400"): 1,  # TFaaS's: refused before its model was known
        ("", "", "predict", "404"): 1,  # an unknown model never becomes a label value
        ("", "", "classify", "400"): 1,
        ("m", "3", "metadata", "200"): 1,
        ("m", "", "status", "200"): 1,
        ("", "", "list", "200"): 1,
        ("", "", "other", "400"): 1,
    }
    assert value(text, "tfaas_request_duration_seconds_count", model="m", api="predict") == 4
    assert value(text, ":tensorflow:serving:request_count_total", model_name="m", status="OK") == 6
    assert value(text, ":tensorflow:serving:request_count_total", model_name="", status="NOT_FOUND") == 1
    latency = value(text, ":tensorflow:serving:request_latency_count", model_name="m", API="predict", entrypoint="REST")
    assert latency == 4


def test_both_paths_serve_the_text_and_are_not_counted(served):
    client, metrics = served
    client.post("/v1/models/m:predict", json={"instances": [[1.0]]})
    tf_serving = client.get("/monitoring/prometheus/metrics")
    assert tf_serving.status_code == 200
    assert tf_serving.content_type.startswith("text/plain")
    assert b'tfaas_model_version_state{model="m",state="AVAILABLE",version="3"} 1.0' in tf_serving.data
    assert b'tfaas_server_model_version_state{model="m",state="AVAILABLE",version="3"} 1.0' in tf_serving.data
    assert b'tfaas_server_model_version_state{model="m",state="LOADING",version="3"} 0.0' in tf_serving.data
    assert b":tensorflow:serving:request_count{" in tf_serving.data
    plain = client.get("/metrics")
    assert plain.status_code == 200 and plain.data.startswith(b"# HELP")
    assert client.get("/monitoring/prometheus/metrics/").status_code == 404  # exact path, as TF Serving's
    counted = {key: v for key, v in samples(metrics.render()).items() if key[0] == "tfaas_requests_total"}
    assert list(counted.values()) == [1]  # the predict; no scrape
