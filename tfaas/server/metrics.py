"""The Prometheus endpoints, and the hook that counts and times every /v1 request.

Routes: ``GET /monitoring/prometheus/metrics`` (TF Serving's path, exact: a trailing slash is a 404 as
there) and ``GET /metrics`` (where Prometheus looks by default); both serve the same text.

Instrumentation: the /v1 dispatcher calls :func:`track` once it knows a request is for the API, fills in
the API and model when it has resolved the path, and :func:`note_version` records the version a handle
was taken on. An ``after_request`` hook then records the request with the response's status, so error
responses (raised anywhere and mapped by the error handlers) are counted too. The labels live on
``flask.g``; a request that never called :func:`track` (metrics scrapes, the OpenAPI document) is not
counted.

Label values are bounded: ``model`` is the requested name only when it is a served model (else ``""``,
so a client cannot create series by naming models that do not exist), and ``version`` is only ever the
version a handle was actually taken on (``""`` when the request failed before that, or took no handle).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, g

from tfaas import request_timing
from tfaas.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from tfaas.server_core import ServerCore

log = logging.getLogger("tfaas.server")

TF_SERVING_PATH = "/monitoring/prometheus/metrics"
PATHS = (TF_SERVING_PATH, "/metrics")
_EXTENSION = "tfaas.metrics"
_G_KEY = "tfaas_request_labels"

blueprint = Blueprint("metrics", __name__)


@dataclass
class RequestLabels:
    """What a /v1 request is, as far as the dispatcher found out; ``api`` stays ``other`` for a path
    that matched no API (TF Serving's "Malformed request")."""

    api: str = "other"
    model: str = ""
    version: str = ""
    started: float = field(default_factory=time.perf_counter)


def track() -> RequestLabels:
    """Count the current request once it ends; fill in the returned labels as they become known."""
    labels = RequestLabels()
    setattr(g, _G_KEY, labels)
    request_timing.begin()
    return labels


def current_labels() -> RequestLabels | None:
    """The labels of the current Flask request, if it is tracked."""
    return g.get(_G_KEY)


def note_version(version: int) -> None:
    """The current request took a handle on ``version``."""
    labels = current_labels()
    if labels is not None:
        labels.version = str(version)


def init_app(app: Flask, metrics: Metrics) -> None:
    """Serve ``metrics`` on the Prometheus paths and record every tracked request of ``app``."""
    app.extensions[_EXTENSION] = metrics
    app.register_blueprint(blueprint)
    app.after_request(_record_request)


@blueprint.get(TF_SERVING_PATH)
@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    """``GET /monitoring/prometheus/metrics`` and ``GET /metrics``: Prometheus's text format."""
    return Response(current_app.extensions[_EXTENSION].render(), content_type=CONTENT_TYPE)


def _record_request(response: Response) -> Response:
    labels: RequestLabels | None = g.pop(_G_KEY, None)
    if labels is not None:
        core = current_app.extensions.get("tfaas.core")
        record(core, current_app.extensions[_EXTENSION], labels, response.status_code)
    return response


def record(core: ServerCore | None, metrics: Metrics, labels: RequestLabels, http_status: int) -> None:
    """Record an answered request, and its stages (collected on this thread) when it succeeded.

    ``core`` is the ``ServerCore`` whose served models bound the ``model`` label. Called by the
    Flask hook above and by the ASGI front's predict path.
    """
    stages = request_timing.take()
    try:
        served = core is not None and labels.model in core.model_names
        model = labels.model if served else ""
        metrics.observe_request(
            model=model,
            version=labels.version if served else "",
            api=labels.api,
            http_status=http_status,
            seconds=time.perf_counter() - labels.started,
        )
        if http_status == 200:
            metrics.observe_stages(model=model, api=labels.api, stages=stages)
    except Exception:  # NOTE: metrics must never fail a request that has been answered
        log.exception("Recording request metrics failed")
