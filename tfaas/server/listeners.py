"""Why every worker listens on a socket of its own, and the socket functions this needs.

With one listening socket shared by all workers (gunicorn's default), a keep-alive connection stays
with whichever worker accepted it, and clients that open their connections at once (a pool, a load
balancer, ``wrk -c32``) land unevenly: measured on 2 workers with 32 connections, 8/24, 4/28, 7/25
and 18/14 per worker, one worker saturating its core (the GIL) while the other idled. With a
``SO_REUSEPORT`` socket per worker, the kernel hashes every new connection to one of the sockets of
the port's group: 20/12, 15/17, 16/16, 18/14 in the same test, and 1.3–3× the req/s of the
unbalanced windows.

A socket of its own also lets each worker choose when it takes connections: it opens its socket
when it can answer, and closes it to leave the group while the other workers go on
(:class:`~tfaas.server.rotation.Rotation`). The master binds nothing.

``SO_REUSEPORT`` would also let a second server start on a port that is in use and silently share
its traffic; :func:`check_port_free` refuses that at start, as a plain bind would.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from typing import Collection, Iterator

_SO_ATTACH_FILTER = 26  # NOTE: Linux's; Python's socket module does not name it

_SYN_DROPPING_PROGRAM = (
    (0x30, 0, 0, 13),  # load the byte of the TCP flags (a socket filter sees the segment from its TCP header)
    (0x54, 0, 0, 0x12),  # keep SYN and ACK
    (0x15, 0, 1, 0x02),  # SYN without ACK, a new connection's first segment, ...
    (0x06, 0, 0, 0),  # ... is dropped
    (0x06, 0, 0, 0xFFFFFFFF),  # any other segment passes whole
)
"""A classic BPF socket filter: ``struct sock_filter`` entries (code, jump if true, jump if false, k)."""

_SYN_DROPPING_FILTER = ctypes.create_string_buffer(
    b"".join(struct.pack("HBBI", *instruction) for instruction in _SYN_DROPPING_PROGRAM)
)


def _first_address(host: str, port: int) -> tuple[socket.AddressFamily, socket.SocketKind, int, tuple]:
    """The family, type, protocol and address to bind ``host:port`` (the first that ``getaddrinfo`` gives)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, kind, proto, address


def check_port_free(host: str, port: int) -> None:
    """Raise ``RuntimeError`` when something already listens on ``host:port`` (SO_REUSEADDR, not REUSEPORT)."""
    family, kind, proto, address = _first_address(host, port)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise RuntimeError(f"Connection in use: {host}:{port}") from None
            raise


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A socket listening on ``host:port`` in the port's ``SO_REUSEPORT`` group (a worker's own).

    NOTE: a ``socket.socket``, which uvloop detaches when it closes the listener; gunicorn's socket
    wrappers it closed a second time (EBADF, or another file's descriptor had the number been reused).
    """
    family, kind, proto, address = _first_address(host, port)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # NOTE: as gunicorn's; connections inherit it
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def refuse_handshakes(listener: socket.socket) -> bool:
    """Drop the first segment (SYN) of every new connection that the kernel gives ``listener`` from now
    on; handshakes under way complete, and the listener queues them as before.

    NOTE: the kernel resets the connections a closing listener still holds, and it hashes new ones to
    the listener until the very close: accepting what it queues, then closing, still lost the few that
    came in between. With their SYN dropped, clients send it again a second later (TCP's first
    retransmission), when the listener has left the group and another socket of it takes them. The
    connections it accepts from now on inherit the filter, which does them no harm: none gets a SYN.

    Returns False where the kernel refuses the filter: with ``kernel.unprivileged_bpf_disabled`` set (Debian's
    default is 2), attaching one takes ``CAP_NET_ADMIN``, which a container or a hardened unit does not
    give. The listener then closes right after its queue is accepted, and a connection completed in
    between is reset.
    """
    program = struct.pack("HP", len(_SYN_DROPPING_PROGRAM), ctypes.addressof(_SYN_DROPPING_FILTER))
    try:
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, program)
    except PermissionError:
        return False
    return True


def _sockets() -> Iterator[tuple[str, int, socket.socket]]:
    """This process's sockets: each one's inode (``socket:[123]``, which no later socket reuses while this one
    exists, unlike its descriptor's number), its descriptor, and a duplicate to inspect it (closed after)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            inode = os.readlink(f"/proc/self/fd/{fd}")
            if not inode.startswith("socket:"):
                continue
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:  # NOTE: closed meanwhile (the directory's own descriptor, one of another thread)
            continue
        with probe:
            yield inode, fd, probe


def _is_tcp_on(probe: socket.socket, port: int) -> bool:
    return (
        probe.type == socket.SOCK_STREAM
        and probe.family in (socket.AF_INET, socket.AF_INET6)
        and probe.getsockname()[1] == port
    )


def listening_sockets(port: int) -> dict[str, int]:
    """This process's TCP sockets that listen on ``port`` (any address): their descriptor by socket inode.

    NOTE: for listeners that a library opens for itself (grpcio's), so that the worker can still
    :func:`refuse_handshakes` on them when it leaves rotation: grpcio takes no socket from its caller.
    """
    found = {}
    for inode, fd, probe in _sockets():
        try:
            if _is_tcp_on(probe, port) and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                found[inode] = fd
        except OSError:
            continue
    return found


def has_connections(port: int | None, unix_paths: Collection[str] = ()) -> bool:
    """Whether this process holds a connection accepted on TCP ``port`` or on a Unix socket of ``unix_paths``
    (what a library's server accepted, which it does not tell)."""
    for _, _, probe in _sockets():
        try:
            if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            if probe.family == socket.AF_UNIX:
                if probe.getsockname() in unix_paths:
                    return True
            elif port is not None and _is_tcp_on(probe, port):
                return True
        except OSError:
            continue
    return False


def refuse_handshakes_on(fd: int) -> bool:
    """:func:`refuse_handshakes` on the socket of descriptor ``fd`` (a socket another library owns)."""
    with socket.socket(fileno=os.dup(fd)) as sock:  # NOTE: a filter belongs to the socket, not the descriptor
        return refuse_handshakes(sock)
