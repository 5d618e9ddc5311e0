"""The ASGI front of a worker, its HTTP transport: TF Serving's ``/v1`` API served natively by its REST
front (:mod:`tfaas.fronts.tf_serving_rest`), every other request passed to the Flask app.

Why: under ``wrk -c32`` on dense42, gunicorn's ``gthread`` worker and Flask cost about half of the
GIL-holding time of a batch-1 predict (py-spy). Served by uvicorn (C HTTP parser, uvloop), with ``/v1``
skipping Flask's contexts and hooks, the same worker answered about twice the requests
(perf/RESULTS.md). The Flask app serves health, metrics, the OpenAPI document and TFaaS's API: its routes
are WSGI, run on a thread pool by ``a2wsgi``.

Here a ``/v1`` request's body is read on the event loop (bounded by ``max_request_body_bytes``), the
REST front answers it, and an error it raises is written as ``{"error": ...}`` (:func:`error_answer`, the
Flask app's mapping too). Every response carries its Content-Length, and an access line is written in
gunicorn's format when ``gunicorn.access`` has a handler.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from a2wsgi import WSGIMiddleware
from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from tfaas.errors import PayloadTooLarge, TfaasError
from tfaas.fronts import tf_serving_rest
from tfaas.fronts.tf_serving_rest import TfServingRest
from tfaas.inference.service import InferenceService
from tfaas.logs import ACCESS_LOG_FORMAT
from tfaas.server.errors import error_answer

_access_log = logging.getLogger("gunicorn.access")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class ClientDisconnected(TfaasError):
    """The client went away before it had sent the whole body: counted as TF Serving's CANCELLED (and 499,
    as nginx logs it), never answered."""

    code = "CANCELLED"
    http_status = 499


class AsgiFront:
    """The ASGI app of one worker over ``service``, with ``wsgi_app`` (the Flask app) for everything but
    ``/v1``; ``threads`` sizes the Flask app's thread pool."""

    def __init__(self, service: InferenceService, wsgi_app: Flask, threads: int) -> None:
        self._rest = TfServingRest(service)
        self._max_body = service.core.settings.max_request_body_bytes
        self._wsgi = WSGIMiddleware(_input_terminated(wsgi_app), workers=threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # NOTE: no lifespan or websockets (the worker turns both off)
            return
        if _access_log.handlers:
            send = _AccessLine(scope, send, time.perf_counter())
        if tf_serving_rest.serves(scope["path"]):
            await self._serve_rest(scope, receive, send)
        else:
            await self._wsgi(scope, receive, send)

    async def _serve_rest(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a ``/v1`` request with its REST front's answer, or with the error it raised."""
        method = scope["method"]
        try:
            answer = await self._rest(method, scope["path"], lambda: _read_body(scope, receive, self._max_body))
        except ClientDisconnected:
            return
        except Exception as exc:
            status, body, headers = error_answer(exc)
            encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            await _respond(send, method, status, [body], [_JSON, *encoded])
            return
        headers = [(b"allow", ", ".join(answer.allowed).encode())] if answer.allowed else [_JSON]
        await _respond(send, method, 200, answer.parts, headers)


_JSON = (b"content-type", b"application/json")


async def _respond(send: Send, method: str, status: int, parts: list[bytes], headers: Headers) -> None:
    """Send a response whose body is ``parts`` (none for ``HEAD``, its Content-Length all the same)."""
    # NOTE: with no content-length uvicorn would send the body chunked, which clients that frame
    # responses by Content-Length (as TF Serving sends them) cannot read.
    length = (b"content-length", str(sum(map(len, parts))).encode())
    await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
    if method == "HEAD":
        parts = []
    for part in parts[:-1]:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": parts[-1] if parts else b""})


def _input_terminated(app: Flask) -> Callable[[dict[str, Any], Any], Any]:
    """``app`` told that its ``wsgi.input`` ends where the body ends, chunked or not (a2wsgi's does).

    NOTE: without it Werkzeug reads a body without Content-Length (chunked) as empty, to guard against
    endless streams; with it, such a body is read up to ``max_content_length`` and no further (what was
    read of a longer one is then malformed: a 400, where a declared length over the limit gets a 413).
    """

    def app_with_terminated_input(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return app_with_terminated_input


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | bytearray:
    """The whole request body; a 413 past ``limit`` bytes, as the Flask app answers.

    NOTE: a body that comes in one message is taken as it is; a longer one goes into one buffer, sized by
    Content-Length where the client sends one (joining the received chunks would hold the body twice).
    """
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(_TOO_LARGE)
    body: bytearray | None = None
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk, more = message.get("body", b""), message.get("more_body", False)
        if size + len(chunk) > limit:
            raise PayloadTooLarge(_TOO_LARGE)
        if body is None:
            if not more:
                return chunk
            body = bytearray(declared or 0)
        body[size : size + len(chunk)] = chunk
        size += len(chunk)
        if not more:
            del body[size:]
            return body


_TOO_LARGE = RequestEntityTooLarge.description
"""Werkzeug's words for a 413, which the Flask app answers with."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _AccessLine:
    """A ``send`` that writes the request's access line, in gunicorn's format and atoms, once the
    response is sent (used only while ``gunicorn.access`` has a handler)."""

    def __init__(self, scope: Scope, send: Send, started: float) -> None:
        self._scope, self._send, self._started = scope, send, started
        self._status, self._bytes = 0, 0

    async def __call__(self, message: dict[str, Any]) -> None:
        await self._send(message)
        if message["type"] == "http.response.start":
            self._status = message["status"]
        elif message["type"] == "http.response.body":
            self._bytes += len(message.get("body", b""))
            if not message.get("more_body"):
                _access_log.info(ACCESS_LOG_FORMAT, self._atoms())

    def _atoms(self) -> dict[str, Any]:
        scope = self._scope
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        headers = dict(scope["headers"])
        client = scope.get("client")
        return {
            "h": client[0] if client else "-",
            "m": scope["method"],
            "U": scope["path"],
            "q": query,
            "r": f"{scope['method']} {target}{'?' + query if query else ''} HTTP/{scope['http_version']}",
            "s": str(self._status),
            "b": str(self._bytes) if self._bytes else "-",
            "B": self._bytes,
            "L": f"{time.perf_counter() - self._started:.6f}",
            "a": headers.get(b"user-agent", b"-").decode("latin-1"),
        }
