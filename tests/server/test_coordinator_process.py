"""The link between the coordinator and a worker, over a real Unix socket, both ends in this process."""

from __future__ import annotations

import queue
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Iterator

import pytest

from tfaas.config import ModelConfig, Settings
from tfaas.coordinator import Coordinator
from tfaas.core.servable_id import ServableId
from tfaas.core.server_state import Decision, WorkerReport
from tfaas.core.states import ManagerState, ServableState
from tfaas.server.coordinator_process import RemoteLifecycle, accept_workers

KEY = b"k" * 32


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """A coordinator deciding for model ``m`` (version 1 on disk), taking workers on a socket."""
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"fake")
    settings = Settings(
        models=(ModelConfig(name="m", base_path=str(tmp_path / "m")),),
        version_settle_seconds=0,
        file_system_poll_wait_seconds=-1,
    )
    coordinator = Coordinator(settings)
    path = str(tmp_path / "coordinator.sock")
    listener = Listener(path, "AF_UNIX", authkey=KEY)
    threading.Thread(target=accept_workers, args=(listener, coordinator), daemon=True).start()
    coordinator.start()
    yield path
    coordinator.stop()
    listener.close()


def next_decision(decisions: queue.Queue[Decision], predicate) -> Decision:
    deadline = time.monotonic() + 5
    while True:
        decision = decisions.get(timeout=max(0.01, deadline - time.monotonic()))
        if predicate(decision):
            return decision


def test_a_worker_follows_decisions_reports_back_and_gets_answers(address: str):
    decisions: queue.Queue[Decision] = queue.Queue()
    link = RemoteLifecycle(address, KEY)
    link.connect(decisions.put)
    try:
        first = next_decision(decisions, lambda d: "m" in d.models)
        assert first.rotation and [v.id.version for v in first.models["m"].aspired] == [1]
        assert first.not_ready == {"m": "version 1 is loading"}

        id = ServableId("m", 1)
        link.report(WorkerReport(listening=True, states={id: ServableState(id, ManagerState.AVAILABLE, None, 1.0)}))
        serving = next_decision(decisions, lambda d: d.models["m"].serving == (1,))
        assert serving.not_ready == {} and serving.states["m"][1].state is ManagerState.AVAILABLE

        assert link.reload_config() is True  # NOTE: the list came from flags: the same list again
        link.refresh_repository()  # NOTE: no repository: answered all the same

        assert link.set_model_loaded("m", False) is True
        unloaded = next_decision(decisions, lambda d: "m" not in d.models)
        assert unloaded.unloaded == ("m",) and unloaded.not_ready == {}
        assert link.set_model_loaded("m", True) is True
        assert next_decision(decisions, lambda d: "m" in d.models).unloaded == ()
        assert link.set_model_loaded("nope", False) is False
    finally:
        link.close()


def test_a_connection_without_the_key_is_refused(address: str):
    with pytest.raises(AuthenticationError):
        Client(address, "AF_UNIX", authkey=b"x" * 32)
