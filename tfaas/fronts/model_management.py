"""The guard of every call that changes what the server serves: TFaaS's uploads, deletes and params changes,
and the Open Inference Protocol's repository load and unload. One rule for all of them:

- off unless ``enable_model_management`` turns them on, and off again while ``read_only``;
- with an ``admin_token``, only for a request whose ``Authorization`` header is ``Bearer <admin token>``.
"""

from __future__ import annotations

import hmac
import logging

from tfaas.config import Settings
from tfaas.errors import PermissionDenied, Unauthenticated

log = logging.getLogger("tfaas.server")


def refusal(settings: Settings) -> PermissionDenied | None:
    """Why the calls that change models are refused to everyone (``None``: they are on)."""
    if not settings.enable_model_management:
        return PermissionDenied(
            "Model management is disabled: start the server with --enable_model_management to upload, delete,"
            " load, unload or change models"
        )
    if settings.read_only:
        return PermissionDenied(
            "The server is read-only: uploads, deletes, params changes, loads and unloads are turned off"
        )
    return None


def upload_refusal(settings: Settings) -> PermissionDenied | None:
    """Why uploads and deletes of the model repository are refused to everyone (``None``: they are on; an
    admin token may still guard them): as :func:`refusal`, and without a model repository to write to."""
    refused = refusal(settings)
    if refused is None and not settings.model_repository:
        return PermissionDenied("No model repository is configured (set model_repository to accept uploads)")
    return refused


def check_allowed(settings: Settings, authorization: str | None) -> None:
    """Raise the ``PermissionDenied`` or ``Unauthenticated`` a call that changes models gets, given the
    request's ``Authorization`` header; return when it may go on."""
    refused = refusal(settings)
    if refused is not None:
        raise refused
    if settings.admin_token:
        sent = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), settings.admin_token.encode()):
            raise Unauthenticated("This call needs the header 'Authorization: Bearer <admin token>'")


def warn_if_anyone_may_write(settings: Settings) -> None:
    """At start: warn when the calls that change models are on and no admin token guards them."""
    if refusal(settings) is None and not settings.admin_token:
        log.warning(
            "Model management is on without an admin_token: anyone who can reach port %d may upload, delete"
            " or change models",
            settings.rest_api_port,
        )
