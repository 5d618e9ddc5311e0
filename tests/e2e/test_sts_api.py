"""Simple TensorFlow Serving's API end to end: the curl commands of its documents (seed 003) run with real
curl, its generated clients run as they are, image forms, basic auth on and off, CORS, STS's flags and its
JSON model config file, against real servers."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.e2e.server import ServerProcess, wait_for
from tests.e2e.sts_models import (
    template_expected,
    write_image_model,
    write_op_library_model,
    write_template_model,
)
from tests.servables.tfaas_models import BLUE, RED, jpeg_bytes, png_bytes

pytestmark = pytest.mark.e2e

SEED_DATA = {"keys": [[11.0], [2.0]], "features": [[1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1]]}
"""The ``data`` of STS's documented curl commands (seed 003; the template application model's inputs)."""

SEED_ANSWER = template_expected([[11], [2]], SEED_DATA["features"])
OP_SOURCE = Path(__file__).with_name("ops") / "times_two.cc"
PASSWORD = "s3cret-Pw"


@pytest.fixture(scope="module")
def models(tmp_path_factory, multi_model: Path) -> dict[str, Path]:
    """Base paths: ``template``, ``images``, ``doubler`` (a custom op's) with version 1, and ``multi``."""
    root = tmp_path_factory.mktemp("sts_models")
    write_template_model(root / "template" / "1")
    write_image_model(root / "images" / "1")
    return {"template": root / "template", "images": root / "images", "multi": multi_model}


@pytest.fixture(scope="module")
def op_library(tmp_path_factory) -> Path:
    """A directory holding a TensorFlow op library built here, ``TfaasTimesTwo`` (``y = 2 * x``)."""
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("ops")
    flags = tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()
    subprocess.run(
        ["g++", "-std=c++17", "-shared", "-fPIC", "-O1", str(OP_SOURCE), "-o", str(directory / "times_two.so"), *flags],
        check=True,
        capture_output=True,
    )
    return directory


@pytest.fixture(scope="module")
def doubler(tmp_path_factory, op_library: Path) -> Path:
    """The base path of ``doubler``: ``x`` float [-1] to ``y``, through the op library's op."""
    base = tmp_path_factory.mktemp("doubler") / "doubler"
    write_op_library_model(base / "1", op_library / "times_two.so")
    return base


def sts_config(path: Path, models: dict[str, Path]) -> Path:
    """STS's JSON model config file serving ``models`` (name: base path)."""
    entries = [{"name": name, "base_path": str(base), "platform": "tensorflow"} for name, base in models.items()]
    path.write_text(json.dumps({"model_config_list": entries}, indent=2))
    return path


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, models: dict[str, Path], doubler: Path) -> ServerProcess:
    """Auth off, CORS on; STS's JSON model config: ``default`` (the template model), ``images``, ``multi``,
    and ``doubler``, which cannot load here (no op library)."""
    served = {"default": models["template"], "images": models["images"], "multi": models["multi"], "doubler": doubler}
    config = sts_config(tmp_path_factory.mktemp("sts_config") / "models.json", served)
    started = start_server("--model_config_file", str(config), "--enable_cors")
    for name in ("default", "images", "multi"):
        started.wait_available(name, 1, timeout=120)
    return started


@pytest.fixture(scope="module")
def auth_server(start_server, tmp_path_factory, models: dict[str, Path], doubler: Path, op_library) -> ServerProcess:
    """STS's flags: basic auth on (admin and ``PASSWORD``), the op library directory loaded; ``default`` (the
    template model) and ``doubler``."""
    config = sts_config(
        tmp_path_factory.mktemp("sts_auth") / "models.json", {"default": models["template"], "doubler": doubler}
    )
    started = start_server(
        "--model_config_file",
        str(config),
        "--enable_auth=True",
        "--auth_username=admin",
        f"--auth_password={PASSWORD}",
        f"--custom_op_paths={op_library}",
    )
    wait_for(lambda: _available(started, "default") and _available(started, "doubler"), timeout=120)
    return started


@pytest.fixture(scope="module")
def image_server(start_server, models: dict[str, Path]) -> ServerProcess:
    """STS's single-model flags, its image model as ``default``, with ``--reload_models`` and ``--session_config``."""
    session_config = {
        "intra_op_parallelism_threads": 1,
        "inter_op_parallelism_threads": 1,
        "allow_growth": True,
        "per_process_gpu_memory_fraction": 0.5,
    }
    started = start_server(
        "--model_base_path",
        str(models["images"]),
        "--reload_models=true",
        f"--session_config={json.dumps(session_config)}",
    )
    started.wait_available("default", 1, timeout=120)
    return started


def _available(server: ServerProcess, model: str) -> bool:
    response = server.get(f"/v1/models/{model}", auth=("admin", PASSWORD))
    return response.status_code == 200 and response.json()["model_version_status"][0]["state"] == "AVAILABLE"


def curl(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, str], bytes]:
    """Run ``curl -sS -i *args`` (in ``cwd``): the status, headers (lower-case names) and body of its answer."""
    output = subprocess.run(["curl", "-sS", "-i", *args], check=True, capture_output=True, timeout=60, cwd=cwd).stdout
    head, _, body = output.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def json_answer(status: int, headers: dict[str, str], body: bytes) -> dict:
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body.endswith(b"}\n")  # NOTE: as Flask's jsonify ends a body
    return json.loads(body)


def assert_seed_answer(answer: dict) -> None:
    """The template model's answer to the seed's data, in STS's format: every output, ints as ints."""
    assert list(answer) == ["keys", "prediction", "softmax"]
    assert answer["keys"] == [[11], [2]] and all(type(row[0]) is int for row in answer["keys"])
    assert answer["prediction"] == SEED_ANSWER["prediction"] and all(type(p) is int for p in answer["prediction"])
    np.testing.assert_allclose(np.asarray(answer["softmax"], np.float32), SEED_ANSWER["softmax"], rtol=1e-6)
    assert all(type(value) is float for row in answer["softmax"] for value in row)


# ---- the seed's curl commands and clients ----------------------------------------------------------


def test_the_seeds_json_inference_curl_command(server):
    status, headers, body = curl(
        "-H", "Content-Type: application/json", "-X", "POST", "-d", json.dumps({"data": SEED_DATA}), server.url
    )
    answer = json_answer(status, headers, body)
    assert_seed_answer(answer)
    assert body.startswith(b'{"keys":[[11],[2]],"prediction":')


def test_the_references_full_request_names_model_version_and_signature(server):
    request = {"model_name": "default", "model_version": 1, "signature_name": "serving_default", "data": SEED_DATA}
    assert_seed_answer(
        json_answer(*curl("-H", "Content-Type: application/json", "-d", json.dumps(request), server.url))
    )
    request["model_version"] = "1"  # NOTE: STS looks the version up as a string
    assert_seed_answer(server.post("/", json=request).json())


def test_the_seeds_gen_json_curl_command_gives_a_body_post_accepts_as_is(server):
    status, headers, body = curl(f"http://localhost:{server.port}/v1/models/default/gen_json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"model_name": "default", "data": {"features": [[1.0] * 9] * 2, "keys": [[1], [1]]}}
    answer = json_answer(*curl("-H", "Content-Type: application/json", "-d", body.decode(), server.url))
    assert (
        answer["keys"] == [[1], [1]]
        and answer["prediction"] == template_expected([[1], [1]], [[1.0] * 9] * 2)["prediction"]
    )


def test_gen_json_fills_every_dtype_and_post_accepts_it(server):
    body = server.get("/v1/models/multi/gen_json").json()
    assert body == {
        "model_name": "multi",
        "data": {"a": [[1.0, 1.0], [1.0, 1.0]], "b": [1, 1], "flag": [True, True], "s": ["", ""]},
    }
    response = server.post("/", json=body)
    assert response.status_code == 200, response.text
    # NOTE: string outputs, which STS cannot write (a 500 on Python 3): text, base64 for an alias in _bytes.
    assert response.json() == {
        "echo_bytes": [{"b64": ""}, {"b64": ""}],
        "not_flag": [False, False],
        "sum": [3.0, 3.0],
        "twice": [2, 2],
        "upper": ["", ""],
    }


def test_the_seeds_gen_client_python_runs_as_is(server, tmp_path):
    status, headers, source = curl(f"http://localhost:{server.port}/v1/models/default/gen_client?language=python")
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
    (tmp_path / "client.py").write_bytes(source)
    printed = subprocess.run([sys.executable, "client.py"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert printed.stdout == server.post("/", data=server.get("/v1/models/default/gen_json").content).content
    assert json.loads(printed.stdout)["keys"] == [[1], [1]]


def test_gen_client_in_bash_is_the_default_and_runs_as_is(server, tmp_path):
    source = server.get("/v1/models/multi/gen_client").content
    assert source.startswith(b"#!/usr/bin/env bash\n")
    (tmp_path / "client.sh").write_bytes(source)
    printed = subprocess.run(["bash", "client.sh"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert json.loads(printed.stdout)["twice"] == [2, 2]


def test_gen_client_golang_and_javascript_send_the_example_to_this_server(server):
    example = server.get("/v1/models/default/gen_json").text
    for language in ("golang", "javascript"):
        response = server.get("/v1/models/default/gen_client", params={"language": language})
        assert response.status_code == 200 and f'"http://127.0.0.1:{server.port}/"' in response.text
        assert json.dumps(example, ensure_ascii=False) in response.text or example in response.text


def test_gen_client_of_another_language_or_model_is_a_4xx(server):
    response = server.get("/v1/models/default/gen_client", params={"language": "cobol"})
    assert response.status_code == 400 and "cobol" in response.json()["error"]
    assert server.get("/v1/models/nope/gen_json").status_code == 404
    assert server.get("/v1/models/nope/gen_client").status_code == 404


def test_the_seeds_image_curl_command_against_the_image_model_as_default(image_server, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mew.jpg").write_bytes(jpeg_bytes(BLUE, (6, 6)))
    status, headers, body = curl(
        "-X",
        "POST",
        "-F",
        "image=@./images/mew.jpg",
        "-F",
        "model_version=1",
        f"127.0.0.1:{image_server.port}",
        cwd=tmp_path,
    )
    answer = json_answer(status, headers, body)
    assert answer["height"] == [6]
    np.testing.assert_allclose(answer["color"], [BLUE], atol=2)


def test_the_seeds_python_image_client_sends_urlsafe_base64_in_json(image_server):
    image_string = base64.urlsafe_b64encode(png_bytes(RED, (3, 3))).decode()
    result = requests.post(image_server.url, json={"model_name": "default", "data": {"images": [image_string]}})
    assert result.json() == {"color": [[255.0, 0.0, 0.0]], "height": [3]}


def test_a_form_names_its_model_and_sends_several_images_in_order(server, tmp_path):
    (tmp_path / "red.png").write_bytes(png_bytes(RED, (2, 2)))
    (tmp_path / "blue.png").write_bytes(png_bytes(BLUE, (5, 5)))
    answer = json_answer(
        *curl(
            "-F",
            "images=@red.png",
            "-F",
            "images=@blue.png",
            "-F",
            "model_name=images",
            "-F",
            "signature_name=serving_default",
            server.url,
            cwd=tmp_path,
        )
    )
    assert answer == {"color": [[255.0, 0.0, 0.0], [0.0, 0.0, 255.0]], "height": [2, 5]}


def test_stss_flags_are_applied(image_server):
    log = image_server.log()
    assert "with 1 intra-op and 1 inter-op threads" in log
    assert "allow_growth, per_process_gpu_memory_fraction not applied" in log


# ---- errors ------------------------------------------------------------------------------------------


ERRORS = [
    ("[1, 2]", "Invalid json data: b'[1, 2]'"),
    ("{", "Invalid json data: b'{'"),
    ('{"model_name": "default"}', "Inference with empty data, please check the request JSON"),
    (
        '{"model_name": "nope", "data": {}}',
        "Invalid model name: nope, available models: dict_keys(['default', 'doubler', 'images', 'multi'])",
    ),
    (
        '{"data": {"features": [[1]]}}',
        "Input op name 'keys' does not exist in input data: {'features': [[1]]}, please check the request JSON",
    ),
    (
        '{"signature_name": "nope", "data": {}}',
        "Fail to request the signature name: nope, please check the request JSON",
    ),
    ('{"model_version": "x", "data": {}}', "Invalid model version: 'x', a version is a decimal number"),
    ('{"model_version": 7, "data": {}}', "Servable not found for request: Specific(default, 7)"),
    ('{"data": {"keys": [[1]], "features": [["a"]]}}', "Input 'features' takes numbers (DT_FLOAT), not \"a\""),
    ('{"data": {"keys": [[1], [2, 3]], "features": []}}', "Input 'keys' is not a tensor"),
    ('{"data": {"keys": [[1e20]], "features": [[1]]}}', "Input 'keys' holds a number out of the range of int32"),
]


@pytest.mark.parametrize("body,message", ERRORS, ids=[message[:40] for _, message in ERRORS])
def test_a_bad_request_is_a_400_with_stss_words_where_it_has_them(server, body, message):
    response = server.post("/", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"].startswith(message)


def test_what_sts_answers_with_a_500_is_a_400(server):
    wrong_shape = {"data": {"keys": [[1]], "features": [[1, 2]]}}
    response = server.post("/", json=wrong_shape)
    assert response.status_code == 400 and "features" in response.json()["error"]
    form_without_image = server.post("/", files={"other": ("a.png", b"x")})
    assert form_without_image.status_code == 400
    assert form_without_image.json()["error"] == "Invalid form-data: the form has no 'image' or 'images' file"
    not_an_image = server.post("/", files={"image": ("a.png", b"not an image")}, data={"model_name": "images"})
    assert not_an_image.status_code == 400


def test_a_body_with_no_content_type_is_json_and_another_type_refused(server):
    untyped = server.post("/", data=json.dumps({"data": SEED_DATA}))
    assert "Content-Type" not in untyped.request.headers
    assert_seed_answer(untyped.json())
    refused = server.post("/", data="data", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 400 and refused.json() == {"error": "Error, unsupported content type"}


def test_a_model_that_needs_an_op_library_not_loaded_does_not_serve(server):
    status = wait_for(
        lambda: server.get("/v1/models/doubler").json()["model_version_status"][0]["status"]["error_message"], 60
    )
    assert "TfaasTimesTwo" in status


# ---- the rest of STS's routes -----------------------------------------------------------------------


def test_health_answers_as_stss(server):
    response = server.get("/health")
    assert response.status_code == 200 and response.text == "healthy"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_tf_servings_answers_win_on_the_paths_both_have(server):
    assert server.get("/v1/models/default").json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert "default" in [model["name"] for model in server.get("/v1/models").json()["models"]]


def test_get_slash_is_the_dashboard_and_other_methods_a_405(server):
    summary = server.get("/").json()
    assert "default" in [model["name"] for model in summary["models"]]
    page = server.get("/", headers={"Accept": "text/html"})
    assert page.headers["Content-Type"].startswith("text/html") and 'data-model="default"' in page.text
    response = requests.put(server.url + "/", timeout=30)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


# ---- CORS --------------------------------------------------------------------------------------------


def test_cors_allows_any_origin_on_every_answer_errors_included(server):
    for response in (server.post("/", json={"data": SEED_DATA}), server.get("/v1/models/nope"), server.get("/healthz")):
        assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/", "/v1/models/default:predict"])
def test_cors_preflight_is_answered(server, path):
    status, headers, body = curl(
        "-X",
        "OPTIONS",
        "-H",
        "Origin: http://app.example",
        "-H",
        "Access-Control-Request-Method: POST",
        "-H",
        "Access-Control-Request-Headers: content-type, authorization",
        server.url + path,
    )
    assert status == 200 and body == b""
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"].split(", ")
    assert headers["access-control-allow-headers"] == "content-type, authorization"


def test_without_cors_no_origin_is_allowed(auth_server):
    response = auth_server.get("/healthz", headers={"Origin": "http://app.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


# ---- basic auth and the op library --------------------------------------------------------------------


def test_the_seeds_auth_curl_command(auth_server):
    status, headers, body = curl(
        "-u",
        f"admin:{PASSWORD}",
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        "-d",
        json.dumps({"data": SEED_DATA}),
        f"http://127.0.0.1:{auth_server.port}",
    )
    assert_seed_answer(json_answer(status, headers, body))


@pytest.mark.parametrize(
    "method,path", [("POST", "/"), ("GET", "/v1/models/default"), ("GET", "/models"), ("GET", "/metrics"), ("GET", "/")]
)
@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("root", PASSWORD)], ids=["none", "password", "user"])
def test_without_the_right_credentials_every_route_is_a_401(auth_server, method, path, auth):
    response = requests.request(method, auth_server.url + path, auth=auth, json={"data": SEED_DATA}, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tfaas", charset="UTF-8"'
    assert response.json() == {"error": "Need basic auth to request the resources"}


def test_with_the_right_credentials_every_api_answers(auth_server):
    auth = ("admin", PASSWORD)
    assert auth_server.get("/v1/models/default", auth=auth).status_code == 200
    assert auth_server.get("/v1/models/default/gen_json", auth=auth).status_code == 200
    assert auth_server.get("/models", auth=auth).status_code == 200
    assert (
        auth_server.post(
            "/v1/models/default:predict", auth=auth, json={"inputs": {"keys": [[1]], "features": [[1.0] * 9]}}
        ).status_code
        == 200
    )


def test_health_probes_need_no_credentials(auth_server):
    assert auth_server.get("/health").text == "healthy"
    assert auth_server.get("/healthz").status_code == 200
    assert auth_server.get("/readyz").status_code == 200


def test_the_password_is_never_logged(auth_server):
    auth_server.get("/", auth=("admin", "wrong"))
    log = auth_server.log()
    assert PASSWORD not in log and base64.b64encode(f"admin:{PASSWORD}".encode()).decode() not in log


def test_an_op_library_in_custom_op_paths_serves_the_models_that_need_it(auth_server, op_library):
    answer = auth_server.post("/", auth=("admin", PASSWORD), json={"model_name": "doubler", "data": {"x": [1.5, -2]}})
    assert answer.json() == {"y": [3.0, -4.0]}
    assert f"Loaded the op library {op_library / 'times_two.so'}" in auth_server.log()


def test_an_op_library_tensorflow_refuses_fails_the_start_saying_why(start_server, tmp_path, models):
    (tmp_path / "broken.so").write_text("not a shared library\n")
    failed = start_server("--model_base_path", str(models["template"]), "--custom_op_paths", str(tmp_path), wait=False)
    failed.process.wait(timeout=180)
    assert failed.process.returncode != 0
    assert f"custom_op_paths: cannot load the op library {tmp_path / 'broken.so'}" in failed.log()
