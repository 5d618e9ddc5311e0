"""The one mapping from errors to HTTP responses: always ``{"error": "..."}`` with JSON content type."""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from tfaas.errors import MethodNotAllowed, TfaasError

log = logging.getLogger("tfaas.server")


def error_body(message: str) -> bytes:
    """A JSON error body as TF Serving sends it."""
    return orjson.dumps({"error": message})


def error_response(message: str, status: int, headers: Headers | None = None) -> Response:
    """A JSON error response as TF Serving sends it, with ``headers`` besides its content type."""
    return Response(error_body(message), status=status, mimetype="application/json", headers=headers)


def error_headers(exc: TfaasError) -> Headers:
    """What an error's response carries besides its body: a 405's ``Allow`` (RFC 9110 asks for it)."""
    return Headers({"Allow": ", ".join(exc.allowed)}) if isinstance(exc, MethodNotAllowed) else Headers()


def server_fault_message(exc: Exception) -> str:
    """The 500's message for a bug (logged by the caller with its traceback)."""
    return f"Internal error: {type(exc).__name__}: {exc}"


def register_error_handlers(app: Flask) -> None:
    """Turn our errors, Werkzeug's own (404, 405, 413...) and any bug into JSON errors."""

    @app.errorhandler(TfaasError)
    def _tfaas_error(exc: TfaasError) -> Response:
        return error_response(exc.message, exc.http_status, error_headers(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # NOTE: Werkzeug's headers (a 405's Allow, a 401's WWW-Authenticate) are kept; its HTML type is not.
        headers = Headers([(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"])
        return error_response(exc.description or exc.name, exc.code or 500, headers)

    @app.errorhandler(Exception)
    def _server_fault(exc: Exception) -> Response:
        # NOTE: only a bug gets here; the client's mistakes are TfaasErrors raised on purpose.
        log.exception("Unhandled error while serving a request")
        return error_response(server_fault_message(exc), 500)
