"""Health endpoints for probes (Kubernetes, load balancers, systemd watchdogs).

- ``GET /healthz`` (liveness): 200 whenever the worker can answer at all. It reads nothing, so a
  model that loads slowly or a busy TensorFlow never makes it fail (and never gets the pod restarted).
- ``GET /readyz`` (readiness): 200 once every model readiness waits for has an AVAILABLE version
  (``ServerCore.is_ready()``: the configured models, and the model repository's models present at
  start), else 503 with ``Retry-After``. The port opens before models load, so this, not a TCP
  probe, tells when to send traffic.
- ``GET /health``: Simple TensorFlow Serving's liveness probe, answered as STS does (``healthy``, as
  ``text/html``), whenever ``/healthz`` would be.

tfaas's two answer JSON: ``{"status": "alive"}``; ``{"status": "ready" | "not ready", "models": {name:
[available versions, highest first]}}``, and when not ready ``"not_ready": {name: why}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app

from tfaas.server_core import ServerCore

blueprint = Blueprint("health", __name__)

RETRY_AFTER_SECONDS = 1


def _json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status=status, mimetype="application/json", headers=headers)


@blueprint.get("/healthz")
def healthz() -> Response:
    """``GET /healthz``: the process is up and serving HTTP."""
    return _json({"status": "alive"})


@blueprint.get("/health")
def health() -> Response:
    """``GET /health``: Simple TensorFlow Serving's probe; its body and type (Flask's default) unchanged."""
    return Response("healthy", mimetype="text/html")


@blueprint.get("/readyz")
def readyz() -> Response:
    """``GET /readyz``: 200 when every model readiness waits for serves, 503 (naming those that do not,
    and why) until then."""
    core: ServerCore = current_app.extensions["tfaas.core"]
    models = {name: core.available_versions(name) for name in core.readiness_models}
    not_ready = core.not_ready()
    if not not_ready:
        return _json({"status": "ready", "models": models})
    return _json(
        {"status": "not ready", "models": models, "not_ready": not_ready},
        503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
