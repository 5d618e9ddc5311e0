"""The ASGI front of a worker, its HTTP transport: TF Serving's ``/v1`` API served natively by its REST
front (:mod:`tfaas.fronts.tf_serving_rest`), the Open Inference Protocol's ``/v2`` by its front
(:mod:`tfaas.fronts.v2_rest`), Simple TensorFlow Serving's ``POST /`` by its front (:mod:`tfaas.fronts.sts`),
every other request passed to the Flask app (``GET /``, the dashboard, too). In front of all of them, when
the settings ask for them: CORS (:mod:`tfaas.server.cors`) and HTTP basic authentication
(:mod:`tfaas.server.basic_auth`).

Why: under ``wrk -c32`` on dense42, gunicorn's ``gthread`` worker and Flask cost about half of the
GIL-holding time of a batch-1 predict (py-spy). Served by uvicorn (C HTTP parser, uvloop), with ``/v1``
skipping Flask's contexts and hooks, the same worker answered about twice the requests
(perf/RESULTS.md). The Flask app serves health, metrics, the OpenAPI document and TFaaS's API: its routes
are WSGI, run on a thread pool by ``a2wsgi``.

Here a ``/v1``, ``/v2`` or ``POST /`` request's body is read on the event loop (bounded by
``max_request_body_bytes``), its front answers it, and an error it raises is written as ``{"error": ...}``
(:func:`error_answer`, the Flask app's mapping too). Every response carries its Content-Length, and an
access line is written in gunicorn's format when ``gunicorn.access`` has a handler.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Awaitable, Callable, Sequence

from a2wsgi import WSGIMiddleware
from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from tfaas import tracing
from tfaas.errors import PayloadTooLarge, TfaasError
from tfaas.fronts import sts, tf_serving_rest, v2_rest
from tfaas.fronts.sts import StsFront
from tfaas.fronts.tf_serving_rest import RestAnswer, TfServingRest
from tfaas.fronts.v2_rest import V2Rest
from tfaas.inference.service import InferenceService
from tfaas.logs import ACCESS_LOG_FORMAT
from tfaas.server import cors
from tfaas.server.basic_auth import CHALLENGE, BasicAuth
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
    ``/v1``, ``/v2`` and ``/``; ``threads`` sizes the Flask app's thread pool."""

    def __init__(self, service: InferenceService, wsgi_app: Flask, threads: int) -> None:
        self._rest = TfServingRest(service)
        self._v2 = V2Rest(service)
        self._sts = StsFront(service)
        settings = service.core.settings
        self._max_body = settings.max_request_body_bytes
        self._auth = BasicAuth.from_settings(settings)
        self._cors = settings.enable_cors
        self._traced = service.core.tracing is not None
        self._wsgi = WSGIMiddleware(_input_terminated(wsgi_app), workers=threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # NOTE: no lifespan or websockets (the worker turns both off)
            return
        if _access_log.handlers:
            send = _AccessLine(scope, send, time.perf_counter())
        method, path, headers = scope["method"], scope["path"], scope["headers"]
        if self._cors:
            send = cors.allowing_any_origin(send)
            if cors.is_preflight(method, headers):
                await _respond(send, method, 200, [], cors.preflight_headers(headers))
                return
        if self._auth is not None and not self._auth.allows(path, headers):
            await _respond_error(send, method, self._auth.refusal(), [CHALLENGE])
            return
        if self._traced:
            tracing.receive(headers)
        if tf_serving_rest.serves(path):
            await _answer(send, method, self._rest_answer(scope, receive))
        elif v2_rest.serves(path):
            await _answer(send, method, self._v2_answer(scope, receive))
        elif sts.serves(method, path):
            await _answer(send, method, self._sts_answer(scope, receive))
        else:
            await self._wsgi(scope, receive, send)

    async def _rest_answer(self, scope: Scope, receive: Receive) -> tuple[list[bytes], Headers]:
        """A ``/v1`` request's answer from TF Serving's REST front."""
        answer = await self._rest(
            scope["method"],
            scope["path"],
            lambda: _read_body(scope, receive, self._max_body),
            scope.get("query_string", b"").decode("latin-1"),
            lambda: _origin(scope),
        )
        return _with_headers(answer)

    async def _v2_answer(self, scope: Scope, receive: Receive) -> tuple[list[bytes], Headers]:
        """A ``/v2`` request's answer from the Open Inference Protocol's front."""
        answer = await self._v2(
            scope["method"],
            scope["path"],
            lambda: _read_body(scope, receive, self._max_body),
            lambda name: _text_header(scope, name),
        )
        return _with_headers(answer)

    async def _sts_answer(self, scope: Scope, receive: Receive) -> tuple[list[bytes], Headers]:
        """A ``/`` request's answer from Simple TensorFlow Serving's front."""
        content_type = _header(scope, b"content-type")
        answer = await self._sts(
            scope["method"],
            content_type.decode("latin-1") if content_type is not None else None,
            lambda: _read_body(scope, receive, self._max_body),
        )
        return _with_headers(answer)


def _with_headers(answer: RestAnswer) -> tuple[list[bytes], Headers]:
    """A front's answer as a body and headers: its content type and others, or for an ``OPTIONS`` answer its
    methods."""
    if answer.allowed:
        return answer.parts, [(b"allow", ", ".join(answer.allowed).encode())]
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    return answer.parts, [(b"content-type", answer.content_type.encode("latin-1")), *headers]


_JSON = (b"content-type", b"application/json")


async def _answer(send: Send, method: str, answer: Awaitable[tuple[list[bytes], Headers]]) -> None:
    """Send a front's answer (its body in pieces and its headers), or the error it raised."""
    try:
        parts, headers = await answer
    except ClientDisconnected:
        return
    except Exception as exc:
        await _respond_error(send, method, exc)
        return
    await _respond(send, method, 200, parts, headers)


async def _respond_error(send: Send, method: str, exc: Exception, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Send the ``{"error": ...}`` answer to ``exc`` (see :func:`error_answer`), with ``extra`` headers."""
    status, body, headers = error_answer(exc)
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await _respond(send, method, status, [body], [_JSON, *encoded, *extra])


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
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The value of the request's first header ``name`` (lower case), if it has one."""
    return next((value for key, value in scope["headers"] if key == name), None)


def _text_header(scope: Scope, name: str) -> str | None:
    """:func:`_header` as text."""
    value = _header(scope, name.encode("latin-1"))
    return value.decode("latin-1") if value is not None else None


_HOST = re.compile(rb"[A-Za-z0-9.-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


def _origin(scope: Scope) -> str:
    """``scheme://host[:port]`` as the client reached this server: its ``Host`` header where that is a host
    name or address (the answer may be code a client runs), else the address the connection came in on."""
    host = _header(scope, b"host")
    if host is None or not _HOST.fullmatch(host):
        address, port = scope.get("server") or ("127.0.0.1", 80)
        host = (f"[{address}]" if ":" in address else address).encode() + f":{port}".encode()
    return f"{scope.get('scheme', 'http')}://{host.decode('ascii')}"


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
