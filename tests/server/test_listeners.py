"""The start-up check that keeps SO_REUSEPORT from letting two servers share a port."""

from __future__ import annotations

import socket

import pytest

from tfaas.server.listeners import check_port_free


def listening_socket(reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_a_port_in_use_is_refused_and_a_free_one_accepted() -> None:
    taken = listening_socket(reuse_port=True)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match="Connection in use"):
            check_port_free("127.0.0.1", port)
    finally:
        taken.close()
    check_port_free("127.0.0.1", port)
