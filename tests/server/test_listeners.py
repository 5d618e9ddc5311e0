"""Per-worker listening sockets: a second socket on the worker's port, and a refusal of a port in use."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from tfaas.server.listeners import add_own_listeners, check_port_free


def listening_socket(reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_a_worker_gets_its_own_socket_on_the_shared_port_and_connections_reach_both() -> None:
    shared = listening_socket(reuse_port=True)
    worker = SimpleNamespace(sockets=[shared], cfg=SimpleNamespace(backlog=16), pid=1)
    add_own_listeners(worker)
    try:
        assert len(worker.sockets) == 2
        own = worker.sockets[1]
        assert own.getsockname() == shared.getsockname()
        clients = [socket.create_connection(shared.getsockname()) for _ in range(32)]
        accepted = {id(sock): 0 for sock in worker.sockets}
        for sock in worker.sockets:
            sock.setblocking(False)
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted[id(sock)] += 1
        assert sum(accepted.values()) == 32 and all(accepted.values()), "the kernel spread them over both"
        for client in clients:
            client.close()
    finally:
        for sock in worker.sockets:
            sock.close()


def test_without_reuse_port_on_the_shared_socket_the_worker_keeps_only_it() -> None:
    shared = listening_socket(reuse_port=False)
    worker = SimpleNamespace(sockets=[shared], cfg=SimpleNamespace(backlog=16), pid=1)
    try:
        add_own_listeners(worker)
        assert worker.sockets == [shared]
    finally:
        shared.close()


def test_a_port_in_use_is_refused_and_a_free_one_accepted() -> None:
    taken = listening_socket(reuse_port=True)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match="Connection in use"):
            check_port_free("127.0.0.1", port)
    finally:
        taken.close()
    check_port_free("127.0.0.1", port)
