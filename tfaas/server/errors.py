"""The one mapping from errors to HTTP responses: always ``{"error": "..."}`` with JSON content type.

:func:`error_answer` maps an exception for the ASGI front (TF Serving's ``/v1``) and for the Flask app's
error handlers alike.
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from tfaas.errors import MethodNotAllowed, TfaasError

log = logging.getLogger("tfaas.server")

Headers = list[tuple[str, str]]


def error_body(message: str) -> bytes:
    """A JSON error body as TF Serving sends it."""
    return orjson.dumps({"error": message})


def error_answer(exc: Exception) -> tuple[int, bytes, Headers]:
    """Status, body and headers (besides the content type) of the answer to ``exc``: a ``TfaasError``'s
    own status and message, with a 405's ``Allow`` (RFC 9110 asks for it); for anything else, a bug,
    a 500 (logged with its traceback)."""
    if isinstance(exc, TfaasError):
        headers = [("Allow", ", ".join(exc.allowed))] if isinstance(exc, MethodNotAllowed) else []
        return exc.http_status, error_body(exc.message), headers
    # NOTE: only a bug gets here; the client's mistakes are TfaasErrors raised on purpose.
    log.exception("Unhandled error while serving a request")
    return 500, error_body(f"Internal error: {type(exc).__name__}: {exc}"), []


def _json_response(status: int, body: bytes, headers: Headers) -> Response:
    return Response(body, status=status, mimetype="application/json", headers=headers)


def register_error_handlers(app: Flask) -> None:
    """Turn our errors, Werkzeug's own (404, 405, 413...) and any bug into JSON errors."""

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Response:
        return _json_response(*error_answer(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # NOTE: Werkzeug's headers (a 405's Allow, a 401's WWW-Authenticate) are kept; its HTML type is not.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return _json_response(exc.code or 500, error_body(exc.description or exc.name), headers)
