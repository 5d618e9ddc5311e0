"""Runs the app under gunicorn: one lifecycle coordinator, and one ``ServerCore`` per worker after the fork.

NOTE: TensorFlow is not fork-safe, so nothing here imports it or loads a model in the master: the app
is never preloaded, each worker builds its own core in ``load()``, and models then load on the core's
thread pools. The master forks the lifecycle coordinator first (``coordinator_process``): it decides
which versions serve, for every worker, and each worker follows it.

Signals, as a service manager (systemd, Docker, Kubernetes) sends them to the master:

- ``SIGTERM``: gunicorn's graceful stop. The master passes SIGTERM on; each worker leaves rotation
  (closes its listener after accepting what it queued), finishes its in-flight requests (for
  ``graceful_timeout`` seconds at most), then unloads its models in ``worker_exit``; the master
  exits 0.
- ``SIGHUP``: a reload of the model config, *not* gunicorn's reload (which starts new workers that
  would load every model again). :class:`TfaasArbiter` forwards the signal to the coordinator, which
  re-reads the model list: added models load in every worker, removed ones unload, the others keep
  serving untouched. A worker's own SIGHUP (:class:`SighupReloader`) asks the coordinator the same.
  Settings other than the model list (port, workers, ...) need a restart. A worker that gunicorn
  starts later, in place of one that died, follows the coordinator like the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from tfaas import tracing
from tfaas.config import Settings, custom_op_libraries
from tfaas.fronts.model_management import warn_if_anyone_may_write
from tfaas.logs import logging_config, native_lines_logged
from tfaas.metrics import mark_worker_dead, multiprocess_dir
from tfaas.model_repository import ModelRepository
from tfaas.server.coordinator_process import CoordinatorProcess, RemoteLifecycle
from tfaas.server.listeners import check_port_free
from tfaas.server.rotation import Rotation
from tfaas.server.unix_socket import shared_listener
from tfaas.server.worker_count import WorkerChoice, choose_workers

if TYPE_CHECKING:
    from tfaas.server.asgi import AsgiFront

log = logging.getLogger("tfaas.server")


class TfaasApplication(BaseApplication):
    """gunicorn application serving ``settings``: :class:`TfaasWorker` workers, one core per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # NOTE: read in the master, at start: a coordinator started later (in place of one that died) waits
        # for the same repository models as the first one, not for a model uploaded since that cannot load.
        self.coordinator = CoordinatorProcess(settings, _repository_models(settings))
        self.worker_choice: WorkerChoice | None = None  # chosen in load_config, logged in run()
        self.core: Any = None  # the worker's ServerCore, built in load()
        self.reloader: SighupReloader | None = None  # the worker's, installed in load()
        self.rotation: Rotation | None = None  # whether the worker takes connections, made in load()
        self.service: Any = None  # the worker's InferenceService over its core, every front's, made in load()
        self.tracing: Any = None  # the worker's spans (tfaas.tracing), made in load() where tracing is on
        # NOTE: bound by the master at start, inherited by every worker (tfaas/server/unix_socket.py)
        self.grpc_unix_listener: socket.socket | None = None
        super().__init__(prog="tfaas serve")

    def load_config(self) -> None:
        """Translate our settings into gunicorn's (gunicorn's own CLI parsing is not used)."""
        s = self.settings
        self.worker_choice = choose_workers(s)
        options = {
            "bind": f"[{s.host}]:{s.rest_api_port}" if ":" in s.host else f"{s.host}:{s.rest_api_port}",
            "workers": str(self.worker_choice.count),
            "worker_class": "tfaas.server.worker.TfaasWorker",
            "threads": str(s.threads),
            "graceful_timeout": str(int(s.graceful_timeout)),
            "preload_app": False,
            "loglevel": s.log_level,
            # NOTE: applied by gunicorn in the master before the fork, so workers inherit it.
            "logconfig_dict": logging_config(s.log_format, s.log_level, s.access_log),
            "worker_tmp_dir": s.worker_tmp_dir or None,
            "worker_exit": self._on_worker_exit,
            "child_exit": lambda server, worker: mark_worker_dead(worker.pid),  # NOTE: metrics; in the master
            "control_socket_disable": True,  # NOTE: one shared socket path would clash between servers
            # NOTE: the master binds no socket (gunicorn's start with reuse_port): each worker opens its
            # own when it enters rotation (listeners.py, rotation.py). Off once started: TfaasArbiter.
            "reuse_port": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> AsgiFront:
        """Build this worker's core and app (runs in the worker, after the fork)."""
        # NOTE: first of all: gunicorn has just reset SIGHUP to its default action (terminate), and a
        # reload asked for while the core is being built must wait for it, not kill the worker.
        self.reloader = SighupReloader()
        self.reloader.install()
        s = self.settings
        # NOTE: out of rotation until the coordinator says it serves what the server serves.
        self.rotation = Rotation(s.host, s.rest_api_port, backlog=self.cfg.backlog, on_change=self._rotation_changed)

        from tfaas.inference.service import InferenceService
        from tfaas.servables import tf_runtime
        from tfaas.server.app import create_app
        from tfaas.server.asgi import AsgiFront
        from tfaas.server_core import ServerCore

        with native_lines_logged(logging.getLogger("tensorflow")):
            import tensorflow  # noqa: F401 - its C++ start-up lines come out as our log lines
        tf_runtime.start(s.tensorflow_intra_op_parallelism, s.tensorflow_inter_op_parallelism, self.cfg.workers)
        tf_runtime.load_op_libraries(custom_op_libraries(s.custom_op_paths))
        lifecycle = RemoteLifecycle(self.coordinator.address, self.coordinator.authkey)
        self.tracing = tracing.from_settings(s)  # NOTE: in the worker: the span exporter's thread must not fork
        self.core = ServerCore(s, lifecycle=lifecycle, rotation=self.rotation, tracing=self.tracing)
        self.core.start()
        self.reloader.start(self.core.reload_config)
        self.service = InferenceService(self.core, self.settings.threads)
        if s.grpc_port or s.grpc_socket_path:
            from tfaas.server.grpc_listener import GrpcListener  # NOTE: grpc only in workers, never in the master

            self.rotation.add_listener(GrpcListener(s, self.service, self.grpc_unix_listener))
        return AsgiFront(self.service, create_app(self.service), self.settings.threads)

    def _rotation_changed(self, listening: bool) -> None:
        """The worker's listener opened or closed: the coordinator must know (what serves counts on it)."""
        if self.core is not None:
            self.core.rotation_changed()

    def run(self) -> None:
        """Run :class:`TfaasArbiter` (gunicorn's master) until it is told to stop."""
        self._master_pid = os.getpid()  # NOTE: workers fork inside arbiter.run() and leave it by sys.exit
        try:
            check_port_free(self.settings.host, self.settings.rest_api_port)
            if self.settings.grpc_port:
                check_port_free(self.settings.host, self.settings.grpc_port)
            if self.settings.grpc_socket_path:
                self.grpc_unix_listener = shared_listener(self.settings.grpc_socket_path, self.cfg.backlog)
            arbiter = TfaasArbiter(self)  # NOTE: sets up logging
            if self.worker_choice is not None:
                log.log(self.worker_choice.level, "%s", self.worker_choice.message)
            warn_if_anyone_may_write(self.settings)
            remove_repository_leftovers(self.settings)
            arbiter.run()
        except RuntimeError as exc:  # NOTE: as BaseApplication.run: a bad bind, a bad log config
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)
        finally:
            self._close_grpc_unix_listener()

    def _close_grpc_unix_listener(self) -> None:
        """In the master, at its exit: close the gRPC Unix socket and remove its path (a worker's exit keeps it)."""
        if self.grpc_unix_listener is not None and os.getpid() == self._master_pid:
            self.grpc_unix_listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.settings.grpc_socket_path)

    def _on_worker_exit(self, server: Any, worker: Any) -> None:
        """After the worker's last in-flight request: unload every model (gunicorn calls this in the
        worker; in the master too, for a worker that vanished, where there is no core)."""
        if self.reloader is not None:
            self.reloader.stop()
        if self.core is not None:
            log.info("Worker %s stopping: unloading its models", os.getpid())
            self.core.stop()
            self.core = None
            log.info("Worker %s stopped", os.getpid())
        if self.tracing is not None:
            self.tracing.close()  # NOTE: after the core: the spans of the last requests are sent too


def _repository_models(settings: Settings) -> list[str]:
    """The models in the model repository now (none without one)."""
    if not settings.model_repository:
        return []
    return [m.name for m in ModelRepository(settings.model_repository, settings.max_upload_bytes).model_configs()]


def remove_repository_leftovers(settings: Settings) -> None:
    """At start, where model management is on: remove what uploads and deletes of a killed server left."""
    if not (settings.model_repository and settings.enable_model_management):
        return
    repository = ModelRepository(settings.model_repository, settings.max_upload_bytes)
    for path in repository.remove_leftovers():
        log.info("Removed %s, left by an upload or delete that did not finish", path)


class TfaasArbiter(Arbiter):
    """gunicorn's master, which runs the lifecycle coordinator beside the workers, and where SIGHUP
    reloads the model config instead of replacing the workers."""

    def start(self) -> None:
        """gunicorn's start (signals, logging), then the coordinator, before any worker."""
        self.log.error_log.addFilter(ListenerAddresses(self.cfg.address))
        super().start()
        # NOTE: reuse_port kept gunicorn's start from binding; off, it keeps spawn_worker from opening a
        # socket in every worker, which would listen before the worker can answer (its Rotation opens
        # one when it can). stop() and reexec only act on the master's sockets: there are none.
        self.cfg.set("reuse_port", False)
        self.app.coordinator.start()

    def manage_workers(self) -> None:
        """gunicorn's, and a new coordinator in place of one that died."""
        self.app.coordinator.restart_if_dead()
        super().manage_workers()

    def stop(self, graceful: bool = True) -> None:
        """gunicorn's stop of the workers, then the coordinator's."""
        super().stop(graceful)
        self.app.coordinator.stop()

    def handle_hup(self) -> None:
        self.log.info("Hang up: reloading the model config (workers are not restarted)")
        self.app.coordinator.reload()


class SighupReloader:
    """In a worker: SIGHUP asks for a model-config reload, which runs on a thread of its own.

    NOTE: the signal handler only puts a token on a ``SimpleQueue`` (reentrant, so safe in a signal
    handler); the worker's main loop is never blocked, and HUPs that arrive during a reload make one
    more reload, not one each.
    """

    _STOP = object()

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Handle SIGHUP in this process (call from the main thread)."""
        signal.signal(signal.SIGHUP, self._on_signal)
        # NOTE: as gunicorn does for SIGTERM: restart interrupted system calls instead of failing them.
        signal.siginterrupt(signal.SIGHUP, False)

    def start(self, reload: Callable[[], object]) -> None:
        """Run ``reload`` for every SIGHUP from now on (and for one that came before, if any)."""
        self._thread = threading.Thread(target=self._run, args=(reload,), name="tfaas-sighup-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the reload thread (a reload in progress finishes first)."""
        self._requests.put(self._STOP)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._requests.put_nowait(signum)

    def _run(self, reload: Callable[[], object]) -> None:
        while True:
            token = self._requests.get()
            while token is not self._STOP and not self._requests.empty():
                token = self._requests.get_nowait()  # NOTE: HUPs queued meanwhile: one reload for all
            if token is self._STOP:
                return
            log.info("SIGHUP: reloading the model config")
            try:
                reload()
            except Exception:  # NOTE: a failed reload must not end the thread (the next HUP retries)
                log.exception("Reloading the model config failed")


class ListenerAddresses(logging.Filter):
    """Puts the addresses in gunicorn's ``Listening at:`` line, which names the master's sockets: with
    a socket per worker it has none, and the line read ``Listening at:  (<pid>)``."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        super().__init__()
        self.addresses = ",".join(f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}" for h, p in addresses)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Listening at: %s (%s)" and isinstance(record.args, tuple) and record.args[0] == "":
            record.args = (self.addresses, *record.args[1:])
        return True


def serve(settings: Settings) -> None:
    """Run gunicorn in the foreground until it is told to stop."""
    # NOTE: before any worker forks, so all of them write their metrics where a scrape sums them up.
    with multiprocess_dir():
        TfaasApplication(settings).run()
