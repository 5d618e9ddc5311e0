"""The coordinator's process under gunicorn, and each worker's link to it.

gunicorn's master forks :class:`CoordinatorProcess` before any worker (the master has no threads, so the
fork is safe; TensorFlow is never imported there) and forks it again should it die. The coordinator
(``tfaas.coordinator``) decides the server's lifecycle; each worker follows it through
:class:`RemoteLifecycle`: one Unix socket connection (``multiprocessing.connection``, authenticated with a
key only the master's children know, in a directory only the server's user can enter), over which the
worker sends its reports and requests (reload the model config, re-read the model repository) and
receives its decisions.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Callable, Collection, Sequence

from tfaas.config import ModelConfig, Settings
from tfaas.core.server_state import Decision, WorkerReport
from tfaas.errors import Unavailable

log = logging.getLogger("tfaas.coordinator")

STOP_SECONDS = 10.0
"""How long the master waits for the coordinator to exit after SIGTERM before it kills it."""

RECONNECT_SECONDS = 0.2
"""A worker whose coordinator is gone tries again this often (the master starts a new one)."""

REQUEST_SECONDS = 60.0
"""How long a worker waits for the coordinator to answer a request (a reload, a repository refresh)."""

_PARENT_CHECK_SECONDS = 1.0


class CoordinatorProcess:
    """In gunicorn's master: the coordinator's process, its socket and its key."""

    def __init__(self, settings: Settings, repository_models_at_start: Collection[str]) -> None:
        self.settings = settings
        self.repository_models_at_start = tuple(repository_models_at_start)
        self._dir: str | None = None
        self.address = ""  # NOTE: set by start(), before the workers fork
        self.authkey = os.urandom(32)
        self._listener: Listener | None = None
        self.pid: int | None = None
        self._alive_pipe: int | None = None

    def start(self) -> None:
        """Fork the coordinator (call in the master, before the workers; again when it died)."""
        if self._listener is None:
            # NOTE: made once, in the master: workers connect even while a new coordinator starts.
            self._dir = tempfile.mkdtemp(prefix="tfaas-lifecycle-")  # NOTE: mode 0700
            self.address = os.path.join(self._dir, "coordinator.sock")
            self._listener = Listener(self.address, "AF_UNIX", authkey=self.authkey)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                code = _run_coordinator(self, os.getppid())
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid, self._alive_pipe = pid, read_end
        log.info("Started the lifecycle coordinator (pid: %s)", pid)

    def alive(self) -> bool:
        """Whether the coordinator still runs (its end of a pipe closes when it exits, however it ends)."""
        if self._alive_pipe is None:
            return False
        readable, _, _ = select.select([self._alive_pipe], [], [], 0)
        return not readable

    def restart_if_dead(self) -> None:
        """Start a new coordinator when the last one died (the workers reconnect and keep serving meanwhile)."""
        if self._alive_pipe is not None and not self.alive():
            log.error("The lifecycle coordinator (pid: %s) died; starting a new one", self.pid)
            os.close(self._alive_pipe)
            self._alive_pipe = None
            self.start()

    def reload(self) -> None:
        """Ask the coordinator to re-read the model config file (SIGHUP)."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGHUP)

    def stop(self) -> None:
        """Stop the coordinator (after the workers), then remove its socket."""
        if self.pid is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        if self._alive_pipe is not None:
            os.close(self._alive_pipe)
            self._alive_pipe = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _run_coordinator(process: CoordinatorProcess, master_pid: int) -> int:
    """The coordinator's process: decide until SIGTERM or the master's death."""
    from tfaas.coordinator import Coordinator

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, lambda *_: stop.set())
    for signum in (signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(signum, signal.SIG_DFL)  # NOTE: gunicorn's master's handlers, inherited by the fork
    with contextlib.suppress(ImportError):
        from setproctitle import setproctitle

        setproctitle("tfaas: lifecycle coordinator")
    try:
        coordinator = Coordinator(process.settings, process.repository_models_at_start)
    except Exception:
        log.exception("The lifecycle coordinator could not start")
        return 1
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=_reload, args=(coordinator,), daemon=True).start())
    assert process._listener is not None
    hub = threading.Thread(target=accept_workers, args=(process._listener, coordinator), daemon=True)
    hub.start()
    coordinator.start()
    while not stop.wait(_PARENT_CHECK_SECONDS):
        if os.getppid() != master_pid:
            log.error("gunicorn's master is gone; the lifecycle coordinator stops")
            break
    coordinator.stop()
    sys.stdout.flush()
    return 0


def _reload(coordinator: Any) -> None:
    log.info("SIGHUP: reloading the model config")
    coordinator.reload_config()


def accept_workers(listener: Listener, coordinator: Any) -> None:
    """Take each worker's connection (a wrong key is refused by the handshake) and serve it on a thread,
    until ``listener`` closes (the coordinator's process runs this on a thread of its own)."""
    while True:
        try:
            conn = listener.accept()
        except OSError:
            return  # NOTE: the listener closed
        except Exception as exc:  # NOTE: a failed handshake: not one of our workers
            log.warning("Refused a connection to the lifecycle coordinator: %s", exc)
            continue
        threading.Thread(target=_serve_worker, args=(conn, coordinator), daemon=True).start()


def _serve_worker(conn: Connection, coordinator: Any) -> None:
    """One worker's link: its hello, then its reports and requests, until it goes."""
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    worker = None
    try:
        kind, worker = conn.recv()
        if kind != "hello":
            return
        coordinator.attach(worker, lambda decision: send(("decision", decision)))
        while True:
            message = conn.recv()
            if message[0] == "report":
                coordinator.report(worker, message[1])
            elif message[0] == "reload":
                send(("reply", message[1], coordinator.reload_config()))
            elif message[0] == "refresh":
                coordinator.refresh_repository()
                send(("reply", message[1], None))
            elif message[0] == "config":
                coordinator.set_model_config(message[2])
                send(("reply", message[1], None))
            elif message[0] == "loaded":
                send(("reply", message[1], coordinator.set_model_loaded(message[2], message[3])))
    except (EOFError, OSError):
        pass
    finally:
        if worker is not None:
            coordinator.detach(worker)
        conn.close()


class RemoteLifecycle:
    """In a worker: the link to the coordinator's process (``tfaas.server_core.Lifecycle``)."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._address, self._authkey = address, authkey
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._report: WorkerReport | None = None
        self._report_ready = threading.Event()
        self._replies: dict[int, Future] = {}
        self._ids = itertools.count()
        self._apply: Callable[[Decision], None] = lambda decision: None

    def connect(self, apply: Callable[[Decision], None]) -> None:
        """Connect (retrying until the coordinator answers), then follow its decisions on a thread."""
        self._apply = apply
        self._open()
        threading.Thread(target=self._read, name="tfaas-lifecycle-read", daemon=True).start()
        threading.Thread(target=self._send_reports, name="tfaas-lifecycle-report", daemon=True).start()

    def report(self, report: WorkerReport) -> None:
        """Send ``report`` soon (a newer one sent before it was replaces it)."""
        self._report = report
        self._report_ready.set()

    def reload_config(self) -> bool:
        return bool(self._request("reload"))

    def set_model_config(self, models: Sequence[ModelConfig]) -> None:
        self._request("config", tuple(models))

    def refresh_repository(self) -> None:
        self._request("refresh")

    def set_model_loaded(self, name: str, loaded: bool) -> bool:
        return bool(self._request("loaded", name, loaded))

    def close(self) -> None:
        self._closing.set()
        self._report_ready.set()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()

    # ---- on the link's threads ------------------------------------------------------------------

    def _open(self) -> None:
        while not self._closing.is_set():
            try:
                conn = Client(self._address, "AF_UNIX", authkey=self._authkey)
                conn.send(("hello", os.getpid()))
            except (OSError, EOFError) as exc:
                log.debug("The lifecycle coordinator does not answer yet: %s", exc)
                time.sleep(RECONNECT_SECONDS)
                continue
            self._conn = conn
            self._connected.set()
            self._report_ready.set()  # NOTE: a new coordinator knows nothing of this worker yet
            return

    def _send(self, message: tuple) -> None:
        conn = self._conn
        if conn is None:
            raise OSError("not connected")
        with self._send_lock:
            conn.send(message)

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                message = self._conn.recv()  # type: ignore[union-attr]
            except (EOFError, OSError):
                if self._closing.is_set():
                    return
                log.warning("Lost the lifecycle coordinator; serving by its last decision while reconnecting")
                self._connected.clear()
                self._fail_requests()
                self._open()
                continue
            if message[0] == "decision":
                try:
                    self._apply(message[1])
                except Exception:  # NOTE: the link must outlive a bug in following one decision
                    log.exception("Following the coordinator's decision failed")
            elif message[0] == "reply":
                future = self._replies.pop(message[1], None)
                if future is not None:
                    future.set_result(message[2])

    def _send_reports(self) -> None:
        while True:
            self._report_ready.wait()
            self._report_ready.clear()
            if self._closing.is_set():
                return
            report = self._report
            if report is None:
                continue
            try:
                self._send(("report", report))
            except OSError:
                time.sleep(RECONNECT_SECONDS)
                self._connected.wait(REQUEST_SECONDS)
                self._report_ready.set()  # NOTE: sent again on the new connection

    def _request(self, kind: str, *args: Any) -> Any:
        if not self._connected.wait(REQUEST_SECONDS):
            raise Unavailable("The server's lifecycle coordinator does not answer; try again")
        request_id = next(self._ids)
        future: Future = Future()
        self._replies[request_id] = future
        try:
            self._send((kind, request_id, *args))
            return future.result(REQUEST_SECONDS)
        except Exception:
            self._replies.pop(request_id, None)
            raise Unavailable("The server's lifecycle coordinator did not answer; try again") from None

    def _fail_requests(self) -> None:
        for request_id in list(self._replies):
            future = self._replies.pop(request_id, None)
            if future is not None:
                future.set_exception(OSError("the coordinator went away"))
