"""The Flask app factory: routes over a ``ServerCore``, with no side effects at import time."""

from __future__ import annotations

from flask import Flask

from tfaas.codecs import tf_serving_json as rest_api
from tfaas.server import health, metrics, openapi, tfaas_api
from tfaas.server.errors import register_error_handlers
from tfaas.server_core import ServerCore


def create_app(core: ServerCore) -> Flask:
    """Build the WSGI app serving ``core``'s models. The caller starts and stops the core."""
    app = Flask("tfaas")
    app.extensions["tfaas.core"] = core
    app.config["MAX_CONTENT_LENGTH"] = core.settings.max_request_body_bytes  # NOTE: an upload raises it
    register_error_handlers(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(rest_api.blueprint)
    metrics.init_app(app, core.metrics)  # NOTE: /metrics, /monitoring/prometheus/metrics, and request metrics
    tfaas_api.register(app, core.settings.tfaas_api_prefix)
    return app
