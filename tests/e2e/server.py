"""Starts the real server (``python -m tfaas serve`` under gunicorn) and speaks HTTP to it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port(other_than: int = 0) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and not ``other_than``)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != other_than:
            return port


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ServerProcess:
    """One server process, its port and its log file; stopped by its own PID only."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "tfaas", "serve"),
        ports: tuple[int, int] | None = None,
    ) -> None:
        """``ports``: the REST and gRPC ports the command's own arguments give the server (default: free
        ports, given in the environment)."""
        self.port = ports[0] if ports else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = ports[1] if ports else free_port(other_than=self.port)
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        """The gRPC API's address, for ``grpc.insecure_channel(server.grpc_target)``."""
        self.log_path = log_path
        # NOTE: one worker unless a test asks for more: the default (one per core) would make each server
        # load every model twice, and the tests that count requests or states reason about one worker.
        full_env = {
            **os.environ,
            "TFAAS_HOST": "127.0.0.1",
            "TFAAS_REST_API_PORT": str(self.port),
            "TFAAS_GRPC_PORT": str(self.grpc_port),
            "TFAAS_WORKERS": "1",
        }
        full_env.update(env or {})
        self._log = open(log_path, "wb")  # noqa: SIM115 - open for the server's whole life
        self.process = subprocess.Popen(
            [*command, *args], stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO
        )

    def booted_workers(self) -> list[int]:
        """The PIDs of the workers gunicorn booted, in order, from its ``Booting worker with pid: N`` lines.

        NOTE: from the log, not from the server's children: the lifecycle coordinator is a child too.
        """
        return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.log())]

    def wait_listening(self, timeout: float = 120) -> None:
        """Wait until ``GET /healthz`` answers 200 (models may still be loading); fail if the server exits.

        NOTE: on a busy machine the first probe can sit in the listen backlog past its timeout while
        the worker boots; that is "not yet", not a failure.
        """

        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early with {self.process.returncode}:\n{self.log()}")
            try:
                return requests.get(self.url + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout, interval=0.1)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)

    def version_states(self, model: str) -> dict[int, str]:
        """``{version: state}`` from the status API ({} while the model is unknown)."""
        response = self.get(f"/v1/models/{model}")
        if response.status_code != 200:
            return {}
        return {int(v["version"]): v["state"] for v in response.json()["model_version_status"]}

    def wait_available(self, model: str, version: int, timeout: float = 60) -> None:
        wait_for(lambda: self.version_states(model).get(version) == "AVAILABLE", timeout)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the server (gunicorn's master, our child) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Launcher:
    """Starts servers with their logs in a temporary directory; :meth:`close` stops the ones still up."""

    def __init__(self, tmp_path_factory: Any) -> None:
        self._tmp = tmp_path_factory
        self._started: list[ServerProcess] = []

    def start(self, *args: str, wait: bool = True, **kwargs: Any) -> ServerProcess:
        """Start ``tfaas serve *args`` (or ``command=[...]``) and, unless ``wait=False``, wait for it."""
        server = ServerProcess(args, self._tmp.mktemp("server") / "server.log", **kwargs)
        self._started.append(server)
        if wait:
            server.wait_listening()
        return server

    def close(self) -> None:
        """Stop every server started here that is still running."""
        for server in self._started:
            server.stop()
