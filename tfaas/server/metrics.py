"""The Prometheus endpoints: ``GET /monitoring/prometheus/metrics`` (TF Serving's path, exact: a trailing
slash is a 404 as there) and ``GET /metrics`` (where Prometheus looks by default); both serve the same text.

Requests are counted and timed by the inference service (``tfaas.inference.request_metrics``), around
all of a front's work on each.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app

from tfaas.metrics import CONTENT_TYPE, Metrics

TF_SERVING_PATH = "/monitoring/prometheus/metrics"
_EXTENSION = "tfaas.metrics"

blueprint = Blueprint("metrics", __name__)


def init_app(app: Flask, metrics: Metrics) -> None:
    """Serve ``metrics`` on the Prometheus paths."""
    app.extensions[_EXTENSION] = metrics
    app.register_blueprint(blueprint)


@blueprint.get(TF_SERVING_PATH)
@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    """``GET /monitoring/prometheus/metrics`` and ``GET /metrics``: Prometheus's text format."""
    return Response(current_app.extensions[_EXTENSION].render(), content_type=CONTENT_TYPE)
