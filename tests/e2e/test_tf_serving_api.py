"""TF Serving's REST API end to end: its test models give its known answers and metadata.

The known answers come from TF Serving's tests and docs (TFSERVING.md section 4.8, and the README of its
testdata); they hold for the models built here (``tests/tfserving_models.py``) and, where ``../shared`` is
present, for TF Serving's own copies, served by a second server. The metadata is the JSON written out in
``tests/tfserving_models.py``, which equals TF Serving's own files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import ServerProcess, wait_for
from tests.tfserving_models import SIGNATURE_DEFS_JSON, TfServingTestdata

pytestmark = pytest.mark.e2e

TWO_VERSIONS = "saved_model_half_plus_two_2_versions"
TF_SERVING_MODELS = {
    "default": ("saved_model_half_plus_two_cpu", ""),
    "saved_model_half_plus_three": ("saved_model_half_plus_three", ""),
    "counter": ("saved_model_counter", ""),
    TWO_VERSIONS: (TWO_VERSIONS, 'model_version_policy { all {} } version_labels { key: "Version_Label" value: 123 }'),
}


def tf_serving_configs(testdata: TfServingTestdata) -> list[str]:
    """The config entries serving TF Serving's test models from ``testdata``."""
    return [model_config(name, testdata.path(d), extra) for name, (d, extra) in TF_SERVING_MODELS.items()]


def labelled_config(root: Path, stable: int, canary: int, testdata: TfServingTestdata) -> str:
    """The config text: the ``labelled`` model (all versions, two labels) and TF Serving's models."""
    labels = f'version_labels {{ key: "stable" value: {stable} }} version_labels {{ key: "canary" value: {canary} }}'
    configs = [model_config("labelled", root / "labelled", "model_version_policy { all {} } " + labels)]
    return model_config_list(configs + tf_serving_configs(testdata))


def replace_config(root: Path, text: str) -> None:
    """Replace the polled config file at once, so that no poll reads it half written (or empty)."""
    staged = root / "models.config.new"
    staged.write_text(text)
    os.replace(staged, root / "models.config")


@pytest.fixture(scope="module")
def root(tmp_path_factory, half_plus) -> Path:
    root = tmp_path_factory.mktemp("tfs")
    install_version(half_plus(2), root / "labelled", 1)
    install_version(half_plus(3), root / "labelled", 2)
    return root


@pytest.fixture(scope="module")
def built(tfserving_testdata_sources) -> TfServingTestdata:
    return tfserving_testdata_sources["built"]


@pytest.fixture(scope="module")
def server(start_server, root: Path, built: TfServingTestdata) -> ServerProcess:
    """The server of the ``labelled`` model and of TF Serving's test models as built here."""
    (root / "models.config").write_text(labelled_config(root, stable=1, canary=2, testdata=built))
    server = start_server(
        "--model_config_file", str(root / "models.config"), "--model_config_file_poll_wait_seconds", "0.3"
    )
    server.wait_available("labelled", 2)
    server.wait_available("labelled", 1)
    return server


@pytest.fixture(scope="module")
def tfs(request, tfserving_testdata, start_server, tmp_path_factory) -> ServerProcess:
    """A server of TF Serving's test models from each source, once they serve: ``server`` for the built
    ones, a server of their own for TF Serving's copies."""
    if tfserving_testdata.built:
        server = request.getfixturevalue("server")
    else:
        config = tmp_path_factory.mktemp("tfserving") / "models.config"
        config.write_text(model_config_list(tf_serving_configs(tfserving_testdata)))
        server = start_server("--model_config_file", str(config))
    for name in ("default", "saved_model_half_plus_three", "counter"):
        server.wait_available(name, 123)
    server.wait_available(TWO_VERSIONS, 123)
    server.wait_available(TWO_VERSIONS, 124)
    return server


def call(server: ServerProcess, path: str, body: dict) -> tuple[int, dict]:
    response = server.post(path, json=body)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(response.content)), "framed as TF Serving frames it"
    assert "Transfer-Encoding" not in response.headers
    return response.status_code, response.json()


KNOWN_ANSWERS = [
    ("/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}, {"predictions": [3.0, 3.5, 4.0]}),
    ("/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}, {"outputs": [3.0, 3.5, 4.0]}),
    (
        "/v1/models/default:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
        {"results": [[["", 3.0]]]},
    ),
    (
        "/v1/models/default:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
        {"results": [3.0]},
    ),
    (
        "/v1/models/saved_model_half_plus_three:predict",
        {"instances": [1.0, 2.0, 5.0]},
        {"predictions": [3.5, 4.0, 5.5]},
    ),
    (
        "/v1/models/saved_model_half_plus_three:regress",
        {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]},
        {"results": [3.5, 4.0]},
    ),
    (
        f"/v1/models/{TWO_VERSIONS}:predict",
        {"instances": [[1.0, 2.0], [3.0, 4.0]]},
        {"predictions": [[2.5, 3.0], [3.5, 4.0]]},
    ),
    (f"/v1/models/{TWO_VERSIONS}/versions/123:predict", {"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
    (
        f"/v1/models/{TWO_VERSIONS}/labels/Version_Label:predict",
        {"instances": [1.0, 2.0]},
        {"predictions": [2.5, 3.0]},
    ),
    (
        f"/v1/models/{TWO_VERSIONS}/versions/123:predict",
        {"signature_name": "serving_default", "instances": [3.0, 4.0]},
        {"predictions": [3.5, 4.0]},
    ),
    (
        f"/v1/models/{TWO_VERSIONS}/versions/123:predict",
        {"signature_name": "serving_default", "inputs": [3.0, 4.0]},
        {"outputs": [3.5, 4.0]},
    ),
    (
        f"/v1/models/{TWO_VERSIONS}:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
        {"results": [42.0]},
    ),
    (
        f"/v1/models/{TWO_VERSIONS}:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]},
        {"results": [[["", 12.0]]]},
    ),
    (
        f"/v1/models/{TWO_VERSIONS}/labels/Version_Label:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]},
        {"results": [[["", 7.0]]]},
    ),
    (
        "/v1/models/default:predict",
        {"signature_name": "regress_x2_to_y3", "instances": [[1.0]]},
        {"predictions": [[3.5]]},
    ),
]


@pytest.mark.parametrize("path,body,expected", KNOWN_ANSWERS, ids=[f"{p} {b}" for p, b, _ in KNOWN_ANSWERS])
def test_known_answers(tfs, path, body, expected):
    assert call(tfs, path, body) == (200, expected)


def test_unknown_model_message(server):
    assert call(server, "/v1/models/half:predict", {"instances": [1.0, 5.0]}) == (
        404,
        {"error": "Servable not found for request: Latest(half)"},
    )


@pytest.mark.parametrize(
    "path,name,folder,metadata_file",
    [
        (
            "/v1/models/default/metadata",
            "default",
            "saved_model_half_plus_two_cpu",
            "half_plus_two_model_metadata.json",
        ),
        (
            f"/v1/models/{TWO_VERSIONS}/versions/123/metadata",
            TWO_VERSIONS,
            TWO_VERSIONS,
            f"{TWO_VERSIONS}_metadata.json",
        ),
    ],
)
def test_metadata_equals_tf_serving(tfs, tfserving_testdata, path, name, folder, metadata_file):
    expected = {
        "model_spec": {"name": name, "signature_name": "", "version": "123"},
        "metadata": {"signature_def": {"signature_def": SIGNATURE_DEFS_JSON[folder]}},
    }
    if not tfserving_testdata.built:
        assert json.loads(tfserving_testdata.path(metadata_file).read_text()) == expected
    response = tfs.get(path)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_status_of_a_version_is_tf_servings_json(tfs):
    assert tfs.get("/v1/models/default").json() == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_counter_keeps_state_across_requests(tfs):
    def run(signature: str, **inputs) -> float:
        status, body = call(tfs, "/v1/models/counter:predict", {"signature_name": signature, "inputs": inputs})
        assert status == 200, body
        return body["outputs"]

    run("reset_counter")
    assert [run("incr_counter"), run("incr_counter")] == [1.0, 2.0]
    assert run("incr_counter_by", delta=3.0) == 5.0
    assert run("get_counter") == 5.0
    assert run("reset_counter") == 0.0


def test_get_on_predict_path_is_405(server):
    response = server.get("/v1/models/labelled:predict")
    assert response.status_code == 405
    assert "error" in response.json()


def test_list_models(server):
    models = {m["name"]: m for m in server.get("/v1/models").json()["models"]}
    assert "labelled" in models
    assert [v["version"] for v in models["labelled"]["model_version_status"]][:2] == ["2", "1"]


def labelled_answer(server: ServerProcess, label: str) -> float:
    status, body = call(server, f"/v1/models/labelled/labels/{label}:predict", {"instances": [[1.0]]})
    assert status == 200, body
    return body["predictions"][0][0]


def test_labels_reach_their_versions_and_move_without_restart(server, root, half_plus, built):
    assert labelled_answer(server, "stable") == 2.5  # version 1
    assert labelled_answer(server, "canary") == 3.5  # version 2
    assert server.get("/v1/models/labelled/labels/stable/metadata").json()["model_spec"]["version"] == "1"

    replace_config(root, labelled_config(root, stable=2, canary=3, testdata=built))
    wait_for(lambda: labelled_answer(server, "stable") == 3.5, timeout=10)
    # canary now names version 3, which does not exist yet: not found until it serves...
    status, body = call(server, "/v1/models/labelled/labels/canary:predict", {"instances": [[1.0]]})
    assert status in (404, 503) and "labelled" in body["error"]
    install_version(half_plus(4), root / "labelled", 3)
    # ...then it resolves, with no restart and no second config change.
    wait_for(lambda: server.version_states("labelled").get(3) == "AVAILABLE", timeout=10)
    assert labelled_answer(server, "canary") == 4.5


def test_broken_config_is_refused_and_the_old_one_kept(server, root):
    good = (root / "models.config").read_text()
    replace_config(root, "improperly formatted file")
    wait_for(lambda: "Refusing the new model config" in server.log(), timeout=10)
    assert labelled_answer(server, "stable") in (2.5, 3.5)
    replace_config(root, good)
