"""The Flask app factory: routes over a ``ServerCore``, with no side effects at import time."""

from __future__ import annotations

from flask import Flask

from tfaas.server import openapi, rest_api
from tfaas.server.errors import register_error_handlers
from tfaas.server_core import ServerCore


def create_app(core: ServerCore) -> Flask:
    """Build the WSGI app serving ``core``'s models. The caller starts and stops the core."""
    app = Flask("tfaas")
    app.extensions["tfaas.core"] = core
    register_error_handlers(app)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(rest_api.blueprint)
    return app
