"""``/healthz`` and ``/readyz`` on a real server whose second model is slow to load.

``slow`` is a SavedModel whose load really takes ``LOAD_SECONDS`` longer (a resource initializer that
sleeps, run by ``tf.saved_model.load``; see ``slow_models``), so the server spends that long with
``fast`` serving and ``slow`` LOADING: not ready, yet alive.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.e2e.conftest import install_version
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
        assert body == {"status": "not ready", "models": {"fast": [1], "slow": []}}
        assert headers["Content-Type"] == "application/json"
        assert headers["Retry-After"] == "1"
    assert all(s[0] == 503 for s in seen[:-1]), "ready before every model served"


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
