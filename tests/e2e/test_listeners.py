"""Who listens on the port: each worker on a socket of its own, once it serves; gunicorn's master on none."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.conftest import install_version
from tests.e2e.server import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

WORKERS = 2
TCP_LISTEN = "0A"


def listening_sockets(port: int) -> set[str]:
    """The inodes of the sockets that listen on ``port`` (any address), from ``/proc/net/tcp{,6}``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == TCP_LISTEN:
                    inodes.add(fields[9])
    return inodes


def sockets_of(pid: int) -> set[str]:
    """The inodes of the sockets that process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def test_each_worker_listens_on_a_socket_of_its_own_once_it_serves_and_the_master_on_none(
    start_server, half_plus, tmp_path
):
    install_version(half_plus(2.0), tmp_path / "half", 1)
    args = ("--model_name", "half", "--model_base_path", str(tmp_path / "half"))
    server = start_server(*args, env={"TFAAS_WORKERS": str(WORKERS)}, wait=False)

    # NOTE: gunicorn's per-worker sockets listened from the fork on, seconds before the worker served
    first = wait_for(lambda: listening_sockets(server.port), timeout=60, interval=0.005)
    log = server.log()
    listeners = [pid for pid in children(server) if sockets_of(pid) & first]
    assert listeners, "the master listens"
    assert all(f"Started server process [{pid}]" in log for pid in listeners), f"listening before serving:\n{log}"

    server.wait_available("half", 1)
    wait_for(lambda: len(listening_sockets(server.port)) == WORKERS, timeout=60)
    listening = listening_sockets(server.port)
    assert not sockets_of(server.process.pid) & listening, "the master listens"
    booted = server.booted_workers()
    assert sorted(len(sockets_of(pid) & listening) for pid in booted) == [1] * WORKERS
    others = set(children(server)) - set(booted)  # NOTE: the lifecycle coordinator
    assert others and not any(sockets_of(pid) & listening for pid in others), "the coordinator listens"


def children(server: ServerProcess) -> list[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in children.stdout.split()]
