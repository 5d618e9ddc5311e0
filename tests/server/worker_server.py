"""A uvicorn server run as a worker runs it (uvloop, the HTTP protocol, no socket of its own: a
:class:`Rotation`'s listener), in a thread of the test process."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvloop
from uvicorn import Config

from tests.e2e.server import wait_for
from tfaas.server.http_protocol import ConnectionLimits, HttpProtocol
from tfaas.server.rotation import Rotation
from tfaas.server.worker import RotatingServer


@contextmanager
def serving(app: Any, limits: ConnectionLimits, rotation: Rotation) -> Iterator[RotatingServer]:
    """Serve ``app`` on ``rotation`` until the end of the block; in rotation at the start if it was set so."""
    http = functools.partial(HttpProtocol, limits=limits)
    server = RotatingServer(Config(app, http=http, lifespan="off", log_config=None, timeout_keep_alive=5), rotation)
    thread = threading.Thread(target=lambda: uvloop.run(server.serve(sockets=[])), name="worker-loop", daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, interval=0.01)
    time.sleep(0.05)  # NOTE: attach() has run; the wanted state applies on the loop right after
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "the server did not stop"
