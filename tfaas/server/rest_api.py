"""TF Serving's REST API under ``/v1``: model status and predict.

Paths are matched with TF Serving's own (case-insensitive) patterns rather than Flask rules, so the
same URLs match and the same URLs are refused: a model name cannot contain ``/`` or ``:``, a version
is decimal, and anything else under ``/v1`` is a 400 "Malformed request".
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotFound

from tfaas.core.states import ServableState
from tfaas.errors import InvalidArgument, MethodNotAllowed
from tfaas.servables.json_tensor import decode_predict_request, encode_predict_response
from tfaas.server_core import ModelSpec, ServerCore

_SPEC = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_POST_PATH = re.compile(_SPEC + r":(?P<verb>predict)", re.IGNORECASE)
_GET_PATH = re.compile(_SPEC, re.IGNORECASE)
_INT64_MAX = 2**63 - 1

blueprint = Blueprint("tf_serving_rest", __name__)


def _core() -> ServerCore:
    return current_app.extensions["tfaas.core"]


def json_response(payload: Any | bytes, status: int = 200) -> Response:
    """A JSON response; ``payload`` may already be encoded bytes."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(body, status=status, mimetype="application/json")


@blueprint.route("/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def dispatch(_rest: str) -> Response:
    """Route every ``/v1`` request (any case, as TF Serving) by TF Serving's patterns.

    NOTE: a catch-all rule, because Flask rules are case-sensitive; Flask prefers every more
    specific rule of other route modules to it.
    """
    path = request.path
    if not path.lower().startswith("/v1/"):
        raise NotFound()
    post = _POST_PATH.fullmatch(path)
    if post and request.method == "POST":
        return predict(_model_spec(post))
    get = _GET_PATH.fullmatch(path)
    if get and request.method == "GET":
        return model_status(_model_spec(get))
    if post or get:
        raise MethodNotAllowed(f"Method {request.method} is not allowed for {path}")
    raise InvalidArgument(f"Malformed request: {request.method} {path}")


def _model_spec(match: re.Match[str]) -> ModelSpec:
    version = match.group("version")
    if version is not None and int(version) > _INT64_MAX:
        raise InvalidArgument(f"Failed to convert version: {version} to numeric.")
    return ModelSpec(
        name=match.group("name"),
        version=int(version) if version is not None else None,
        label=match.group("label"),
    )


def model_status(spec: ModelSpec) -> Response:
    """``GET /v1/models/<name>[/versions/N]``: TF Serving's GetModelStatusResponse as JSON.

    NOTE: like TF Serving, a label in the path is accepted and ignored (all versions are listed).
    """
    states = _core().version_states(spec.name, spec.version)
    return json_response({"model_version_status": [_version_status(s) for s in states]})


def _version_status(state: ServableState) -> dict[str, Any]:
    return {
        "version": str(state.id.version),
        "state": state.state.name,
        "status": {
            "error_code": "UNKNOWN" if state.error else "OK",
            "error_message": state.error or "",
        },
    }


def parse_json_body() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 in TF Serving's words."""
    data = request.get_data(cache=False)
    if not data.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"JSON Parse error: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"JSON Value: {data[:200].decode('utf-8', 'replace')} Is not object")
    return body


def predict(spec: ModelSpec) -> Response:
    """``POST …:predict`` in the row (``instances``) or columnar (``inputs``) format."""
    body = parse_json_body()
    signature_name = body.get("signature_name", "serving_default")
    if not isinstance(signature_name, str):
        raise InvalidArgument("'signature_name' key must be a string value.")
    with _core().get_handle(spec) as handle:
        signature = handle.servable.signatures.get(signature_name)
        if signature is None:
            raise InvalidArgument(f'Serving signature name: "{signature_name}" not found in signature def')
        decoded = decode_predict_request(body, signature)
        outputs = handle.servable.run(signature_name, decoded.inputs)
    return json_response(encode_predict_response(outputs, decoded.columnar))
