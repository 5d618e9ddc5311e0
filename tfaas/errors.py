"""One error hierarchy for the whole server.

Each class carries TF Serving's canonical error-code name and the HTTP status that TF Serving's REST
layer maps that code to, so the transport turns any of them into ``{"error": message}`` in one place.
"""

from __future__ import annotations

from typing import Sequence


class TfaasError(Exception):
    """Base of every error the server reports to a client."""

    code: str = "UNKNOWN"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(TfaasError):
    """The request is malformed or does not fit the model (HTTP 400)."""

    code = "INVALID_ARGUMENT"
    http_status = 400


class SignatureNotFound(InvalidArgument):
    """A predict names a signature the version does not have. TF Serving's REST API answers it this way (400,
    the message below); its gRPC API answers ``FAILED_PRECONDITION`` (``Serving signature key "x" not found.``)."""

    def __init__(self, signature_name: str) -> None:
        super().__init__(f'Serving signature name: "{signature_name}" not found in signature def')
        self.signature_name = signature_name


class FailedPrecondition(TfaasError):
    """The system is not in a state the request needs (HTTP 400, as in TF Serving)."""

    code = "FAILED_PRECONDITION"
    http_status = 400


class NotFound(TfaasError):
    """An unknown model, version or label (HTTP 404)."""

    code = "NOT_FOUND"
    http_status = 404


class MethodNotAllowed(TfaasError):
    """The path exists but not with this HTTP method (HTTP 405); ``allowed`` are the methods it takes."""

    code = "UNIMPLEMENTED"
    http_status = 405

    def __init__(self, message: str, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class Unauthenticated(TfaasError):
    """A call that needs credentials it did not bring (HTTP 401)."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(TfaasError):
    """A call the server is configured to refuse, e.g. a write while read-only (HTTP 403)."""

    code = "PERMISSION_DENIED"
    http_status = 403


class Conflict(TfaasError):
    """A write that lost a race with another write, e.g. an upload to a model deleted meanwhile (HTTP 409)."""

    code = "ABORTED"
    http_status = 409


class PayloadTooLarge(TfaasError):
    """An upload over the configured size limit (HTTP 413)."""

    code = "RESOURCE_EXHAUSTED"
    http_status = 413


class Unavailable(TfaasError):
    """The model exists but cannot answer yet, e.g. it is still loading (HTTP 503)."""

    code = "UNAVAILABLE"
    http_status = 503


class DeadlineExceeded(TfaasError):
    """The request took longer than the server allows it (HTTP 504, as TF Serving maps the code)."""

    code = "DEADLINE_EXCEEDED"
    http_status = 504


class Unimplemented(TfaasError):
    """The request asks for something this server does not support (HTTP 501)."""

    code = "UNIMPLEMENTED"
    http_status = 501


class Internal(TfaasError):
    """A fault of the server itself, never of the client (HTTP 500)."""

    code = "INTERNAL"
    http_status = 500


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending field (``models[1].base_path: ...``)."""
