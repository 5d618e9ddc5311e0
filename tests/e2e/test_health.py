"""``/healthz`` and ``/readyz`` on a real server whose second model is slow to load.

``slow`` is a SavedModel whose load really takes ``LOAD_SECONDS`` longer (a resource initializer that
sleeps, run by ``tf.saved_model.load``; see ``slow_models``), so the server spends that long with
``fast`` serving and ``slow`` LOADING: not ready, yet alive.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import Launcher, ServerProcess, wait_for
from tests.e2e.slow_models import write_slow_loading_model

pytestmark = pytest.mark.e2e

LOAD_SECONDS = 4.0


@pytest.fixture(scope="module")
def root(tmp_path_factory, half_plus) -> Path:
    root = tmp_path_factory.mktemp("health")
    install_version(half_plus(2), root / "fast", 1)
    write_slow_loading_model(root / "slow" / "1", LOAD_SECONDS)
    configs = [
        f'config {{ name: "{n}" base_path: "{root / n}" model_platform: "tensorflow" }}' for n in ("fast", "slow")
    ]
    (root / "models.config").write_text("model_config_list {\n  " + "\n  ".join(configs) + "\n}\n")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root: Path):
    launcher = Launcher(tmp_path_factory)
    yield launcher.start("--model_config_file", str(root / "models.config"), "--version_settle_seconds", "0")
    launcher.close()


def observe(server: ServerProcess) -> tuple[int, dict, Mapping[str, str], dict]:
    """``/readyz``'s answer, and the version states around it (``{}`` where they changed meanwhile)."""
    before = states(server)
    ready = server.get("/readyz")
    alive = server.get("/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "alive"}
    return ready.status_code, ready.json(), ready.headers, before if states(server) == before else {}


def states(server: ServerProcess) -> dict:
    return {name: server.version_states(name).get(1) for name in ("fast", "slow")}


def test_readyz_is_503_while_a_model_loads_and_200_once_all_serve(server: ServerProcess):
    seen: list[tuple[int, dict, Mapping[str, str], dict]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.append(observe(server))
        if seen[-1][0] == 200 and seen[-1][3]:  # NOTE: ready, and no state changed while it was asked
            break
        time.sleep(0.05)

    status, body, headers, states = seen[-1]
    assert status == 200, seen[-3:]
    assert body == {"status": "ready", "models": {"fast": [1], "slow": [1]}}
    assert states == {"fast": "AVAILABLE", "slow": "AVAILABLE"}
    loading = [s for s in seen if s[3] == {"fast": "AVAILABLE", "slow": "LOADING"}]
    assert len(loading) >= 10, "the slow model was seen LOADING too briefly to mean anything"
    for status, body, headers, _ in loading:
        assert status == 503
        assert body == {
            "status": "not ready",
            "models": {"fast": [1], "slow": []},
            "not_ready": {"slow": "version 1 is loading"},
        }
        assert headers["Content-Type"] == "application/json"
        assert headers["Retry-After"] == "1"
    last_loading = max(i for i, s in enumerate(seen) if s[3] == {"fast": "AVAILABLE", "slow": "LOADING"})
    early = [(i, s[0], s[3]) for i, s in enumerate(seen[:-1]) if s[0] != 503]
    # NOTE: a 200 before the last observation is right only where the slow model became AVAILABLE while it
    # was being asked (its states changed meanwhile, so the loop went on), after every LOADING observation.
    assert all(i > last_loading and states == {} for i, _, states in early), f"ready before every model served: {early}"


def test_readyz_follows_a_model_added_to_the_config(server: ServerProcess, root: Path, half_plus):
    wait_for(lambda: server.get("/readyz").status_code == 200, 60)
    config = root / "models.config"
    config.write_text(
        config.read_text().replace("}\n}", f'}}\n  config {{ name: "late" base_path: "{root / "late"}" }}\n}}')
    )
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "late" in server.get("/readyz").json()["models"], 30)
    assert server.get("/readyz").status_code == 503  # NOTE: no version of it on disk yet
    install_version(half_plus(2), root / "late", 1)
    wait_for(lambda: server.get("/readyz").status_code == 200, 60)
    assert server.get("/healthz").status_code == 200


# ---- a model with no version, and models that readiness does not wait for ------------------------------


@pytest.fixture(scope="module")
def late(tmp_path_factory, half_plus) -> Path:
    """``half`` and ``absent`` (no base path yet) configured; ``kept`` in the model repository at start."""
    root = tmp_path_factory.mktemp("late")
    install_version(half_plus(2), root / "half", 1)
    install_version(half_plus(2), root / "repository" / "kept", 1)
    configs = [model_config("half", root / "half"), model_config("absent", root / "absent")]
    (root / "models.config").write_text(model_config_list(configs))
    return root


@pytest.fixture(scope="module")
def late_server(start_server, late: Path) -> ServerProcess:
    config, repository = str(late / "models.config"), str(late / "repository")
    server = start_server(
        "--model_config_file", config, "--model_repository", repository, "--version_settle_seconds", "0"
    )
    server.wait_available("half", 1)
    server.wait_available("kept", 1)
    return server


def not_ready(server: ServerProcess) -> dict:
    response = server.get("/readyz")
    return response.json().get("not_ready", {}) if response.status_code == 503 else {}


def serve_absent(server: ServerProcess, late: Path, half_plus) -> None:
    """Give ``absent`` its version 1 and wait until it serves."""
    shutil.copytree(half_plus(2), late / "absent" / "1", dirs_exist_ok=True)
    server.wait_available("absent", 1)


ABSENT_CALLS = [
    ("POST", "/v1/models/absent:predict", {"instances": [[1.0]]}),
    ("POST", "/v1/models/absent:classify", {"examples": [{"x": 1.0}]}),
    ("POST", "/v1/models/absent:regress", {"examples": [{"x": 1.0}]}),
    ("GET", "/v1/models/absent/metadata", None),
]


def test_a_model_with_no_version_is_a_404_and_readyz_says_why(late_server: ServerProcess, late: Path, half_plus):
    ready = late_server.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
    assert ready.json() == {
        "status": "not ready",
        "models": {"absent": [], "half": [1], "kept": [1]},
        "not_ready": {"absent": f"base path {late / 'absent'} does not exist"},
    }
    for method, path, body in ABSENT_CALLS:
        response = requests.request(method, late_server.url + path, json=body, timeout=30)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"error": "Servable not found for request: Latest(absent)"}
    assert late_server.get("/v1/models/absent").status_code == 404

    (late / "absent").mkdir()
    wait_for(lambda: not_ready(late_server) == {"absent": f"no version found under {late / 'absent'}"}, 30)
    assert late_server.post("/v1/models/absent:predict", json={"instances": [[1.0]]}).status_code == 404

    (late / "absent" / "1").mkdir()  # NOTE: a copy that has begun: the version is on its way, worth a retry
    incomplete = "version 1 is incomplete: none of saved_model.pb, saved_model.pbtxt, model.pb"
    wait_for(lambda: not_ready(late_server) == {"absent": incomplete}, 30)
    response = late_server.post("/v1/models/absent:predict", json={"instances": [[1.0]]})
    assert (response.status_code, response.json()) == (503, {"error": f"Model absent is loading: {incomplete}"})

    serve_absent(late_server, late, half_plus)
    assert late_server.post("/v1/models/absent:predict", json={"instances": [[1.0]]}).json() == {"predictions": [[2.5]]}
    wait_for(lambda: late_server.get("/readyz").status_code == 200, 30)
    assert late_server.get("/readyz").json() == {"status": "ready", "models": {"absent": [1], "half": [1], "kept": [1]}}


def test_a_model_put_in_the_repository_later_never_makes_the_server_unready(
    late_server: ServerProcess, late: Path, half_plus
):
    """The on-disk equivalent of an upload that cannot load (the API would write the same directory)."""
    serve_absent(late_server, late, half_plus)
    wait_for(lambda: late_server.get("/readyz").status_code == 200, 30)
    staging = late / "repository" / ".staging"
    (staging / "1").mkdir(parents=True)
    (staging / "1" / "saved_model.pb").write_bytes(b"labels, not a model")
    staging.rename(late / "repository" / "broken")

    def failed() -> str:
        states = late_server.get("/v1/models/broken")
        status = states.json()["model_version_status"][0]["status"] if states.status_code == 200 else {}
        return status.get("error_message", "")

    answers = []
    while not failed():
        answers.append(late_server.get("/readyz"))
        assert len(answers) < 600, "the broken model's load never failed"
        time.sleep(0.05)
    answers.append(late_server.get("/readyz"))
    assert {r.status_code for r in answers} == {200}
    assert answers[-1].json() == {"status": "ready", "models": {"absent": [1], "half": [1], "kept": [1]}}
    assert "broken" in [m["name"] for m in late_server.get("/v1/models").json()["models"]]
