"""``/healthz`` and ``/readyz`` over a real ServerCore whose loader is a fake that waits on a gate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.asgi_client import AsgiClient, worker_client
from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.server_core import ServerCore

GATES: dict[str, threading.Event] = {}


class GatedLoader:
    """Loads once the test opens the model's gate (a load that takes as long as the test wants)."""

    def __init__(self, id: ServableId, path: str) -> None:
        self.id = id

    def load(self) -> object:
        assert GATES[self.id.name].wait(10)
        return object()

    def unload(self) -> None:
        pass


@pytest.fixture
def core(tmp_path: Path):
    models = []
    for name in ("a", "b"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "saved_model.pb").write_bytes(b"fake")
        models.append(ModelConfig(name=name, base_path=str(tmp_path / name)))
        GATES[name] = threading.Event()
    settings = Settings(
        enable_batching=False,  # NOTE: the fake servables here never run
        models=tuple(models),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
    )
    core = ServerCore(settings, loader_factory=GatedLoader)
    core.start()
    yield core
    for gate in GATES.values():
        gate.set()
    core.stop()


@pytest.fixture
def client(core: ServerCore):
    with worker_client(core) as client:
        yield client


def test_readyz_waits_for_every_model_and_healthz_never_waits(core: ServerCore, client: AsgiClient):
    for gate in ("a", "b", None):
        ready, alive = client.get("/readyz"), client.get("/healthz")
        assert alive.status_code == 200 and alive.json == {"status": "alive"}
        if gate is None:
            break
        assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
        assert ready.json["status"] == "not ready"
        assert ready.json["not_ready"] == {
            name: "version 1 is loading" for name in ("a", "b") if not GATES[name].is_set()
        }
        GATES[gate].set()
        assert core.wait_until(lambda g=gate: core.available_versions(g) == [1], 5)
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "models": {"a": [1], "b": [1]}}
    assert ready.content_type == alive.content_type == "application/json"


def test_readyz_lists_each_model_with_its_available_versions(core: ServerCore, client: AsgiClient):
    GATES["a"].set()
    assert core.wait_until(lambda: core.available_versions("a") == [1], 5)
    assert client.get("/readyz").json == {
        "status": "not ready",
        "models": {"a": [1], "b": []},
        "not_ready": {"b": "version 1 is loading"},
    }


def test_no_configured_model_is_ready():
    core = ServerCore(Settings())
    core.start()
    try:
        assert core.wait_until_ready(5)
        with worker_client(core) as client:
            assert client.get("/readyz").json == {"status": "ready", "models": {}}
    finally:
        core.stop()


def test_readyz_says_why_a_model_without_versions_is_not_ready(tmp_path: Path):
    settings = Settings(
        models=(ModelConfig(name="m", base_path=str(tmp_path / "m")),), file_system_poll_wait_seconds=-1
    )
    core = ServerCore(settings)
    core.start()
    try:
        with worker_client(core) as client:
            ready = client.get("/readyz")
    finally:
        core.stop()
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
    assert ready.json == {
        "status": "not ready",
        "models": {"m": []},
        "not_ready": {"m": f"base path {tmp_path / 'm'} does not exist"},
    }
