"""The gunicorn worker class: uvicorn (httptools' C parser on uvloop) serving the worker's ASGI front.

gunicorn stays the process manager (workers, timeouts, SIGHUP, systemd's READY=1), with no sockets:
each worker runs one uvicorn server, speaking HTTP through
:class:`~tfaas.server.http_protocol.HttpProtocol`, on the listener that its
:class:`~tfaas.server.rotation.Rotation` opens and closes.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import socket
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from tfaas.server.http_protocol import ConnectionLimits, HttpProtocol
from tfaas.server.rotation import Rotation


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
        """As uvicorn_worker's, with no socket: :class:`RotatingServer` serves the app's rotation."""
        if not self.alive:  # NOTE: a stop asked for while the core was being built: never start serving
            return
        self.config.app = self.wsgi
        assert self.app.rotation is not None  # NOTE: made in load(), which made self.wsgi
        server = RotatingServer(config=self.config, rotation=self.app.rotation)
        self._install_sigquit_handler()
        await server.serve(sockets=[])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class RotatingServer(Server):
    """uvicorn's server with no listener of its own: once started, it serves the listener of
    ``rotation`` (opened and closed on request), and at shutdown it first leaves rotation, accepting
    what the listener queued; uvicorn's shutdown then serves those connections
    (:meth:`HttpProtocol.shutdown`)."""

    def __init__(self, config: Config, rotation: Rotation) -> None:
        super().__init__(config)
        self.rotation = rotation

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.rotation.attach(asyncio.get_running_loop(), self)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.rotation.detach()
        await super().shutdown(sockets=sockets)
