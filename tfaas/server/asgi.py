"""The ASGI front of a worker: TF Serving's predict calls served natively, every other request passed
to the Flask app.

Why: under ``wrk -c32`` on dense42, gunicorn's ``gthread`` worker and Flask cost about half of the
GIL-holding time of a batch-1 predict (py-spy). Served by uvicorn (C HTTP parser, uvloop), with the
predict path skipping Flask's contexts and hooks, the same worker answered about twice the requests
(perf/RESULTS.md). The Flask app stays complete (predict included) and serves everything else: its
routes are WSGI, run on a thread pool by ``a2wsgi``.

The predict lane reads the body on the event loop. A small body (up to ``LOOP_BODY_BYTES``) is then
parsed, decoded and, once the model has run, encoded on the loop too: the model call goes to the
batcher's queue with a callback, and the batch thread that runs it wakes the loop, so a batched request
costs two thread hand-offs (loop → batch thread → loop) and holds no thread while it waits. A servable
that does not batch (or a request it cannot batch) runs on a pool thread. A large body does all its
work on a pool thread. Answers and errors are exactly those of the Flask route: the same steps
(``rest_api.parse_predict`` … ``encode_predict``) and the same ``{"error": ...}`` mapping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator

import numpy as np
from a2wsgi import WSGIMiddleware
from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from tfaas import request_timing
from tfaas.batching.batching_servable import queue_seconds
from tfaas.codecs import tf_serving_json as rest_api
from tfaas.errors import PayloadTooLarge, TfaasError
from tfaas.logs import ACCESS_LOG_FORMAT
from tfaas.server import metrics
from tfaas.server.errors import error_body, server_fault_message
from tfaas.server_core import ServerCore

log = logging.getLogger("tfaas.server")
_access_log = logging.getLogger("gunicorn.access")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ClientDisconnected(Exception):
    """The client went away before it had sent the whole body."""


class AsgiFront:
    """The ASGI app of one worker over ``core``, with ``wsgi_app`` (the Flask app) for everything but predict.

    ``threads`` sizes each of the two thread pools (predict, and the Flask app's requests).
    """

    def __init__(self, core: ServerCore, wsgi_app: Flask, threads: int) -> None:
        self._core = core
        self._max_body = core.settings.max_request_body_bytes
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tfaas-predict")
        self._wsgi = WSGIMiddleware(_input_terminated(wsgi_app), workers=threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # NOTE: no lifespan or websockets (the worker turns both off)
            return
        started = time.perf_counter()
        match = rest_api.predict_match(scope["path"]) if scope["method"] == "POST" else None
        if _access_log.handlers:
            send = _AccessLine(scope, send, started)
        if match is None:
            await self._wsgi(scope, receive, send)
        else:
            await self._predict(match, scope, receive, send)

    async def _predict(self, match: Any, scope: Scope, receive: Receive, send: Send) -> None:
        labels = metrics.RequestLabels(api="predict", model=match.group("name"))
        try:
            data = await _read_body(scope, receive, self._max_body)
        except ClientDisconnected:
            return
        except TfaasError as exc:
            status, parts = exc.http_status, [error_body(exc.message)]
            metrics.record(self._core, self._core.metrics, labels, status)
        else:
            if len(data) <= LOOP_BODY_BYTES:
                status, parts = await self._answer_on_loop(match, data, labels)
            else:
                loop = asyncio.get_running_loop()
                status, parts = await loop.run_in_executor(self._pool, self._answer, match, data, labels)
        # NOTE: with no content-length uvicorn would send the body chunked, which clients that frame
        # responses by Content-Length (as TF Serving sends them) cannot read.
        headers = [*_JSON_HEADERS, (b"content-length", str(sum(map(len, parts))).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for part in parts[:-1]:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": parts[-1]})

    def _answer(self, match: Any, data: bytes | bytearray, labels: metrics.RequestLabels) -> tuple[int, list[bytes]]:
        """Status and body of a predict call, all on a pool thread, recorded in the metrics."""
        request_timing.begin()
        with _answered(self._core, labels) as answer:
            answer.body = rest_api.predict_body(self._core, rest_api.model_spec(match), data, labels)
        return answer.status, answer.body

    async def _answer_on_loop(
        self, match: Any, data: bytes | bytearray, labels: metrics.RequestLabels
    ) -> tuple[int, list[bytes]]:
        """Status and body of a small predict call: parse and encode on the loop, the model call awaited."""
        request_timing.begin()
        with _answered(self._core, labels) as answer:
            call = rest_api.parse_predict(data)
            with self._core.get_handle(rest_api.model_spec(match)) as handle:
                request = rest_api.decode_predict(call, handle, labels)
                outputs = await self._run(handle.servable, call.signature_name, request.inputs)
            answer.body = rest_api.encode_predict(outputs, request.columnar)
        return answer.status, answer.body

    async def _run(self, servable: Any, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model call: through the batcher's queue when the servable batches this request (its batch
        thread wakes the loop), else on a pool thread."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        submit = getattr(servable, "submit", None)
        task = None
        if submit is not None:
            done = loop.create_future()
            task = submit(signature_name, inputs, lambda _: loop.call_soon_threadsafe(_settle, done))
        try:
            if task is None:
                return await loop.run_in_executor(self._pool, servable.run, signature_name, inputs)
            await done
            request_timing.add("queue", queue_seconds(task))
            return task.wait()
        finally:
            request_timing.add("run", time.perf_counter() - started)


LOOP_BODY_BYTES = 64 * 1024
"""Predict bodies up to this size are parsed and answered on the event loop (a one-row dense42 body
takes ~20 µs); larger ones on a pool thread, so a big batch never stalls the worker's other connections."""


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


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():  # NOTE: cancelled when the worker stopped waiting (graceful timeout)
        done.set_result(None)


class _Answer:
    status: int = 200
    body: list[bytes]  # NOTE: in pieces, as ``rest_api.encode_predict`` writes it


@contextmanager
def _answered(core: ServerCore, labels: metrics.RequestLabels) -> Iterator[_Answer]:
    """The answer of the ``with`` body: its ``body`` as set, or the error it raised as the Flask app maps
    it; recorded in the metrics either way."""
    answer = _Answer()
    try:
        yield answer
    except TfaasError as exc:
        answer.status, answer.body = exc.http_status, [error_body(exc.message)]
    except Exception as exc:  # NOTE: only a bug gets here, as in the Flask app's error handlers
        log.exception("Unhandled error while serving a request")
        answer.status, answer.body = 500, [error_body(server_fault_message(exc))]
    metrics.record(core, core.metrics, labels, answer.status)


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
