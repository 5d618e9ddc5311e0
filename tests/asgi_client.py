"""A test client of a worker's ASGI app, driven in-process: the path production requests take.

Requests are built as Flask's test client builds them (Werkzeug's ``EnvironBuilder``: ``json=``, ``data=``
with form fields and files, ``headers=``), sent to the app as one ASGI HTTP request, and answered as a
Werkzeug response (``status_code``, ``headers``, ``data``, ``json``, ``mimetype``).
"""

from __future__ import annotations

import asyncio
from functools import partialmethod
from typing import Any
from urllib.parse import quote

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from tfaas.inference.service import InferenceService
from tfaas.server.app import create_app
from tfaas.server.asgi import AsgiFront
from tfaas.server_core import ServerCore


class AnsweredResponse(Response):
    """A response as the app sent it: its Content-Length is the app's, not recomputed (a HEAD has none)."""

    automatically_set_content_length = False


class AsgiClient:
    """Sends requests to ``app`` on an event loop of its own; :meth:`close` ends it."""

    def __init__(self, app: Any, service: InferenceService | None = None) -> None:
        self.app = app
        self._service = service
        self._loop = asyncio.new_event_loop()

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the loop, and the service this client was made with."""
        self._loop.close()
        if self._service is not None:
            self._service.close()

    def open(self, path: str, method: str = "GET", *, pieces: int = 1, **request: Any) -> AnsweredResponse:
        """``method path`` (``request`` as Flask's test client takes it), its body sent in ``pieces`` messages."""
        builder = EnvironBuilder(path=path, method=method, **request)
        try:
            environ = builder.get_environ()
            body = environ["wsgi.input"].read()
        finally:
            builder.close()
        return self._loop.run_until_complete(self._call(_scope(environ), body, pieces))

    get = partialmethod(open, method="GET")
    head = partialmethod(open, method="HEAD")
    options = partialmethod(open, method="OPTIONS")
    post = partialmethod(open, method="POST")
    put = partialmethod(open, method="PUT")
    delete = partialmethod(open, method="DELETE")

    async def _call(self, scope: dict[str, Any], body: bytes, pieces: int) -> AnsweredResponse:
        size = -(-len(body) // pieces) or 1
        messages = [
            {"type": "http.request", "body": body[start : start + size], "more_body": start + size < len(body)}
            for start in range(0, max(len(body), 1), size)
        ]
        answered = asyncio.Event()
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await answered.wait()  # NOTE: as a server: the client goes away once it has its answer
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    answered.set()

        await self.app(scope, receive, send)
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]]
        return AnsweredResponse(b"".join(parts), start["status"], headers)


def _scope(environ: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of the request ``environ`` describes."""
    path = environ["PATH_INFO"].encode("latin-1").decode("utf-8")
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").lower().encode(), environ[key].encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": "http",
        "path": path,
        "raw_path": quote(path).encode(),
        "query_string": environ["QUERY_STRING"].encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }


def worker_client(core: ServerCore, threads: int = 2) -> AsgiClient:
    """A client of the ASGI app a worker serves over ``core``: its inference service, the Flask app and the
    ASGI front, built as the worker builds them. Closing it closes the service (not the core)."""
    service = InferenceService(core, threads)
    return AsgiClient(AsgiFront(service, create_app(service), threads), service)
