"""The gunicorn worker class: uvicorn (httptools' C parser on uvloop) serving the worker's ASGI front.

gunicorn stays the process manager (workers, per-worker sockets, timeouts, SIGHUP, systemd's
READY=1); each worker runs one uvicorn server on the sockets gunicorn gave it, speaking HTTP through
:class:`~tfaas.server.http_protocol.HttpProtocol`.
"""

from __future__ import annotations

import asyncio
import functools
import select
import signal
import socket
import sys
import time
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from tfaas.server.http_protocol import ConnectionLimits, HttpProtocol

QUEUE_DRAIN_SECONDS = 1.0
"""At most this long, at shutdown, the worker accepts the connections its listener still queues."""


class TfaasWorker(UvicornWorker):
    """uvicorn's gunicorn worker with tfaas's settings.

    No lifespan protocol (the worker builds its core in gunicorn's ``load()``), no websockets, no
    ``server`` header (TF Serving sends none), and no uvicorn access lines (the ASGI front writes
    gunicorn's). A SIGTERM waits for in-flight requests up to gunicorn's ``graceful_timeout``.
    """

    CONFIG_KWARGS = {
        "loop": "uvloop",
        "ws": "none",
        "lifespan": "off",
        "server_header": False,
        "access_log": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout
        self.config.http = functools.partial(HttpProtocol, limits=ConnectionLimits.from_settings(self.app.settings))

    def init_signals(self) -> None:
        """SIGTERM and SIGINT end the worker through its normal exit, so ``worker_exit`` unloads the models.

        NOTE: uvicorn handles both while it serves, then restores the handlers it found and raises the
        signal again; with the default action found there (uvicorn_worker's), that second delivery
        killed the worker before gunicorn's ``worker_exit`` could run.
        """
        super().init_signals()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_requested)

    def _stop_requested(self, signum: int, frame: Any) -> None:
        self.alive = False

    async def _serve(self) -> None:
        """As uvicorn_worker's, with :class:`DrainingServer` on the sockets themselves.

        NOTE: gunicorn's socket wrappers are not ``socket.socket``s, so uvloop, which closes a
        listener's descriptor itself, then closed the wrapper too, which closed the descriptor again:
        EBADF ("Error while closing socket", per worker at every stop), or another file's descriptor
        had the number been reused meanwhile. A ``socket.socket`` it detaches instead.
        """
        if not self.alive:  # NOTE: a stop asked for while the core was being built: never start serving
            return
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=[listener.sock for listener in self.sockets])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class DrainingServer(Server):
    """uvicorn's server, which at shutdown first accepts what its listeners queue.

    NOTE: the kernel completes connections into a listener's queue until the listener closes, and
    resets those still queued when it does: under load (a busy event loop accepts late), requests
    sent just before a SIGTERM were reset. The connections accepted here are then served
    (:meth:`HttpProtocol.shutdown`).
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await _accept_queued(sockets or [])
        await super().shutdown(sockets=sockets)


async def _accept_queued(listeners: list[socket.socket]) -> None:
    """Let the event loop accept until no listener has a connection queued (or for
    :data:`QUEUE_DRAIN_SECONDS`); the caller closes them right after, with no await between."""
    poller = select.poll()
    for listener in listeners:
        poller.register(listener.fileno(), select.POLLIN)
    deadline = time.monotonic() + QUEUE_DRAIN_SECONDS
    while poller.poll(0) and time.monotonic() < deadline:
        await asyncio.sleep(0)  # NOTE: each turn of the loop polls its listeners and accepts what they queue
