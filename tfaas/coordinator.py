"""``Coordinator``: the server's one lifecycle decision, sent to every worker.

It runs :class:`~tfaas.served_models.ServedModels` (the model list and its filesystem source: one scan of
the disk, one version policy), feeds :class:`~tfaas.core.server_state.ServerState` with what it aspires
and what the workers report, and sends each worker its decision whenever it changed. Under gunicorn it
runs in a process of its own (``tfaas.server.coordinator_process``); :class:`LocalLifecycle` runs it on
threads of the worker's own process (tests, an embedding application).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Collection, Sequence

from tfaas.config import ModelConfig, Settings
from tfaas.core.server_state import Decision, ServerState, WorkerId, WorkerReport
from tfaas.core.source import AspiredVersion
from tfaas.served_models import ServedModels

log = logging.getLogger("tfaas.coordinator")

REDECIDE_SECONDS = 0.5
"""The decision is also recomputed this often: what the source found on disk (a version still being
copied, a base path gone) changes without an aspired-versions call."""

Send = Callable[[Decision], None]


class Coordinator:
    """Decides for the whole server and keeps every attached worker's decision current."""

    def __init__(self, settings: Settings, repository_models_at_start: Collection[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._state = ServerState()
        self._links: dict[WorkerId, Send] = {}
        self._sent: dict[WorkerId, Decision] = {}
        self._changed = threading.Event()
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tfaas-coordinator", daemon=True)
        # NOTE: last: its constructor applies the configured models, which calls back into this object.
        self.served = ServedModels(settings, self._on_aspired, self._on_models, repository_models_at_start)
        self._state.set_base_path_status(self.served.base_path_status)

    def start(self) -> None:
        """Read the base paths (their first scan aspires versions), send the first decisions, and keep
        sending them as things change."""
        self.served.start()
        self._send_decisions()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching the disk and sending decisions."""
        self.served.stop()
        self._stopping.set()
        self._changed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    # ---- workers --------------------------------------------------------------------------------

    def attach(self, worker: WorkerId, send: Send) -> None:
        """A worker to decide for: ``send`` gets its decisions (on this object's thread; keep it short)."""
        with self._lock:
            self._links[worker] = send
            self._state.report(worker, WorkerReport())
        self._changed.set()

    def detach(self, worker: WorkerId) -> None:
        """A worker that is gone: what serves no longer waits for it."""
        with self._lock:
            self._links.pop(worker, None)
            self._state.remove_worker(worker)
        self._changed.set()

    def report(self, worker: WorkerId, report: WorkerReport) -> None:
        """A worker's newest report."""
        with self._lock:
            if worker in self._links:
                self._state.report(worker, report)
        self._changed.set()

    def reload_config(self) -> bool:
        """Re-read the model config file (False: refused); decisions follow."""
        return self.served.reload_config()

    def set_model_config(self, models: Sequence[ModelConfig]) -> None:
        """Serve ``models`` as the configured models; decisions follow."""
        self.served.set_config(models)

    def refresh_repository(self) -> None:
        """Re-read the model repository; decisions follow."""
        self.served.refresh_repository()

    def set_model_loaded(self, name: str, loaded: bool) -> bool:
        """Serve ``name`` again, or withhold it (False: no such model); decisions follow."""
        return self.served.set_loaded(name, loaded)

    # ---- deciding -------------------------------------------------------------------------------

    def _on_models(self, served: ServedModels) -> None:
        with self._lock:
            self._state.set_models(served.models, served.readiness_models, served.unloaded)
        self._changed.set()

    def _on_aspired(self, name: str, versions: list[AspiredVersion]) -> None:
        with self._lock:
            self._state.set_aspired(name, versions)
        self._changed.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._changed.wait(REDECIDE_SECONDS)
            self._changed.clear()
            if self._stopping.is_set():
                return
            try:
                self._send_decisions()
            except Exception:  # NOTE: the coordinator must outlive a bug in one round
                log.exception("Deciding the server's lifecycle failed")

    def _send_decisions(self) -> None:
        """Decide, and send each worker its decision if it changed (outside the state's lock: sends may block)."""
        with self._send_lock:
            self._send_changed()

    def _send_changed(self) -> None:
        with self._lock:
            decisions = self._state.decide()
            links = dict(self._links)
        for worker, decision in decisions.items():
            send = links.get(worker)
            if send is None or self._sent.get(worker) == decision:
                continue
            try:
                send(decision)
            except Exception as exc:  # NOTE: a worker that cannot be told is gone
                log.warning("Worker %s no longer follows the lifecycle (%s)", worker, exc)
                self.detach(worker)
                continue
            self._sent[worker] = decision
        for worker in set(self._sent) - set(decisions):
            del self._sent[worker]


class LocalLifecycle:
    """A coordinator on threads of this process, for one worker: a server with no worker processes."""

    WORKER = "local"

    def __init__(self, settings: Settings, repository_models_at_start: Collection[str] | None = None) -> None:
        self.coordinator = Coordinator(settings, repository_models_at_start)

    def connect(self, apply: Send) -> None:
        self.coordinator.attach(self.WORKER, apply)
        self.coordinator.start()

    def report(self, report: WorkerReport) -> None:
        self.coordinator.report(self.WORKER, report)

    def reload_config(self) -> bool:
        return self.coordinator.reload_config()

    def set_model_config(self, models: Sequence[ModelConfig]) -> None:
        self.coordinator.set_model_config(models)

    def refresh_repository(self) -> None:
        self.coordinator.refresh_repository()

    def set_model_loaded(self, name: str, loaded: bool) -> bool:
        return self.coordinator.set_model_loaded(name, loaded)

    def close(self) -> None:
        self.coordinator.stop()
