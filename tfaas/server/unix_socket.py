"""``grpc_socket_path``: the gRPC API on a Unix socket too, served by every worker in rotation.

A Unix socket path has one listening socket, no ``SO_REUSEPORT`` group, and grpcio listens only on what it
binds itself: it takes a path over from the socket bound there (unlinking it) and unlinks it when it stops.
So the master binds the path once (:func:`shared_listener`) and every worker inherits it; a worker in
rotation accepts from it (:class:`UnixSocketForwarder`) and passes each connection's bytes both ways to its
own gRPC server, which listens on a private socket of the worker's. A worker out of rotation accepts
nothing, and what the socket queues waits for a worker in rotation: the kernel drops no connection.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from typing import cast

FORWARD_BUFFER_BYTES = 1 << 20
"""A connection stops reading one side while more than this waits to be written to the other."""


def shared_listener(path: str, backlog: int) -> socket.socket:
    """Listen on the Unix socket ``path`` (in the master, before the workers fork).

    A socket left there by a server that is gone is replaced; ``RuntimeError`` when a server listens on it,
    or when ``path`` is something else than a socket.
    """
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise RuntimeError(f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(path) not in (errno.ECONNREFUSED, errno.ENOENT):
                raise RuntimeError(f"Connection in use: {path}")
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(backlog)
    except OSError as error:
        listener.close()
        raise RuntimeError(f"Cannot listen on {path}: {error.strerror or error}") from None
    return listener


class UnixSocketForwarder:
    """Accepts from the shared ``listener`` while open, and forwards each connection to ``target`` (the Unix
    socket path of this worker's gRPC server). Closing stops accepting; the connections go on until either
    side ends them (the gRPC server's GOAWAY passes through)."""

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._server: asyncio.AbstractServer | None = None

    async def open(self, target: str) -> None:
        loop = asyncio.get_running_loop()
        # NOTE: a descriptor of its own, which the loop closes with its server; the shared one stays open
        sock = socket.socket(fileno=os.dup(self._listener.fileno()))
        try:
            self._server = await loop.create_unix_server(lambda: _Inbound(target), sock=sock)
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


class _Side(asyncio.Protocol):
    """One side of a forwarded connection: what it receives is written to the other side."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Side | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # NOTE: uvloop's transports are not asyncio's classes
        self.transport.set_write_buffer_limits(high=FORWARD_BUFFER_BYTES)

    def data_received(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)

    def eof_received(self) -> bool:
        if self.other is not None and self.other.transport is not None and self.other.transport.can_write_eof():
            self.other.transport.write_eof()
            return True  # NOTE: half closed: the other direction may still carry the last answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()


class _Inbound(_Side):
    """A client's connection: what it sends before the connection to ``target`` is made waits for it."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self._target = target
        self._early: list[bytes] = []
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()  # NOTE: uvloop may have read some already: kept in _early
        asyncio.get_running_loop().create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        if self.other is None:
            self._early.append(data)
        else:
            super().data_received(data)

    def eof_received(self) -> bool:
        if self.other is None:
            self._early_eof = True
            return True
        return super().eof_received()

    async def _connect(self) -> None:
        assert self.transport is not None
        outbound = _Side()
        outbound.other = self
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: outbound, self._target)
        except OSError:  # NOTE: the worker's gRPC server just stopped: the client connects again
            self.transport.close()
            return
        self.other = outbound
        assert outbound.transport is not None
        if self.transport.is_closing():
            outbound.transport.close()
            return
        outbound.transport.write(b"".join(self._early))
        self._early = []
        if self._early_eof:
            outbound.transport.write_eof()
        self.transport.resume_reading()
