"""The shipped OpenAPI document is valid, documents every route, and every path in it is routed."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from tests.asgi_client import worker_client
from tfaas.config import Settings
from tfaas.errors import InvalidArgument
from tfaas.fronts import sts, tf_serving_rest, v2_rest
from tfaas.inference.service import InferenceService
from tfaas.model_repository import check_model_name
from tfaas.server.app import create_app
from tfaas.server.openapi import openapi_document
from tfaas.server_core import ServerCore

SAMPLE = {"model_name": "m", "version": "1", "label": "stable", "model": "m"}
SPECS = ["/v1/models/m", "/v1/models/m/versions/1", "/v1/models/m/labels/stable"]
V1_FORMS = (
    [("get", "/v1/models")]
    + [("get", spec) for spec in SPECS]
    + [("get", spec + "/metadata") for spec in SPECS]
    + [("post", f"{spec}:{verb}") for spec in SPECS for verb in ("predict", "classify", "regress")]
)
"""Every form of /v1 URL the dispatcher answers, one instance each."""
V2_MODELS = ["/v2/models/m", "/v2/models/m/versions/1"]
V2_FORMS = (
    [("get", "/v2"), ("get", "/v2/health/live"), ("get", "/v2/health/ready")]
    + [("get", spec) for spec in V2_MODELS]
    + [("get", spec + "/ready") for spec in V2_MODELS]
    + [("post", spec + "/infer") for spec in V2_MODELS]
    + [("post", "/v2/repository/index")]
    + [("post", f"/v2/repository/models/m/{call}") for call in ("load", "unload")]
)
"""Every form of /v2 URL the V2 front answers, one instance each."""


@pytest.fixture(scope="module")
def client():
    with worker_client(ServerCore(Settings())) as client:
        yield client


@pytest.fixture(scope="module")
def flask_app():
    """The Flask app of a worker, to which its ASGI front passes every request outside /v1."""
    return create_app(InferenceService(ServerCore(Settings())))


def documented() -> list[tuple[str, str]]:
    return [(method, path) for path, item in openapi_document()["paths"].items() for method in item]


def template_regex(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/:]+", re.escape(path)))


def test_document_is_valid_openapi():
    validate(openapi_document())


@pytest.mark.parametrize("method,path", documented())
def test_every_documented_path_is_routed(flask_app, method, path):
    concrete = re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE[m.group(1)], path)
    if tf_serving_rest.serves(concrete):
        assert tf_serving_rest.resolve(method.upper(), concrete).api != "other"
    elif v2_rest.serves(concrete):
        assert not v2_rest.resolve(method.upper(), concrete).allowed
    elif sts.serves(method.upper(), concrete):
        assert method == "post"
    else:
        endpoint, _ = flask_app.url_map.bind("localhost").match(concrete, method=method.upper())
        assert endpoint


@pytest.mark.parametrize("method,path", V1_FORMS + V2_FORMS)
def test_every_v1_and_v2_form_is_documented(method, path):
    assert any(m == method and template_regex(p).fullmatch(path) for m, p in documented()), path


def test_every_flask_route_is_documented(flask_app):
    paths = {p for _, p in documented()}
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        assert not tf_serving_rest.serves(rule.rule), rule.rule  # the ASGI front's, never the Flask app's
        assert not v2_rest.serves(rule.rule), rule.rule
        assert re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule) in paths, rule.rule


def test_served_documents_match_the_shipped_one(client):
    assert client.get("/openapi.json").json == openapi_document()
    assert client.get("/openapi.yaml").data.decode().startswith("openapi: 3.0")


IMPLICIT = {"HEAD", "OPTIONS"}
"""Methods every path answers without documenting them: HEAD where GET is, and OPTIONS."""


def documented_methods() -> list[tuple[str, set[str]]]:
    """Every documented path (its parameters filled in) with the methods the document gives it."""
    return [
        (re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE[m.group(1)], path), {m.upper() for m in item})
        for path, item in openapi_document()["paths"].items()
    ]


@pytest.mark.parametrize("path,methods", documented_methods())
def test_a_documented_path_asked_with_another_method_is_a_405_naming_its_methods(client, path, methods):
    for method in sorted({"GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"} - methods):
        response = client.open(path, method=method)
        assert response.status_code == 405, (method, path)
        assert response.mimetype == "application/json" and response.json["error"], (method, path)
        assert set(response.headers["Allow"].split(", ")) - IMPLICIT == methods, (method, path)


@pytest.mark.parametrize("path,methods", documented_methods())
def test_options_on_a_documented_path_names_its_methods(client, path, methods):
    response = client.options(path)
    implicit = {"OPTIONS", "HEAD"} if "GET" in methods else {"OPTIONS"}
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) == methods | implicit


def test_a_v1_path_is_matched_in_any_case_for_its_405_too(client):
    response = client.put("/V1/MODELS/m:Predict")
    assert response.status_code == 405 and response.headers["Allow"] == "OPTIONS, POST"


def test_head_answers_where_get_does_with_no_body_and_the_get_answers_length(client):
    for path in ("/v1/models", "/healthz"):
        response = client.head(path)
        assert response.status_code == 200 and response.data == b"", path
        assert response.content_length == len(client.get(path).data) > 0, path


@pytest.mark.parametrize(
    "name", ["m", "A_b.c-9", "_", "9" * 128, "9" * 129, ".hidden", "-flag", "a/b", "a:b", "a b", "é", ""]
)
def test_the_documented_tfaas_model_name_is_the_repositorys_rule(name):
    schema = openapi_document()["components"]["schemas"]["TfaasModelName"]
    documented = re.search(schema["pattern"], name) and len(name) <= schema["maxLength"]
    try:
        accepted = check_model_name(name) == name
    except InvalidArgument:
        accepted = False
    assert bool(documented) == accepted
