"""A worker's own listener, one of the port's SO_REUSEPORT group, and the start-up check that keeps the
group from letting two servers share a port."""

from __future__ import annotations

import socket

import pytest

from tfaas.server.listeners import (
    check_port_free,
    has_connections,
    listening_socket,
    listening_sockets,
    refuse_handshakes,
    refuse_handshakes_on,
)


def plain_listener(reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_a_port_in_use_is_refused_and_a_free_one_accepted() -> None:
    taken = plain_listener(reuse_port=True)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match="Connection in use"):
            check_port_free("127.0.0.1", port)
    finally:
        taken.close()
    check_port_free("127.0.0.1", port)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_listeners_of_one_port_share_its_connections(host) -> None:
    first = listening_socket(host, 0, backlog=16)
    port = first.getsockname()[1]
    with first, listening_socket(host, port, backlog=16) as second:
        for _ in range(8):
            socket.create_connection((host, port), timeout=5).close()
        assert accept_all(first) + accept_all(second) == 8


def accept_all(listener: socket.socket) -> int:
    """Accept (and close) every connection ``listener`` queues; how many."""
    listener.setblocking(False)
    accepted = 0
    while True:
        try:
            listener.accept()[0].close()
        except BlockingIOError:
            return accepted
        accepted += 1


def test_a_listener_that_refuses_handshakes_keeps_what_it_queued_and_takes_nothing_new() -> None:
    with listening_socket("127.0.0.1", 0, backlog=16) as listener:
        port = listener.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert refuse_handshakes(listener), "this test process may filter its sockets (CAP_NET_ADMIN)"
        with pytest.raises(TimeoutError):  # NOTE: its SYN dropped; the client would send it again 1 s later
            socket.create_connection(("127.0.0.1", port), timeout=0.5)
        with queued, listener.accept()[0] as accepted:
            queued.sendall(b"request")
            assert accepted.recv(16) == b"request"


def test_the_listeners_a_library_opened_are_found_and_can_refuse_handshakes() -> None:
    """As grpcio's: this process's listeners on a port, found by their socket, filtered through a descriptor."""
    with listening_socket("127.0.0.1", 0, backlog=16) as first:
        port = first.getsockname()[1]
        before = listening_sockets(port)
        assert list(before.values()) == [first.fileno()]
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # NOTE: a connection is no listener
            assert listening_sockets(port) == before
        with listening_socket("127.0.0.1", port, backlog=16) as second:
            (new,) = [fd for inode, fd in listening_sockets(port).items() if inode not in before]
            assert new == second.fileno()
        assert refuse_handshakes_on(first.fileno()), "this test process may filter its sockets (CAP_NET_ADMIN)"
        with pytest.raises(TimeoutError):  # NOTE: its SYN dropped, as through the socket object itself
            socket.create_connection(("127.0.0.1", port), timeout=0.5)


def test_the_connections_a_library_accepted_are_seen(tmp_path) -> None:
    """As grpcio's: whether this process still holds a connection accepted on a port or a Unix socket."""
    with listening_socket("127.0.0.1", 0, backlog=16) as listener:
        port = listener.getsockname()[1]
        assert not has_connections(port)  # NOTE: a listener is no connection
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = listener.accept()
            assert has_connections(port)
            accepted.close()
        assert not has_connections(port)
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(path)
        unix.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            accepted, _ = unix.accept()
            with accepted:
                assert has_connections(None, [path]) and not has_connections(None, [path + "x"])
        assert not has_connections(None, [path])
