"""PAI-EAS's API on the real server, driven by PAI-EAS's own Python SDK (``eas-prediction``, in its own
interpreter: ``eas_sdk.py``) and by the seed's curl command, against seed 004's model
(``mnist_saved_model_example``, rebuilt in ``eas_models.py``) and a model of every dtype (``eas_dtypes``),
served with a token.

The version carries an EAS warm-up file written by the SDK itself (``TFRequest.to_string()``), replayed
before it serves.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.e2e.conftest import model_config, model_config_list
from tests.e2e.eas_models import scores, write_dtypes_model, write_mnist_like
from tests.e2e.eas_sdk import EasSdk, install_sdk
from tests.e2e.server import ServerProcess
from tfaas.protos import tf_predict_pb2 as eas
from tfaas.servables.eas_warmup import EAS_WARMUP_FILE

SERVICE = "mnist_saved_model_example"
DTYPES = "eas_dtypes"
TOKEN = "YTg2ZjE0ZjM4ZmE3OTc0NzYxZDMyNmYzMTJjZTQ1"
"""The seed's token, less the characters it masks."""

SEEDS_STRUCTURE = {
    "inputs": [{"name": "images", "shape": [-1, 784], "type": "DT_FLOAT"}],
    "outputs": [{"name": "scores", "shape": [-1, 10], "type": "DT_FLOAT"}],
    "signature_name": "predict_images",
}
"""Seed 004's documented answer to an empty request for this model."""

SEEDS_CALL = {
    "service": SERVICE,
    "token": TOKEN,
    "signature": "predict_images",
    "feeds": [["images", [1, 784], "DT_FLOAT", [1] * 784]],
}
"""Seed 004's SDK example: ``TFRequest('predict_images')``, ``add_feed('images', [1, 784], DT_FLOAT, [1] * 784)``."""


@pytest.fixture(scope="session")
def eas_sdk() -> EasSdk:
    return install_sdk()


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_server, eas_sdk: EasSdk) -> ServerProcess:
    """Version 1 of ``mnist_saved_model_example``, with the SDK's warm-up file, and of ``eas_dtypes``, behind
    ``TOKEN``."""
    root = tmp_path_factory.mktemp("eas")
    write_mnist_like(root / SERVICE / "1")
    write_dtypes_model(root / DTYPES / "1")
    (root / SERVICE / "1" / EAS_WARMUP_FILE).parent.mkdir()
    [written] = eas_sdk.run("", [{**SEEDS_CALL, "write_to": str(root / SERVICE / "1" / EAS_WARMUP_FILE)}])
    assert Path(written["written"]).stat().st_size > 784 * 4
    config = root / "models.config"
    config.write_text(model_config_list([model_config(name, root / name) for name in (SERVICE, DTYPES)]))
    server = start_server("--model_config_file", str(config), env={"TFAAS_EAS_TOKEN": TOKEN})
    server.wait_available(SERVICE, 1)
    server.wait_available(DTYPES, 1)
    return server


@pytest.mark.parametrize("tz,offset", [("UTC0", 0), ("CST-8", 8 * 3600)], ids=["UTC", "Shanghai's UTC+8"])
def test_the_seeds_sdk_example_signs_with_the_token_and_gets_the_scores(server, eas_sdk, tz, offset):
    # NOTE: the SDK dates its signature with the client's local time labelled GMT.
    [answer] = eas_sdk.run(server.url, [SEEDS_CALL], tz=tz)
    assert answer["utc_offset"] == offset
    answered = answer["outputs"]["scores"]
    assert answered["dtype"] == eas.DT_FLOAT and answered["shape"] == [1, 10]
    np.testing.assert_allclose(answered["values"], scores(np.ones((1, 784)))[0], rtol=1e-6)


def test_every_dtype_the_sdk_sends_comes_back_from_the_default_signature(server, eas_sdk):
    feeds = [
        ["f32", [2], "DT_FLOAT", [1.5, -2.25]],
        ["f64", [2], "DT_DOUBLE", [0.1, 1e300]],
        ["i8", [2], "DT_INT8", [-128, 127]],
        ["i16", [2], "DT_INT16", [-32768, 32767]],
        ["i32", [2], "DT_INT32", [-(2**31), 2**31 - 1]],
        ["i64", [2], "DT_INT64", [-(2**63), 2**63 - 1]],
        ["u8", [2], "DT_UINT8", [0, 255]],
        ["u16", [2], "DT_UINT16", [0, 65535]],
        ["b", [2], "DT_BOOL", [True, False]],
        ["s", [2], "DT_STRING", ["ab", "héllo"]],
        ["q8", [2], "DT_QINT8", [-7, 7]],
    ]
    [answer] = eas_sdk.run(server.url, [{"service": DTYPES, "token": TOKEN, "signature": "", "feeds": feeds}])
    outputs = answer["outputs"]
    for name, shape, dtype, values in feeds:
        # NOTE: a quantized output comes back as its plain int type (see eas_proto.encode_array).
        expected_dtype = eas.DT_INT8 if dtype == "DT_QINT8" else eas.ArrayDataType.Value(dtype)
        assert (outputs[name]["dtype"], outputs[name]["shape"]) == (expected_dtype, shape), name
        if dtype == "DT_STRING":
            assert [base64.b64decode(v).decode() for v in outputs[name]["values"]] == values
        else:
            assert outputs[name]["values"] == values, name
    assert [base64.b64decode(v).decode() for v in outputs["upper"]["values"]] == [
        "AB",
        "HéLLO",
    ]  # NOTE: TF uppercases ASCII only


def test_add_fetch_filters_the_outputs(server, eas_sdk):
    feeds = [["f32", [1], "DT_FLOAT", [1.0]], ["f64", [1], "DT_DOUBLE", [1.0]], ["i8", [1], "DT_INT8", [1]]]
    feeds += [["i16", [1], "DT_INT16", [1]], ["i32", [1], "DT_INT32", [1]], ["i64", [1], "DT_INT64", [1]]]
    feeds += [["u8", [1], "DT_UINT8", [1]], ["u16", [1], "DT_UINT16", [1]], ["b", [1], "DT_BOOL", [True]]]
    feeds += [["s", [1], "DT_STRING", ["x"]], ["q8", [1], "DT_QINT8", [1]]]
    call = {
        "service": DTYPES,
        "token": TOKEN,
        "signature": "serving_default",
        "feeds": feeds,
        "fetches": ["i64", "upper"],
    }
    [answer] = eas_sdk.run(server.url, [call])
    assert sorted(answer["outputs"]) == ["i64", "upper"]


def test_an_empty_request_answers_the_seeds_model_structure(server, eas_sdk):
    [answer] = eas_sdk.run(server.url, [{"service": SERVICE, "token": TOKEN, "empty": True}])
    assert json.loads(answer["structure"]) == SEEDS_STRUCTURE


@pytest.mark.parametrize(
    "call,code,message",
    [
        ({**SEEDS_CALL, "token": "not-the-token"}, 401, "The EAS signature does not match this service's token"),
        ({**SEEDS_CALL, "token": None}, 401, "This service needs its token"),
        ({**SEEDS_CALL, "service": "nope"}, 404, "Servable not found for request: Latest(nope)"),
        (
            {**SEEDS_CALL, "feeds": [["images", [2, 784], "DT_FLOAT", [1] * 784]]},
            400,
            "Input images: array_shape [2,784] holds 1568 values, but 784 were sent in float_val",
        ),
        ({**SEEDS_CALL, "signature": "nope"}, 400, 'Serving signature name: "nope" not found in signature def'),
    ],
    ids=["wrong token", "no token", "unknown service", "values short of the shape", "unknown signature"],
)
def test_the_sdk_raises_predict_exception_with_eas_statuses(server, eas_sdk, call, code, message):
    [answer] = eas_sdk.run(server.url, [call])
    assert answer["code"] == code
    assert message in json.loads(answer["message"])["error"]
    assert TOKEN not in server.log(), "the token is never logged"


def test_the_seeds_curl_with_the_raw_token(server):
    command = ["curl", "-sS", f"{server.url}/api/predict/{SERVICE}", "-H", f"Authorization: {TOKEN}"]
    answered = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(answered.stdout) == SEEDS_STRUCTURE
    without = subprocess.run(command[:3] + ["-w", "%{http_code}", "-o", "/dev/null"], capture_output=True, text=True)
    assert without.stdout == "401"


def test_the_16_bit_floats_the_sdk_cannot_send_come_back_too(server):
    request = eas.PredictRequest(signature_name="halves")
    for alias, dtype in (("h", eas.DT_HALF), ("bf", eas.DT_BFLOAT16)):
        request.inputs[alias].dtype = dtype
        request.inputs[alias].array_shape.dim.append(3)
        request.inputs[alias].float_val.extend([0.5, -2.0, 65504.0])
    answered = requests.post(
        f"{server.url}/api/predict/{DTYPES}",
        data=request.SerializeToString(),
        headers={"Authorization": TOKEN},
        timeout=30,
    )
    assert answered.status_code == 200 and answered.headers["Content-Type"] == "application/octet-stream"
    outputs = eas.PredictResponse.FromString(answered.content).outputs
    assert outputs["h"] == request.inputs["h"]
    assert outputs["bf"].dtype == eas.DT_BFLOAT16 and list(outputs["bf"].float_val) == [0.5, -2.0, 65536.0]


def test_the_warm_up_file_the_sdk_wrote_was_replayed_before_the_version_served(server):
    log = server.log()
    replayed = log.index("Replayed the EAS warm-up request ")
    path = log[replayed:].split()[5]
    assert path.endswith(f"/{SERVICE}/1/{EAS_WARMUP_FILE}")
    assert replayed < log.index(f"Loaded servable {{name: {SERVICE} version: 1}}")
