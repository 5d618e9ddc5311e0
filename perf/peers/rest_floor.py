"""The REST transport floor (issue 15): a fixed answer under tfaas's gunicorn + uvicorn stack.

Run by ``perf/bench.py``::

    gunicorn -w 2 --reuse-port -b 127.0.0.1:P -k perf.peers.rest_floor.FloorWorker perf.peers.rest_floor:app

What it keeps of tfaas's transport: gunicorn's master and as many workers, each with its own
``SO_REUSEPORT`` socket (gunicorn's ``--reuse-port``: a socket per worker, as tfaas's workers open their
own), uvicorn's worker with tfaas's settings (:attr:`TfaasWorker.CONFIG_KWARGS`: uvloop, no lifespan,
no websockets, no server header, no access log) and tfaas's HTTP protocol
(:class:`~tfaas.server.http_protocol.HttpProtocol` with the default settings' connection limits). What
it leaves out: everything a request does past the transport. The app reads the whole body (as tfaas's
front does before it decodes) and answers the same fixed JSON to every request, with its
Content-Length.
"""

from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable

from uvicorn_worker import UvicornWorker

from tfaas.config import Settings
from tfaas.server.http_protocol import ConnectionLimits, HttpProtocol
from tfaas.server.worker import TfaasWorker

ANSWER = b'{"predictions": [[0.5]]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable]) -> None:
    """Read the request's body to its end, answer :data:`ANSWER`."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


class FloorWorker(UvicornWorker):
    """uvicorn's gunicorn worker with a tfaas worker's uvicorn settings and HTTP protocol."""

    CONFIG_KWARGS = TfaasWorker.CONFIG_KWARGS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout
        self.config.http = functools.partial(HttpProtocol, limits=ConnectionLimits.from_settings(Settings()))
