"""The servable lifecycle end to end: a real gunicorn server, real SavedModels, a real watched folder."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest
import requests
import yaml

from tests.e2e.conftest import install_version
from tests.e2e.server import ServerProcess, wait_for
from tests.tfserving_models import SOURCES

T = TypeVar("T")

pytestmark = pytest.mark.e2e

MODELS = ("swap", "partial", "broken", *(f"legacy_{source}" for source in SOURCES), "requests")


@pytest.fixture(scope="module")
def models_root(tmp_path_factory, half_plus) -> Path:
    """One base path per test model, each starting with version 1 = ``0.5 * x + 2``."""
    root = tmp_path_factory.mktemp("served")
    for name in MODELS:
        install_version(half_plus(2), root / name, 1)
    return root


@pytest.fixture(scope="module")
def server(start_server, models_root: Path, tfserving_testdata_sources) -> ServerProcess:
    """The server, with default swap settings and quick load retries (for the retry test).

    It also serves TF Serving's TF1 and TF2 exports of half_plus_two from each testdata source, as
    ``tf1_<source>`` and ``tf2_<source>``.
    """
    config = models_root / "tfaas.yaml"
    models = [{"name": m, "base_path": str(models_root / m)} for m in MODELS]
    for source, testdata in tfserving_testdata_sources.items():
        models += [
            {"name": f"tf1_{source}", "base_path": str(testdata.path("saved_model_half_plus_two_cpu"))},
            {"name": f"tf2_{source}", "base_path": str(testdata.path("saved_model_half_plus_two_tf2_cpu"))},
        ]
    config.write_text(yaml.safe_dump({"models": models}))
    retries = ("--load_retry_initial_seconds", "0.5", "--load_retry_max_seconds", "1")
    # NOTE: the default worker count (one per core): what serves is what every worker serves
    return start_server("--config", str(config), *retries, env={"TFAAS_WORKERS": "0"})


def predict(server: ServerProcess, model: str, x: float = 1.0, session=requests) -> requests.Response:
    return session.post(f"{server.url}/v1/models/{model}:predict", json={"instances": [[x]]}, timeout=30)


def answer(server: ServerProcess, model: str) -> float:
    response = predict(server, model)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0][0]


def load_attempts(server: ServerProcess, model: str, version: int) -> int:
    return server.log().count(f"Loading servable {{name: {model} version: {version}}}")


def test_port_answers_while_models_load_and_loading_model_is_503(server):
    first = predict(server, "requests")
    assert first.status_code == 503, first.text
    assert "loading" in first.json()["error"]
    for model in MODELS:
        server.wait_available(model, 1)
    assert answer(server, "requests") == 2.5


class Client(threading.Thread):
    """Sends predict requests without pause until stopped; records every answer or failure.

    ``fresh``: a new connection per request (else one keep-alive connection, which stays with one worker).
    """

    def __init__(self, server: ServerProcess, model: str, fresh: bool = False) -> None:
        super().__init__(daemon=True)
        self.server, self.model, self.fresh = server, model, fresh
        self.answers: list[tuple[float, float]] = []  # (monotonic time the request was sent, prediction)
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self._halt.is_set():
                sent = time.monotonic()
                try:
                    response = predict(self.server, self.model, session=requests if self.fresh else session)
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code == 200:
                    self.answers.append((sent, response.json()["predictions"][0][0]))
                else:
                    self.failures.append(f"{response.status_code} {response.text}")

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def _asked(call: Callable[[], T]) -> T | None:
    """``call()``, a poll of the test's own; None when its connection was refused or reset.

    NOTE: each poll opens a new connection, and a worker without CAP_NET_ADMIN resets one that completes as its
    listener closes (the limit ``rotation.warn_unfiltered`` logs); the clients under test keep theirs.
    """
    try:
        return call()
    except requests.ConnectionError:
        return None


def assert_hot_swap_fails_no_request(server: ServerProcess, base: Path, v2: Path, clients: list[Client]) -> None:
    """Copy ``v2`` (``0.5 * x + 3``) in as version 2 of the model at ``base`` (version 1: ``0.5 * x + 2``)
    while ``clients`` send predicts, then remove it again.

    No request may fail; once the server has said version 1 is gone and answered with version 2, every
    request sent until version 2 is removed gets version 2's answer.
    """
    model = base.name
    server.wait_available(model, 1)
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        install_version(v2, base, 2)
        copied = time.monotonic()
        wait_for(
            lambda: (
                (states := _asked(lambda: server.version_states(model))) is not None
                and states.get(2) == "AVAILABLE"
                and states.get(1) in (None, "END")
            ),
            timeout=10,
        )
        swapped = time.monotonic() - copied
        # NOTE: the settle time, then each worker in its window, one after the other
        limit = 1.0 + 2.0 * len(server.booted_workers())
        assert swapped < limit, f"version 2 took {swapped:.2f} s to replace version 1 (limit {limit:g} s)"
        wait_for(lambda: _asked(lambda: answer(server, model)) == 3.5, timeout=5)
        swapped_at = time.monotonic()
        time.sleep(1.0)  # NOTE: a second of load on version 2 alone

        removing = time.monotonic()
        shutil.rmtree(base / "2")
        wait_for(lambda: (_asked(lambda: server.version_states(model)) or {}).get(1) == "AVAILABLE", timeout=10)
        wait_for(lambda: _asked(lambda: answer(server, model)) == 2.5, timeout=5)
    finally:
        for client in clients:
            client.stop()
    answers = [a for c in clients for a in c.answers]
    assert [f for c in clients for f in c.failures] == []
    assert {value for _, value in answers} == {2.5, 3.5}
    assert len(answers) > 20
    stale = [value for sent, value in answers if swapped_at < sent < removing and value != 3.5]
    assert stale == [], f"{len(stale)} answers from version 1 after the server said it was gone"
    print(f"swap: copy finished -> version 2 AVAILABLE, version 1 gone in {swapped:.2f} s")


def test_hot_swap_under_load_fails_no_request(server, models_root, half_plus):
    clients = [Client(server, "swap") for _ in range(2)]
    assert_hot_swap_fails_no_request(server, models_root / "swap", half_plus(3), clients)


def test_half_copied_version_is_loaded_once_complete(server, models_root, half_plus):
    base = models_root / "partial"
    server.wait_available("partial", 1)
    source, target = half_plus(3), base / "2"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("saved_model.pb"))
    time.sleep(3)  # several polls and settle periods: a half copy must stay unloaded
    assert server.version_states("partial") == {1: "AVAILABLE"}
    shutil.copy2(source / "saved_model.pb", target / "saved_model.pb")
    server.wait_available("partial", 2, timeout=10)
    assert answer(server, "partial") == 3.5
    assert load_attempts(server, "partial", 2) == len(server.booted_workers())  # NOTE: once in each worker


def _assert_broken_version_fails_and_old_serves(server: ServerProcess, model: str) -> None:
    def failed() -> dict | None:
        response = server.get(f"/v1/models/{model}/versions/2")
        if response.status_code != 200:
            return None  # not seen yet: the directory is still settling
        status = response.json()["model_version_status"][0]
        return status if status["state"] == "END" and status["status"]["error_message"] else None

    status = wait_for(failed, timeout=15)
    assert status["status"]["error_code"] != "OK"
    assert server.version_states(model)[1] == "AVAILABLE"
    assert answer(server, model) == 2.5
    workers = len(server.booted_workers())
    wait_for(lambda: load_attempts(server, model, 2) >= 2 * workers, timeout=15)  # it is retried
    assert answer(server, model) == 2.5


def test_random_bytes_version_ends_with_error_and_is_retried(server, models_root):
    server.wait_available("broken", 1)
    target = models_root / "broken" / "2"
    target.mkdir()
    (target / "saved_model.pb").write_bytes(os.urandom(512))
    _assert_broken_version_fails_and_old_serves(server, "broken")


def test_tf_serving_bad_half_plus_two_fails_without_harm(server, models_root, tfserving_testdata):
    model = f"legacy_{tfserving_testdata.source}"
    server.wait_available(model, 1)
    shutil.copytree(tfserving_testdata.path("bad_half_plus_two") / "00000123", models_root / model / "2")
    _assert_broken_version_fails_and_old_serves(server, model)


BAD_REQUESTS = [
    ("malformed JSON", "/v1/models/requests:predict", b'{"instances": [[1.0]', 400),
    ("empty body", "/v1/models/requests:predict", b"", 400),
    ("not an object", "/v1/models/requests:predict", b"[1, 2]", 400),
    ("wrong shape", "/v1/models/requests:predict", b'{"instances": [[1.0, 2.0]]}', 400),
    ("ragged rows", "/v1/models/requests:predict", b'{"instances": [[1.0], [1.0, 2.0]]}', 400),
    ("strings for floats", "/v1/models/requests:predict", b'{"instances": [["a"]]}', 400),
    ("no instances or inputs", "/v1/models/requests:predict", b'{"foo": 1}', 400),
    ("both formats", "/v1/models/requests:predict", b'{"instances": [[1.0]], "inputs": [[1.0]]}', 400),
    (
        "unknown signature",
        "/v1/models/requests:predict",
        b'{"signature_name": "nope", "instances": [[1.0]]}',
        400,
    ),
    (
        "signature not a string",
        "/v1/models/requests:predict",
        b'{"signature_name": 5, "instances": [[1.0]]}',
        400,
    ),
    ("unknown model", "/v1/models/nope:predict", b'{"instances": [[1.0]]}', 404),
    ("unknown version", "/v1/models/requests/versions/9:predict", b'{"instances": [[1.0]]}', 404),
    ("unknown label", "/v1/models/requests/labels/x:predict", b'{"instances": [[1.0]]}', 400),
    ("malformed path", "/v1/models/requests:nonsense", b"{}", 400),
]


@pytest.mark.parametrize("path,body,status", [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_a_json_4xx_and_server_stays_up(server, path, body, status):
    server.wait_available("requests", 1)
    response = server.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert answer(server, "requests") == 2.5
    assert server.process.poll() is None


def test_status_and_formats(server):
    server.wait_available("requests", 1)
    status = server.get("/v1/models/requests/versions/1").json()
    assert status == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    unknown = server.get("/v1/models/nope")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Could not find any versions of model nope"}
    assert server.get("/v1/models/requests/versions/7").status_code == 404
    columnar = server.post("/v1/models/requests/versions/1:predict", json={"inputs": {"x": [[1.0], [3.0]]}})
    assert columnar.json() == {"outputs": [[2.5], [3.5]]}
    rows = server.post("/v1/models/requests:predict", json={"instances": [{"x": [1.0]}, {"x": [3.0]}]})
    assert rows.json() == {"predictions": [[2.5], [3.5]]}


@pytest.mark.parametrize(
    "model,instances,predictions", [("tf1", [[2.0], [3.0]], [[3.0], [3.5]]), ("tf2", [2.0], [3.0])]
)
def test_tf_serving_tf1_and_tf2_exports_both_serve(server, tfserving_testdata, model, instances, predictions):
    model = f"{model}_{tfserving_testdata.source}"
    server.wait_available(model, 123)
    response = server.post(f"/v1/models/{model}:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": predictions}
