"""Starting real servers for the deployment tests (signals, systemd, Docker's entrypoint).

``Launcher`` starts :class:`ServerProcess` es and waits until ``/healthz`` answers. It tolerates a
worker that is slow to boot on a busy machine (the first probe may sit in the listen backlog past its
timeout), and it stops, at the end, every server a test left running.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from tests.e2e.server import ServerProcess


def wait_answering(server: ServerProcess, timeout: float = 120) -> None:
    """Wait until ``GET /healthz`` answers 200; fail at once if the server exits."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited early with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server did not answer within {timeout} s:\n{server.log()}")
        time.sleep(0.1)


class Launcher:
    """Starts servers with their logs in a temporary directory; :meth:`close` stops the ones still up."""

    def __init__(self, tmp_path_factory: Any) -> None:
        self._tmp = tmp_path_factory
        self._started: list[ServerProcess] = []

    def start(self, *args: str, wait: bool = True, **kwargs: Any) -> ServerProcess:
        """Start ``tfaas serve *args`` (or ``command=[...]``) and, unless ``wait=False``, wait for it."""
        log: Path = self._tmp.mktemp("server") / "server.log"
        server = ServerProcess(args, log, **kwargs)
        self._started.append(server)
        if wait:
            wait_answering(server)
        return server

    def close(self) -> None:
        for server in self._started:
            server.stop()
