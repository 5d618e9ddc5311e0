"""The Flask app factory: routes over an ``InferenceService`` and its ``ServerCore``, with no side effects at
import time. TF Serving's ``/v1`` API is not here: the ASGI front serves it (``tfaas.server.asgi``)."""

from __future__ import annotations

from flask import Flask

from tfaas.fronts import dashboard, eas
from tfaas.inference.service import InferenceService
from tfaas.server import health, metrics, openapi, tfaas_api
from tfaas.server.errors import register_error_handlers


def create_app(service: InferenceService) -> Flask:
    """Build the WSGI app serving ``service``'s models. The caller starts and stops its core."""
    core = service.core
    app = Flask("tfaas")
    app.extensions["tfaas.core"] = core
    app.extensions["tfaas.service"] = service
    app.config["MAX_CONTENT_LENGTH"] = core.settings.max_request_body_bytes  # NOTE: an upload raises it
    register_error_handlers(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    metrics.init_app(app, core.metrics)  # NOTE: /metrics and /monitoring/prometheus/metrics
    tfaas_api.register(app, core.settings.tfaas_api_prefix)
    app.register_blueprint(eas.blueprint)  # NOTE: PAI-EAS's /api/predict/<model>
    dashboard.register(app)  # NOTE: GET / (POST / is STS's, on the ASGI front)
    return app
