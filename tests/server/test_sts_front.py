"""Simple TensorFlow Serving's API, basic auth and CORS through the worker's ASGI app, over a real
ServerCore whose loader is a small fake (no TensorFlow)."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.server.test_rest_api import SIGNATURE, TimesVersion, TimesVersionLoader
from tfaas.config import ModelConfig, Settings
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.fronts import LOOP_REQUEST_BYTES

SIGNATURE_DEF_MAP = {
    "signature_def": {
        "serving_default": {
            "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "1"}]}}},
            "outputs": {},
            "method_name": SIGNATURE.method_name,
        }
    }
}


class Described(TimesVersion):
    """``y = x * version``, with its SignatureDefs as the metadata call gives them."""

    def signature_def_map_json(self):
        return SIGNATURE_DEF_MAP


class DescribedLoader(TimesVersionLoader):
    def load(self) -> Described:
        return Described(self.id)


@pytest.fixture
def serve(tmp_path: Path, start_worker):
    """``serve(**settings)``: a client of a worker serving ``default`` (versions 1 and 2) under ``settings``."""
    for version in (1, 2):
        (tmp_path / "default" / str(version)).mkdir(parents=True)
        (tmp_path / "default" / str(version) / "saved_model.pb").write_bytes(b"fake")
    model = ModelConfig("default", str(tmp_path / "default"), version_policy=ServableVersionPolicy("all"))
    base = Settings(enable_batching=False, models=(model,), version_settle_seconds=0, file_system_poll_wait_seconds=-1)

    def serve(**settings):
        ready = lambda core: core.available_versions("default") == [2, 1]  # noqa: E731
        return start_worker(dataclasses.replace(base, **settings), DescribedLoader, ready)

    return serve


@pytest.fixture
def client(serve):
    return serve()


# ---- POST / -----------------------------------------------------------------------------------------


def test_post_slash_runs_the_default_model_latest_or_asked_version(client):
    response = client.post("/", json={"data": {"x": [[3.0]]}})
    assert response.status_code == 200 and response.data == b'{"y":[[6.0]]}\n'
    assert response.mimetype == "application/json"
    assert client.post("/", json={"model_version": "1", "data": {"x": [[3]]}}).json == {"y": [[3.0]]}


def test_a_large_body_is_answered_on_the_pool_as_a_small_one(client):
    rows = [[1.5]] * (LOOP_REQUEST_BYTES // 4)
    body = json.dumps({"data": {"x": rows}}).encode()
    assert len(body) > LOOP_REQUEST_BYTES
    response = client.post("/", data=body, content_type="application/json", pieces=3)
    assert response.status_code == 200
    np.testing.assert_array_equal(response.json["y"], np.full((len(rows), 1), 3.0))


@pytest.mark.parametrize(
    "body,message",
    [
        ({"model_name": "nope", "data": {}}, "Invalid model name: nope, available models: dict_keys(['default'])"),
        ({"model_version": 9, "data": {"x": [[1]]}}, "Servable not found for request: Specific(default, 9)"),
        ({"signature_name": "other", "data": {"x": [[1]]}}, "Fail to request the signature name: other, please"),
        ({"data": {"y": [[1]]}}, "Input op name 'x' does not exist in input data: {'y': [[1]]}, please"),
    ],
)
def test_what_is_not_there_is_a_400_in_stss_words(client, body, message):
    response = client.post("/", json=body)
    assert response.status_code == 400 and response.json["error"].startswith(message)


def test_slash_answers_post_and_leaves_get_to_the_dashboard(client):
    for method in ("PUT", "DELETE", "PATCH"):
        response = client.open("/", method=method)
        assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, OPTIONS, POST", method
    assert client.put("/").json == {"error": "Method PUT is not allowed for /"}
    assert client.options("/").headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.get("/").status_code == 200 and client.get("/").json["models"][0]["name"] == "default"
    assert client.head("/").status_code == 200


def count(client, labels: str) -> float:
    """The value of ``tfaas_requests_total{labels}`` (0 before its first request)."""
    prefix = f"tfaas_requests_total{{{labels}}} "
    lines = [line for line in client.get("/metrics").data.decode().splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix) :]) if lines else 0.0


def test_a_request_is_counted_as_a_predict_of_its_model(client):
    served, refused = (
        'api="predict",code="200",model="default",version="2"',
        'api="predict",code="400",model="",version=""',
    )
    before = count(client, served), count(client, refused)
    client.post("/", json={"data": {"x": [[1.0]]}})
    client.post("/", json={"model_name": "nope", "data": {}})
    assert (count(client, served), count(client, refused)) == (before[0] + 1, before[1] + 1)


# ---- gen_json, gen_client -------------------------------------------------------------------------------


def test_gen_json_and_the_clients_address_this_server_as_the_client_reached_it(client):
    assert client.get("/v1/models/default/gen_json").json == {"model_name": "default", "data": {"x": [[1.0], [1.0]]}}
    source = client.get("/v1/models/default/gen_client?language=python", headers={"Host": "models.example:8500"})
    assert source.mimetype == "text/plain" and 'ENDPOINT = "http://models.example:8500/"' in source.data.decode()


def test_a_host_header_that_is_no_host_is_not_written_into_a_client(client):
    source = client.get("/v1/models/default/gen_client", headers={"Host": "x; rm -rf ~"}).data.decode()
    assert "rm -rf" not in source and "http://localhost:80/" in source


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("POST", "/v1/models/default/gen_json", 405),
        ("GET", "/v1/models/default/GEN_JSON", 400),
        ("GET", "/v1/models/default/versions/1/gen_json", 400),
        ("GET", "/v1/models/nope/gen_client", 404),
    ],
)
def test_gen_paths_are_routed_as_stss(client, method, path, status):
    assert client.open(path, method=method).status_code == status


# ---- basic auth ---------------------------------------------------------------------------------------


def basic(credentials: str, scheme: str = "Basic") -> dict[str, str]:
    return {"Authorization": f"{scheme} {base64.b64encode(credentials.encode()).decode()}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("admin:wrong"),
        basic("admin:p:w"),
        basic("Admin:p:w:x"),
        basic("admin:p:w:x", scheme="Bearer"),
        {"Authorization": "Basic not*base64"},
        {"Authorization": "Basic"},
    ],
)
def test_basic_auth_refuses_every_route_without_the_right_credentials(serve, headers):
    client = serve(enable_basic_auth=True, basic_auth_password="p:w:x")
    routes = (("POST", "/"), ("GET", "/"), ("GET", "/v1/models"), ("GET", "/models"), ("OPTIONS", "/v1/models"))
    for method, path in routes:
        response = client.open(path, method=method, headers=headers, json={"data": {"x": [[1.0]]}})
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == 'Basic realm="tfaas", charset="UTF-8"'
        assert response.json == {"error": "Need basic auth to request the resources"}


def test_basic_auth_lets_the_right_credentials_and_the_probes_through(serve):
    client = serve(enable_basic_auth=True, basic_auth_username="ü", basic_auth_password="p:w:x")
    for headers in (basic("ü:p:w:x"), basic("ü:p:w:x", scheme="basic")):
        assert client.post("/", json={"data": {"x": [[1.0]]}}, headers=headers).status_code == 200
    for path in ("/health", "/healthz", "/readyz"):
        assert client.get(path).status_code == 200


# ---- CORS -----------------------------------------------------------------------------------------------

PREFLIGHT = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}


def test_a_preflight_is_answered_before_authentication(serve):
    client = serve(enable_cors=True, enable_basic_auth=True, basic_auth_password="pw")
    response = client.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200 and response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Headers"] == "authorization"
    refused = client.get("/v1/models")
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"


def test_without_cors_a_preflight_is_an_ordinary_options(client):
    response = client.options("/v1/models", headers=PREFLIGHT)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert "Access-Control-Allow-Origin" not in response.headers
