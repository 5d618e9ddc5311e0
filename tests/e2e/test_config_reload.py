"""SIGHUP reloads the model config in every worker, without restarting them and without a failed request.

One server with two workers, its model list in TF Serving's text format and no polling of it, so that
only SIGHUP can apply a change; it logs JSON with access lines, which the last tests read.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import Launcher, ServerProcess, wait_for

pytestmark = pytest.mark.e2e

WORKERS = 2


def models_config(root: Path, *names: str) -> str:
    return model_config_list([model_config(n, root / n) for n in names])


@pytest.fixture(scope="module")
def root(tmp_path_factory, half_plus) -> Path:
    root = tmp_path_factory.mktemp("reload")
    install_version(half_plus(2), root / "first", 1)
    install_version(half_plus(3), root / "second", 1)
    (root / "models.config").write_text(models_config(root, "first"))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root: Path):
    launcher = Launcher(tmp_path_factory)
    server = launcher.start(
        "--model_config_file",
        str(root / "models.config"),
        "--workers",
        str(WORKERS),
        "--version_settle_seconds",
        "0",
        "--log_format",
        "json",
        "--access_log",
        "-",
    )
    wait_for(lambda: count(server, "Loaded servable {name: first version: 1}") == WORKERS, 60)
    yield server
    launcher.close()


def predict(server: ServerProcess, model: str) -> requests.Response:
    return server.post(f"/v1/models/{model}:predict", json={"instances": [[1.0]]})


def answers(server: ServerProcess, model: str, status: int = 200) -> bool:
    """Several answers in a row have ``status`` (each reaches either worker)."""
    return all(predict(server, model).status_code == status for _ in range(6 * WORKERS))


def log_lines(server: ServerProcess) -> list[dict]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def count(server: ServerProcess, text: str) -> int:
    return sum(text in entry["message"] for entry in log_lines(server))


class Client(threading.Thread):
    """Predicts on ``model`` without pause until stopped, counting the answers by status."""

    def __init__(self, server: ServerProcess, model: str) -> None:
        super().__init__()
        self.server, self.model = server, model
        self.answers: Counter = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                response = predict(self.server, self.model)
                ok = response.status_code == 200 and response.json() == {"predictions": [[2.5]]}
                self.answers["ok" if ok else f"{response.status_code} {response.text}"] += 1
            except requests.RequestException as exc:
                self.answers[repr(exc)] += 1

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join()


def test_sighup_adds_a_model_while_the_first_answers_every_request(server: ServerProcess, root: Path):
    booted = count(server, "Booting worker")
    with Client(server, "first") as client:
        wait_for(lambda: client.answers["ok"] >= 10, 30)
        (root / "models.config").write_text(models_config(root, "first", "second"))
        server.process.send_signal(signal.SIGHUP)
        # NOTE: from the log: which worker answers a request is the kernel's choice.
        wait_for(lambda: count(server, "Loaded servable {name: second version: 1}") == WORKERS, 60)
        wait_for(lambda: client.answers["ok"] >= 40, 30)

    assert set(client.answers) == {"ok"}, client.answers
    assert predict(server, "second").json() == {"predictions": [[3.5]]}
    assert count(server, "Booting worker") == booted == WORKERS, "SIGHUP must not replace the workers"
    assert count(server, "SIGHUP: reloading the model config") == 1, "one reload, by the coordinator, for all"
    assert count(server, "Loading servable {name: first version: 1}") == WORKERS, "first must not reload"


def test_a_config_that_does_not_parse_is_refused_and_the_old_one_kept(server: ServerProcess, root: Path):
    refused = count(server, "Refusing the new model config")
    with Client(server, "first") as client:
        (root / "models.config").write_text("model_config_list { config { name: ")
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: count(server, "Refusing the new model config") == refused + 1, 30)
        wait_for(lambda: client.answers["ok"] >= 10, 30)

    assert set(client.answers) == {"ok"}, client.answers
    assert answers(server, "second")
    assert server.process.poll() is None


def test_an_empty_config_file_takes_no_action(server: ServerProcess, root: Path):
    """An editor that truncates the file before writing it must not unload every model (TF Serving's rule)."""
    kept = (root / "models.config").read_text()
    with Client(server, "first") as client:
        (root / "models.config").write_text("")
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: count(server, "Taking no action for empty config") == 1, 30)
        wait_for(lambda: client.answers["ok"] >= 10, 30)

    assert set(client.answers) == {"ok"}, client.answers
    assert answers(server, "second")
    (root / "models.config").write_text(kept)


def test_sighup_unloads_a_removed_model_and_keeps_the_other(server: ServerProcess, root: Path):
    (root / "models.config").write_text(models_config(root, "second"))
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: count(server, "Unloaded servable {name: first version: 1}") == WORKERS, 30)
    assert answers(server, "first", 404)
    assert answers(server, "second")
    assert server.get("/readyz").json() == {"status": "ready", "models": {"second": [1]}}


def test_json_log_lines_name_the_model_and_version_they_concern(server: ServerProcess):
    entries = log_lines(server)
    assert {"time", "level", "logger", "pid", "message"} <= set(entries[0])
    loads = [e for e in entries if e["message"].startswith("Loaded servable {name: second version: 1}")]
    assert len(loads) == WORKERS
    assert all(e["model"] == "second" and e["version"] == 1 and e["logger"] == "tfaas.manager" for e in loads)
    unloads = [e for e in entries if e["message"].startswith("Unloaded servable {name: first")]
    assert unloads and all((e["model"], e["version"]) == ("first", 1) for e in unloads)
    assert any(e["logger"] == "gunicorn.error" for e in entries), "gunicorn's own lines share the format"
    other = [line for line in server.log().splitlines() if not line.startswith("{")]
    # NOTE: only TensorFlow's C++ runtime writes to stderr past Python's logging.
    assert all(line[:1] in "IWEF" or line.startswith(("WARNING: All log messages", "To enable")) for line in other), (
        other
    )


def test_access_lines_name_each_request_in_json(server: ServerProcess):
    """Predict is served by the ASGI front, status by the Flask app behind it: both write the line."""
    predicted = server.post("/v1/models/second:predict?x=1", json={"instances": [[1.0]]})
    assert predicted.status_code == 200 and predicted.headers["Content-Length"] == str(len(predicted.content))
    assert server.get("/v1/models/nosuch", headers={"User-Agent": "probe/1"}).status_code == 404

    def line(path: str) -> dict | None:
        found = [e for e in log_lines(server) if e["logger"] == "gunicorn.access" and e.get("path") == path]
        return found[-1] if found else None

    predicted, missing = (
        wait_for(lambda: line("/v1/models/second:predict"), 10),
        wait_for(lambda: line("/v1/models/nosuch"), 10),
    )
    assert predicted["message"].startswith('127.0.0.1 "POST /v1/models/second:predict?x=1 HTTP/1.1" 200 ')
    assert (predicted["method"], predicted["status"], predicted["query"], predicted["model"]) == (
        "POST",
        200,
        "x=1",
        "second",
    )
    assert predicted["bytes"] == len(b'{"predictions":[[3.5]]}') and predicted["duration_s"] > 0
    assert (missing["method"], missing["status"], missing["user_agent"]) == ("GET", 404, "probe/1")


def test_a_worker_that_replaces_a_dead_one_serves_the_reloaded_list(server: ServerProcess):
    # NOTE: last: it adds a worker to the log. The list in force is "second" only (see above).
    booted = [e for e in log_lines(server) if e["message"].startswith("Booting worker")]
    os.kill(booted[0]["pid"], signal.SIGKILL)
    wait_for(lambda: count(server, "Booting worker") == WORKERS + 1, 30)
    (new,) = [e["pid"] for e in log_lines(server) if e["message"].startswith("Booting worker")][WORKERS:]

    def said(text: str) -> bool:
        return any(e["pid"] == new and e["message"].startswith(text) for e in log_lines(server))

    wait_for(lambda: said("Loaded servable {name: second version: 1}"), 60)
    assert not said("Loading servable {name: first"), "the new worker started from the list read at start"
