"""Whether a worker takes new connections: its own ``SO_REUSEPORT`` listener, opened and closed on request.

A worker serves with no listener at first; whoever decides when it can answer (for now the worker
itself, at once) puts it in rotation with :meth:`Rotation.set`, and takes it out the same way, from
any thread. Leaving rotation loses no connection: the kernel gives the listener no new ones, the
worker accepts those the listener queued, closes the listener (not the connections it accepted),
and asks its keep-alive clients to reconnect, to the other workers of the port.

The worker's other listeners (its gRPC server: :class:`RotatingListener`) open and close with the HTTP
one, in the same steps: the worker is in rotation only while every one of them is open.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

from tfaas.server.http_protocol import HttpProtocol
from tfaas.server.listeners import listening_socket, refuse_handshakes

if TYPE_CHECKING:
    from uvicorn.server import Server

log = logging.getLogger("tfaas.server")

HANDSHAKE_SECONDS = 0.1
"""After the listener refuses new connections: how long it still waits for the handshakes under way
(their client's last ACK comes one round trip after the listener's answer)."""

QUEUE_DRAIN_SECONDS = 1.0
"""At most this long, when it leaves rotation, the worker accepts the connections its listener queues."""

CONNECTIONS_LEAVE_SECONDS = 1.0
"""At most this long, once out of rotation, the worker waits for its connections to close (each after the
response to its next request) before it says it left: what it does next (a load) must not delay them."""

IDLE_SECONDS = 0.05
"""A connection whose client sent nothing for this long after its last response no longer holds up the
leave: a client that keeps requests coming sends its next one sooner (a poller's idle connection may wait
for its next poll)."""


class RotatingListener(Protocol):
    """Another listener of the worker (another protocol), opened and closed with its HTTP listener."""

    async def open(self) -> None:
        """Take new connections (raise where it cannot: the rotation stays out and tries again)."""

    async def close(self, shutdown: bool) -> None:
        """Take no new connection, and let the calls under way finish: all of them at ``shutdown``; else
        wait for them about as long as the HTTP connections are waited for (they finish later if they must)."""

    def shed(self) -> None:
        """Ask the connections open now to reconnect (to any worker of the port)."""


class Rotation:
    """Whether this worker is in rotation: takes new connections on its own ``SO_REUSEPORT`` listener.

    :meth:`set` and :meth:`shed_connections` may be called from any thread, before the worker serves
    too; the changes happen on the worker's event loop, in order, once :meth:`attach`\\ ed.
    ``on_change(taking)`` is called there after the listeners opened, as a leave begins and after it
    ended, with whether the worker takes new connections: the coordinator must not count on a worker
    that is leaving (its connections may take a second to go), while its loads wait until it left.
    """

    def __init__(self, host: str, port: int, backlog: int, on_change: Callable[[bool], None] | None = None) -> None:
        self._address = host, port
        self._backlog = backlog
        self._others: list[RotatingListener] = []
        self._on_change = on_change
        self._lock = threading.Lock()  # NOTE: keeps set() off a loop that detach() let go (it may be closed)
        self._wanted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._socket: socket.socket | None = None
        self._changing: asyncio.Task[None] | None = None
        self._leaving = False

    @property
    def listening(self) -> bool:
        """Whether the worker is in rotation now (not whether it is wanted): its listener is open, or closed
        with its connections still leaving."""
        return self._listener is not None

    @property
    def leaving(self) -> bool:
        """Whether the worker is leaving rotation: it takes no new connection, its connections still leave."""
        return self._leaving

    def add_listener(self, listener: RotatingListener) -> None:
        """Open and close ``listener`` with the HTTP listener from now on (call before :meth:`attach`)."""
        assert self._loop is None, "listeners are added before the rotation serves"
        self._others.append(listener)

    def set(self, listening: bool) -> None:
        """Want the worker in rotation or out of it; the last call wins (a change under way finishes first)."""
        with self._lock:
            self._wanted = listening
            self._soon(self._follow)

    def shed_connections(self) -> None:
        """Ask every connection open now to close after a response that says ``Connection: close``: the
        current one if a request is under way, else the next (its client reconnects)."""
        with self._lock:
            self._soon(self._shed)

    def attach(self, loop: asyncio.AbstractEventLoop, server: Server) -> None:
        """Serve the listener on ``server`` (a started uvicorn server running on ``loop``) from now on,
        and open it if wanted."""
        with self._lock:
            self._loop, self._server = loop, server
            self._soon(self._follow)

    async def detach(self) -> None:
        """At the worker's shutdown, on its loop: follow :meth:`set` no more, and leave rotation."""
        with self._lock:
            self._loop = None
        if self._changing is not None:
            await self._changing
        if self.listening:
            await self._move(False, shutdown=True)

    def _soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop, if attached (call with the lock held)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(callback)

    def _follow(self) -> None:
        if self._changing is None and self._loop is not None:
            self._changing = self._loop.create_task(self._change())

    async def _change(self) -> None:
        """Open or close the listener until it is as wanted (the wish may change meanwhile)."""
        try:
            while self._loop is not None and self._wanted != self.listening:
                if not await self._move(self._wanted):
                    return
        finally:
            self._changing = None

    async def _move(self, listening: bool, shutdown: bool = False) -> bool:
        """Open or close the listener; False where it failed (logged). At ``shutdown``, uvicorn closes the
        connections itself: there is nothing to wait for."""
        try:
            await (self._open() if listening else self._close(wait_for_connections=not shutdown))
        except Exception:  # NOTE: the port taken by a socket without SO_REUSEPORT, no descriptor left, ...
            change, (host, port) = "enter" if listening else "leave", self._address
            log.exception(
                "Worker %s could not %s rotation on %s:%s (set() tries again)", os.getpid(), change, host, port
            )
            return False
        return True

    async def _open(self) -> None:
        loop, server = self._loop, self._server
        assert loop is not None and server is not None
        create_protocol = functools.partial(
            server.config.http_protocol_class,
            config=server.config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
        )  # NOTE: as uvicorn's Server.startup makes its protocols
        sock = listening_socket(*self._address, self._backlog)
        try:
            listener = await loop.create_server(create_protocol, sock=sock, backlog=self._backlog)
        except BaseException:
            sock.close()
            raise
        opened: list[RotatingListener] = []
        try:
            for other in self._others:
                await other.open()
                opened.append(other)
        except BaseException:  # NOTE: all or none: a worker half in rotation would take what it cannot serve
            listener.close()
            await asyncio.gather(*(other.close(shutdown=True) for other in opened))
            raise
        self._listener, self._socket = listener, sock
        self._changed()

    async def _close(self, wait_for_connections: bool) -> None:
        self._leaving = True
        self._changed()
        try:
            await asyncio.gather(
                self._close_http(wait_for_connections),
                *(other.close(shutdown=not wait_for_connections) for other in self._others),
            )
        finally:
            self._leaving = False
        self._listener = self._socket = None
        self._changed()

    async def _close_http(self, wait_for_connections: bool) -> None:
        assert self._listener is not None and self._socket is not None
        if not refuse_handshakes(self._socket):
            warn_unfiltered()
        await _accept_queued(self._socket)
        self._listener.close()  # NOTE: closes the listener only: the connections it accepted stay
        self._shed_http()
        if wait_for_connections:
            await self._connections_leave()

    async def _connections_leave(self) -> None:
        """Wait until every connection closed or sat idle for :data:`IDLE_SECONDS`, for
        :data:`CONNECTIONS_LEAVE_SECONDS` at most."""
        assert self._server is not None
        connections = self._server.server_state.connections
        deadline = time.monotonic() + CONNECTIONS_LEAVE_SECONDS
        while any(_in_use(c) for c in list(connections)) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def _changed(self) -> None:
        change = "is leaving" if self._leaving else "entered" if self.listening else "left"
        log.debug("Worker %s %s rotation", os.getpid(), change)
        if self._on_change is not None:
            try:
                self._on_change(self.listening and not self._leaving)
            except Exception:  # NOTE: the listener changed all the same; the next change calls again
                log.exception("The rotation's on_change failed")

    def _shed(self) -> None:
        for other in self._others:
            other.shed()
        self._shed_http()

    def _shed_http(self) -> None:
        if self._server is not None:
            for connection in list(self._server.server_state.connections):
                if isinstance(connection, HttpProtocol):
                    connection.close_after_next_response()


@functools.cache
def warn_unfiltered() -> None:
    """Say once per worker that leaving rotation may reset a connection (see ``refuse_handshakes``)."""
    log.warning(
        "Worker %s cannot filter new connections off its listener (no CAP_NET_ADMIN, and unprivileged BPF is"
        " off): when it leaves rotation, a connection that completes as its listener closes is reset",
        os.getpid(),
    )


def _in_use(connection: object) -> bool:
    """Whether a connection has a request under way, or had one a moment ago."""
    return not isinstance(connection, HttpProtocol) or connection.idle_seconds() < IDLE_SECONDS


async def _accept_queued(listener: socket.socket) -> None:
    """Let the event loop accept what ``listener`` queues, until it queues none after
    :data:`HANDSHAKE_SECONDS` (or for :data:`QUEUE_DRAIN_SECONDS`); the caller closes it right after,
    with no await between.

    NOTE: the kernel completes connections into a listener's queue until the listener closes, and
    resets those still queued when it does: under load (a busy event loop accepts late), requests
    sent just before a SIGTERM were reset.
    """
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < QUEUE_DRAIN_SECONDS:
        if poller.poll(0):
            await asyncio.sleep(0)  # NOTE: each turn of the loop polls its listeners and accepts what they queue
        elif elapsed < HANDSHAKE_SECONDS:
            await asyncio.sleep(0.01)
        else:
            return
