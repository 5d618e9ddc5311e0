"""The dashboard (``GET /``) through the worker's ASGI app, over a real ServerCore whose loader is a small
fake (no TensorFlow): its JSON summary, its page without JavaScript, escaping, try-it requests, files."""

from __future__ import annotations

import dataclasses
import html
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.asgi_client import AsgiClient
from tests.server.test_rest_api import TimesVersionLoader
from tfaas.config import ModelConfig, Settings
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.fronts.dashboard import CONTENT_SECURITY_POLICY
from tfaas.metrics import Metrics
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ServerCore

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HOSTILE_SIGNATURE = "<script>alert('signature')</script>"
HOSTILE_ALIAS = '"><img src=x onerror=alert(1)>'
HOSTILE_ERROR = "cannot load: <b onmouseover=alert(1)>version 3</b> & more"


def tensor_json(dtype: str, dims: list[int]) -> dict[str, Any]:
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(size)} for size in dims]}, "name": "t:0"}


SIGNATURE_DEF_MAP = {
    "signature_def": {
        "serving_default": {
            "inputs": {"x": tensor_json("DT_FLOAT", [-1, 1])},
            "outputs": {"y": tensor_json("DT_FLOAT", [-1, 1])},
            "method_name": "tensorflow/serving/predict",
        },
        HOSTILE_SIGNATURE: {
            "inputs": {
                HOSTILE_ALIAS: tensor_json("DT_INT32", [2]),
                "flag": {"dtype": "DT_BOOL", "tensor_shape": {"unknown_rank": True}},
            },
            "outputs": {},
            "method_name": "tensorflow/serving/predict",
        },
        "__saved_model_init_op": {"inputs": {}, "outputs": {}, "method_name": ""},
    }
}


class Doubling:
    """``y = 2 x``, with a second, hostile signature that it never runs."""

    signatures = {
        "serving_default": SignatureInfo(
            "serving_default",
            "tensorflow/serving/predict",
            {"x": TensorInfo("x", "x:0", "DT_FLOAT", (None, 1))},
            {"y": TensorInfo("y", "y:0", "DT_FLOAT", (None, 1))},
        )
    }

    def signature_def_map_json(self) -> dict[str, Any]:
        return SIGNATURE_DEF_MAP

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": np.asarray(inputs["x"], np.float32) * 2}

    def submit(self, signature_name, inputs, on_done=None):
        return None


class Loader(TimesVersionLoader):
    """Versions 1 and 2 load; version 3 fails with a hostile message."""

    def load(self) -> Doubling:
        if self.id.version == 3:
            raise RuntimeError(HOSTILE_ERROR)
        return Doubling()


@pytest.fixture
def serve(tmp_path: Path, start_worker) -> Any:
    """``serve(**settings)``: a client of a worker serving ``m`` (versions 1, 2 and a broken 3) and, from the
    model repository, ``uploaded`` (version 1)."""
    for model, versions in (("m", (1, 2, 3)), ("repo/uploaded", (1,))):
        for version in versions:
            (tmp_path / model / str(version)).mkdir(parents=True)
            (tmp_path / model / str(version) / "saved_model.pb").write_bytes(b"fake")
    config = ModelConfig(
        "m", str(tmp_path / "m"), version_policy=ServableVersionPolicy("all"), version_labels={"stable": 1}
    )
    base = Settings(
        enable_batching=False,
        models=(config,),
        model_repository=str(tmp_path / "repo"),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
        max_num_load_retries=0,
    )

    def ready(core: ServerCore) -> bool:
        states, serving = core.states("m"), (core.available_versions("m"), core.available_versions("uploaded"))
        return serving == ([2, 1], [1]) and 3 in states and bool(states[3].error)

    def serve(**settings: Any) -> AsgiClient:
        return start_worker(dataclasses.replace(base, **settings), Loader, ready, Metrics(CollectorRegistry()))

    return serve


@pytest.fixture
def client(serve) -> AsgiClient:
    return serve()


def model(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in summary["models"] if m["name"] == name)


# ---- JSON ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.9"])
def test_a_json_client_of_get_slash_gets_the_summary(client, accept):
    response = client.get("/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Vary"] == "Accept" and response.headers["Cache-Control"] == "no-store"
    assert [m["name"] for m in response.json["models"]] == ["m", "uploaded"]


def test_the_summary_has_versions_states_errors_config_and_signatures(client):
    summary = client.get("/").json
    assert summary["server"] == {"ready": True, "not_ready": {}}
    assert summary["management"] == {
        "enabled": False,
        "refusal": "Model management is disabled: start the server with --enable_model_management to upload, delete,"
        " load, unload or change models",
        "token_required": False,
    }
    m = model(summary, "m")
    assert m["serving"] == [2, 1]
    assert [(v["version"], v["state"], v["error"]) for v in m["versions"]] == [
        (3, "END", HOSTILE_ERROR),
        (2, "AVAILABLE", None),
        (1, "AVAILABLE", None),
    ]
    assert m["labels"] == {"stable": 1} and m["version_policy"] == "all" and m["swap_policy"] == "availability"
    assert m["batching"] == {"enabled": False, "parameters": None} and m["deletable"] is False
    assert m["signatures_version"] == 2
    default, hostile = m["signatures"]
    assert default == {
        "name": "serving_default",
        "method": "tensorflow/serving/predict",
        "inputs": [{"alias": "x", "dtype": "DT_FLOAT", "shape": [-1, 1]}],
        "outputs": [{"alias": "y", "dtype": "DT_FLOAT", "shape": [-1, 1]}],
    }
    assert hostile["name"] == HOSTILE_SIGNATURE
    assert {t["alias"]: t["shape"] for t in hostile["inputs"]} == {HOSTILE_ALIAS: [2], "flag": None}


def test_the_figures_count_requests_and_errors_of_each_model(client):
    for _ in range(3):
        assert client.post("/v1/models/m:predict", json={"instances": [[1.0]]}).status_code == 200
    assert client.post("/v1/models/m/versions/9:predict", json={"instances": [[1.0]]}).status_code == 404
    figures = model(client.get("/").json, "m")["figures"]
    assert figures["requests_total"] == 4 and figures["errors_total"] == 1
    assert 0 < figures["latency_p50_seconds"] <= figures["latency_p99_seconds"] < 1
    assert figures["loads_total"] == 2 and figures["load_failures_total"] == 1
    assert figures["load_seconds_mean"] >= 0
    assert model(client.get("/").json, "m")["figures_text"]["requests_total"] == "4"


def test_the_revision_changes_with_the_versions_not_with_the_figures(client):
    before = model(client.get("/").json, "m")["revision"]
    client.post("/v1/models/m:predict", json={"instances": [[1.0]]})
    assert model(client.get("/").json, "m")["revision"] == before
    assert model(client.get("/").json, "uploaded")["revision"] != before


# ---- the page --------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """What the tests read of a page: its text, elements by id, labels, form controls, scripts and styles."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.ids: list[str] = []
        self.labelled: set[str] = set()
        self.controls: list[str] = []
        self.sources: list[str] = []
        self.inline_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.append(attributes["id"] or "")
        if tag == "label" and attributes.get("for"):
            self.labelled.add(attributes["for"] or "")
        if tag in ("input", "textarea", "select"):
            self.controls.append(attributes.get("id") or "")
        if tag in ("script", "link", "img"):
            self.sources.append(attributes.get("src") or attributes.get("href") or "")
        if any(name.startswith("on") for name in attributes):
            raise AssertionError(f"an event handler attribute on <{tag}>: {attrs}")

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline_script = True
        self.text.append(data)


def page(client: AsgiClient) -> tuple[str, Page]:
    response = client.get("/", headers=BROWSER)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    text = response.data.decode()
    return text, Page(text)


def test_a_browser_gets_a_page_that_names_every_model_version_and_state_without_javascript(client):
    _, parsed = page(client)
    text = " ".join(" ".join(parsed.text).split())
    for expected in ("m", "uploaded", "AVAILABLE", "END", "stable → 1", "Version policy", "all", "availability"):
        assert expected in text, expected
    assert "Signatures of version 2" in text and "[?, 1]" in text and "DT_FLOAT" in text
    assert "Model management is disabled" in text


def test_the_page_loads_only_its_own_files_and_every_control_has_a_label(client):
    _, parsed = page(client)
    assert sorted(parsed.sources) == ["/dashboard.css", "/dashboard.js", "data:,"] and not parsed.inline_script
    assert len(parsed.ids) == len(set(parsed.ids))
    assert parsed.controls and set(parsed.controls) <= parsed.labelled


def test_hostile_names_and_errors_are_escaped(client):
    text, parsed = page(client)
    for hostile in (HOSTILE_SIGNATURE, HOSTILE_ALIAS, HOSTILE_ERROR):
        assert hostile not in text, hostile
        assert any(hostile in data for data in parsed.text), hostile  # NOTE: shown as the text it is
    assert "<script>alert" not in text and "<img src=x" not in text and "<b onmouseover" not in text


def test_the_try_it_form_holds_a_request_the_model_answers(client):
    text, _ = page(client)
    form = re.search(r'<form class="try" data-path="([^"]+)">.*?<textarea[^>]*>(.*?)</textarea>', text, re.S)
    assert form is not None
    path, body = form.group(1), html.unescape(form.group(2))
    assert path == "/v1/models/m:predict"
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 200, response.json
    assert response.json == {"outputs": [[2.0], [2.0]]}
    assert (
        f"curl --silent --show-error -H &#34;Content-Type: application/json&#34; -X POST --data-binary @- http://localhost{path}"
        in text
    )


def test_a_hostile_host_header_never_reaches_the_clients(client):
    response = client.get("/", headers={**BROWSER, "Host": "evil.example;rm -rf ~"})
    assert "rm -rf" not in response.data.decode()


def test_with_model_management_the_page_offers_uploads_and_deletes_of_repository_models(serve):
    client = serve(enable_model_management=True, admin_token="secret")
    summary = client.get("/").json
    assert summary["management"] == {"enabled": True, "refusal": None, "token_required": True}
    assert model(summary, "uploaded")["deletable"] and not model(summary, "m")["deletable"]
    text, parsed = page(client)
    assert 'data-delete="uploaded"' in text and 'data-delete="m"' not in text
    assert {"admin-token", "bundle", "upload-name", "upload-params", "upload-model"} <= set(parsed.ids)
    assert "secret" not in text


def test_read_only_says_why_nothing_may_be_written(serve):
    client = serve(enable_model_management=True, read_only=True)
    text, parsed = page(client)
    assert "The server is read-only" in text and "bundle" not in parsed.ids and "data-delete" not in text


# ---- its files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,mimetype", [("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")])
def test_the_pages_files_are_served_and_revalidated(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == mimetype and len(response.data) > 1000
    again = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_basic_auth_guards_the_page_too(serve):
    client = serve(enable_basic_auth=True, basic_auth_password="pw")
    assert client.get("/", headers=BROWSER).status_code == 401
    assert client.get("/dashboard.js").status_code == 401
