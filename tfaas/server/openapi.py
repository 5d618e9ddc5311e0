"""Serves the OpenAPI document shipped with the package (``tfaas/server/openapi.yaml``)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson
import yaml
from flask import Blueprint, Response

blueprint = Blueprint("openapi", __name__)


@functools.cache
def openapi_text() -> str:
    """The document as written (YAML; its anchors keep repeated operations in one place)."""
    return resources.files("tfaas.server").joinpath("openapi.yaml").read_text(encoding="utf-8")


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document as data, anchors resolved."""
    return yaml.safe_load(openapi_text())


@blueprint.get("/openapi.yaml")
def openapi_yaml() -> Response:
    """``GET /openapi.yaml``."""
    return Response(openapi_text(), mimetype="application/yaml")


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """``GET /openapi.json``."""
    return Response(orjson.dumps(openapi_document()), mimetype="application/json")
