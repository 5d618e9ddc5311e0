"""PAI-EAS's /api/predict/<service> through the worker's ASGI app, over a real ServerCore whose loader is a
small fake (no TensorFlow): predictions, the structure of an empty request, the token (raw and signed),
and the statuses EAS's SDK reads."""

from __future__ import annotations

import hashlib
import threading
import time
from email.utils import formatdate
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.asgi_client import worker_client
from tests.test_metrics import samples
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.errors import Unauthenticated
from tfaas.fronts.eas_auth import check_token, sign
from tfaas.metrics import Metrics
from tfaas.protos import tf_predict_pb2 as eas
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ServerCore

TOKEN = "YTg2ZjE0ZjM4ZmE3OTc0NzYxZDMyNmYzMTJjZTQ1"
SIGNATURE = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorInfo("x", "x:0", "DT_FLOAT", (None, 2))},
    {"y": TensorInfo("y", "y:0", "DT_FLOAT", (None, 2)), "n": TensorInfo("n", "n:0", "DT_INT64", (None,))},
)


def _info(tensor: TensorInfo) -> dict:
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in tensor.shape or ()]
    return {"dtype": tensor.dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": tensor.tensor_name}


class Doubler:
    """``y = 2 * x`` and ``n``, the row count of ``x``, for every row."""

    signatures = {"serving_default": SIGNATURE}

    def signature_def_map_json(self):
        return {
            "signature_def": {
                "serving_default": {
                    "inputs": {alias: _info(t) for alias, t in SIGNATURE.inputs.items()},
                    "outputs": {alias: _info(t) for alias, t in SIGNATURE.outputs.items()},
                    "method_name": SIGNATURE.method_name,
                }
            }
        }

    def run(self, signature_name, inputs):
        x = np.asarray(inputs["x"], np.float32)
        return {"y": 2 * x, "n": np.full(len(x), len(x), np.int64)}

    def submit(self, signature_name, inputs, on_done=None):
        return None


LOADED = threading.Event()
"""The gate every version's load waits for: set, except while a test looks at a model still loading."""
LOADED.set()


class DoublerLoader:
    """Loads a :class:`Doubler` for every version, once ``LOADED`` is set."""

    def __init__(self, id: ServableId, path: str) -> None:
        self.unload = lambda: None

    def load(self) -> Doubler:
        assert LOADED.wait(10)
        return Doubler()


@pytest.fixture
def client_with(tmp_path: Path):
    """``client_with(**settings)``: a client of a worker serving model ``m`` with the fake (once it serves,
    unless ``wait=False``)."""
    made = []

    def client(wait: bool = True, **settings):
        (tmp_path / "m" / "1").mkdir(parents=True, exist_ok=True)
        (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"fake")
        core = ServerCore(
            Settings(
                models=(ModelConfig(name="m", base_path=str(tmp_path / "m")),),
                enable_batching=False,
                version_settle_seconds=0,
                file_system_poll_wait_seconds=-1,
                **settings,
            ),
            loader_factory=DoublerLoader,
            metrics=Metrics(CollectorRegistry()),
        )
        core.start()
        assert not wait or core.wait_until(lambda: core.available_versions("m") == [1], 5)
        made.append((core, worker_client(core)))
        made[-1][1].metrics = core.metrics
        return made[-1][1]

    yield client
    for core, made_client in made:
        made_client.close()
        core.stop()


def predict_body(rows: list[list[float]], **fields) -> bytes:
    request = eas.PredictRequest(**fields)
    request.inputs["x"].dtype = eas.DT_FLOAT
    request.inputs["x"].array_shape.dim.extend([len(rows), 2])
    request.inputs["x"].float_val.extend(v for row in rows for v in row)
    return request.SerializeToString()


def signed_headers(body: bytes, service: str = "m", token: str = TOKEN, date: str | None = None) -> dict[str, str]:
    """The headers EAS's Python SDK sends with a token (``PredictClient.generate_singaure``)."""
    md5 = hashlib.md5(body).hexdigest()
    date = formatdate(usegmt=True) if date is None else date
    content_type = "application/octet-stream"
    signature = sign(token, "POST", f"/api/predict/{service}", md5, content_type, date)
    return {"Content-MD5": md5, "Date": date, "Content-Type": content_type, "Authorization": f"EAS {signature}"}


def test_predict_answers_a_predict_response(client_with):
    answer = client_with().post("/api/predict/m", data=predict_body([[1.0, 2.0], [3.0, 4.5]]))
    assert answer.status_code == 200 and answer.mimetype == "application/octet-stream"
    outputs = eas.PredictResponse.FromString(answer.data).outputs
    assert outputs["y"].dtype == eas.DT_FLOAT and list(outputs["y"].array_shape.dim) == [2, 2]
    assert list(outputs["y"].float_val) == [2.0, 4.0, 6.0, 9.0]
    assert outputs["n"].dtype == eas.DT_INT64 and list(outputs["n"].int64_val) == [2, 2]


def test_output_filter_keeps_the_outputs_asked_for(client_with):
    answer = client_with().post("/api/predict/m", data=predict_body([[1.0, 2.0]], output_filter=["n"]))
    assert list(eas.PredictResponse.FromString(answer.data).outputs) == ["n"]


@pytest.mark.parametrize("method,body", [("GET", b""), ("POST", b""), ("HEAD", b"")])
def test_an_empty_request_answers_the_model_structure(client_with, method, body):
    answer = client_with().open("/api/predict/m", method, data=body)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    if method != "HEAD":
        assert answer.json == {
            "inputs": [{"name": "x", "shape": [-1, 2], "type": "DT_FLOAT"}],
            "outputs": [
                {"name": "n", "shape": [-1], "type": "DT_INT64"},
                {"name": "y", "shape": [-1, 2], "type": "DT_FLOAT"},
            ],
            "signature_name": "serving_default",
        }


@pytest.mark.parametrize(
    "path,body,status,error",
    [
        ("/api/predict/nope", predict_body([[1.0, 2.0]]), 404, "Servable not found for request: Latest(nope)"),
        ("/api/predict/nope", b"", 404, "Servable not found for request: Latest(nope)"),
        ("/api/predict/m", b"\xff\xff", 400, "The body is not a serialized EAS PredictRequest"),
        ("/api/predict/m", predict_body([[1.0, 2.0]], signature_name="other"), 400, '"other" not found'),
        ("/api/predict/m", predict_body([[1.0, 2.0]], output_filter=["z"]), 400, "output tensor alias not found"),
    ],
)
def test_client_mistakes_get_eas_statuses_never_5xx(client_with, path, body, status, error):
    answer = client_with().post(path, data=body)
    assert answer.status_code == status and error in answer.json["error"]


def test_a_model_still_loading_is_a_503(client_with):
    LOADED.clear()
    try:
        client = client_with(wait=False)
        for answer in (client.post("/api/predict/m", data=predict_body([[1.0, 2.0]])), client.get("/api/predict/m")):
            assert answer.status_code == 503 and answer.json["error"].startswith("Model m is loading: version 1")
    finally:
        LOADED.set()


def test_a_shape_that_does_not_hold_the_values_is_a_400(client_with):
    request = eas.PredictRequest()
    request.inputs["x"].dtype = eas.DT_FLOAT
    request.inputs["x"].array_shape.dim.extend([2, 2])
    request.inputs["x"].float_val.extend([1.0, 2.0])
    answer = client_with().post("/api/predict/m", data=request.SerializeToString())
    assert answer.status_code == 400
    assert answer.json == {"error": "Input x: array_shape [2,2] holds 4 values, but 2 were sent in float_val"}


def test_other_methods_are_405(client_with):
    answer = client_with().put("/api/predict/m", data=b"x")
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": TOKEN},
        "signed",
    ],
    ids=["raw token (the seed's curl)", "the SDK's signature"],
)
def test_the_token_raw_or_signed_lets_a_request_through(client_with, headers):
    body = predict_body([[1.0, 2.0]])
    answer = client_with(eas_token=TOKEN).post(
        "/api/predict/m", data=body, headers=signed_headers(body) if headers == "signed" else headers
    )
    assert answer.status_code == 200
    assert list(eas.PredictResponse.FromString(answer.data).outputs["y"].float_val) == [2.0, 4.0]


def test_without_the_token_every_call_is_a_401_that_reveals_neither_token_nor_models(client_with):
    client = client_with(eas_token=TOKEN)
    body = predict_body([[1.0, 2.0]])
    tampered = {**signed_headers(body), "Content-MD5": hashlib.md5(b"other").hexdigest()}
    for path, headers in [
        ("/api/predict/m", {}),
        ("/api/predict/m", {"Authorization": TOKEN[:-1]}),
        ("/api/predict/m", {"Authorization": "Bearer " + TOKEN}),
        ("/api/predict/m", signed_headers(body, token="wrong")),
        ("/api/predict/m", signed_headers(body, service="other")),
        ("/api/predict/m", tampered),
        ("/api/predict/nope", {}),
    ]:
        answer = client.post(path, data=body, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == "EAS"
        assert TOKEN not in answer.data.decode() and "nope" not in answer.json["error"]
    assert client.get("/api/predict/m").status_code == 401, "the structure too"


def test_a_body_other_than_the_one_signed_is_refused(client_with):
    body = predict_body([[1.0, 2.0]])
    answer = client_with(eas_token=TOKEN).post(
        "/api/predict/m", data=predict_body([[5.0, 6.0]]), headers=signed_headers(body)
    )
    assert answer.status_code == 401 and answer.json == {"error": "Content-MD5 is not the hex MD5 of the body"}


NOW = 1_700_000_000.0


def headers_dated(offset_seconds: float) -> dict[str, str]:
    return signed_headers(b"body", date=formatdate(NOW + offset_seconds, usegmt=True))


@pytest.mark.parametrize(
    "offset",
    [0, -14 * 60, 14 * 60, 8 * 3600, -5 * 3600, 14 * 3600 + 14 * 60, -(12 * 3600 + 14 * 60)],
    ids=["now", "14 min slow", "14 min fast", "Shanghai's local time", "New York's", "UTC+14", "UTC-12"],
)
def test_a_signed_date_within_the_skew_of_some_utc_offset_is_accepted(offset):
    # NOTE: EAS's Python SDK writes the client's local time with a GMT label.
    check_token(TOKEN, "POST", "/api/predict/m", headers_dated(offset), b"body", NOW)


@pytest.mark.parametrize("offset", [14 * 3600 + 16 * 60, -(12 * 3600 + 16 * 60), 2 * 86400, -86400 * 365])
def test_a_signed_date_beyond_the_window_is_refused(offset):
    with pytest.raises(Unauthenticated, match="is too far from the server's time"):
        check_token(TOKEN, "POST", "/api/predict/m", headers_dated(offset), b"body", NOW)


def test_a_signed_request_without_a_date_is_refused():
    headers = signed_headers(b"body", date="")
    with pytest.raises(Unauthenticated, match="The Date header '' is not an HTTP date"):
        check_token(TOKEN, "POST", "/api/predict/m", headers, b"body", time.time())


def test_an_empty_token_lets_everyone_through():
    check_token("", "POST", "/api/predict/m", {}, b"", time.time())


def test_requests_are_counted_in_the_metrics(client_with):
    client = client_with(eas_token=TOKEN)
    body = predict_body([[1.0, 2.0]])
    assert client.post("/api/predict/m", data=body, headers={"Authorization": TOKEN}).status_code == 200
    assert client.post("/api/predict/m", data=body).status_code == 401
    assert client.get("/api/predict/m", headers={"Authorization": TOKEN}).status_code == 200
    assert client.post("/api/predict/nope", data=body, headers={"Authorization": TOKEN}).status_code == 404
    requests_total = {
        (labels["model"], labels["version"], labels["api"], labels["code"]): v
        for (name, items), v in samples(client.metrics.render()).items()
        if name == "tfaas_requests_total"
        for labels in [dict(items)]
    }
    assert requests_total == {
        ("m", "1", "predict", "200"): 1,
        ("m", "", "predict", "401"): 1,
        ("m", "1", "metadata", "200"): 1,
        ("", "", "predict", "404"): 1,
    }
