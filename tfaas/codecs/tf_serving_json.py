"""TF Serving's REST API under ``/v1``: status, metadata, predict, classify, regress, and a model list.

Paths are matched with TF Serving's own (case-insensitive) patterns rather than Flask rules, so the
same URLs match and the same URLs are refused: a model name cannot contain ``/`` or ``:``, a version
is decimal, and anything else under ``/v1`` is a 400 "Malformed request". A known path asked with
another method is a 405 whose ``Allow`` names the path's methods; ``OPTIONS`` answers with them.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter, Rule

from tfaas import request_timing
from tfaas.codecs.examples_json import classify_json, decode_examples, regress_json
from tfaas.codecs.json_tensor import (
    NUMERIC_BODY_BYTES,
    NumericBody,
    PredictRequest,
    decode_numeric_body,
    decode_predict_request,
    encode_predict_parts,
    parse_numeric_body,
)
from tfaas.codecs.large_body import LARGE_BODY_BYTES, decode_large_body, parse_large_body
from tfaas.core.servable_handle import ServableHandle
from tfaas.core.states import ServableState
from tfaas.errors import InvalidArgument, MethodNotAllowed
from tfaas.servables.classify_regress import classify as classify_examples
from tfaas.servables.classify_regress import regress as regress_examples
from tfaas.server import metrics
from tfaas.server_core import ModelSpec, ServerCore

_SPEC = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_POST_PATH = re.compile(_SPEC + r":(?P<verb>predict|classify|regress)", re.IGNORECASE)
_GET_PATH = re.compile(_SPEC + r"(?P<metadata>/metadata)?", re.IGNORECASE)
_LIST_PATH = re.compile(r"/v1/models/?", re.IGNORECASE)
_INT64_MAX = 2**63 - 1
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
# Bodies with NaN or Infinity tokens are parsed by Python's json, whose recursion depends on the stack,
# and checked by orjson.dumps, which refuses 255 levels: one fixed limit below both.
_NON_FINITE_MAX_DEPTH = 254
# NOTE: an unterminated string runs to the end, so a failed match never makes the scan quadratic.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_OPENERS = np.frombuffer(b"[{", np.uint8)
_CLOSERS = np.frombuffer(b"]}", np.uint8)
DEFAULT_SIGNATURE = "serving_default"

blueprint = Blueprint("tf_serving_rest", __name__)


def _core() -> ServerCore:
    return current_app.extensions["tfaas.core"]


def _handle(spec: ModelSpec) -> ServableHandle:
    """A handle on the version ``spec`` resolves to; the request's metrics are labelled with that version."""
    handle = _core().get_handle(spec)
    metrics.note_version(handle.id.version)
    return handle


def json_response(payload: Any | bytes, status: int = 200) -> Response:
    """A JSON response; ``payload`` may already be encoded bytes."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(body, status=status, mimetype="application/json")


class _V1Converter(BaseConverter):
    """The first segment of TF Serving's paths, ``v1``, in any case."""

    regex = "[Vv]1"


_DISPATCH = "tf_serving_rest.dispatch"


@blueprint.record_once
def _route_v1(state: BlueprintSetupState) -> None:
    """Send every ``/v1/…`` request, whatever its method, to :func:`dispatch`.

    NOTE: a rule of Werkzeug's own (``methods=None``: any method) rather than Flask's, which are
    case-sensitive and take a fixed list of methods: TF Serving matches its paths in any case, and
    which methods a path takes is known only once its pattern matched. Paths outside ``/v1`` are
    left to the other route modules, so their 404s and 405s are Werkzeug's.
    """
    state.app.url_map.converters["v1"] = _V1Converter
    for rule in ("/<v1:_prefix>/", "/<v1:_prefix>/<path:_rest>"):
        state.app.url_map.add(Rule(rule, endpoint=_DISPATCH))
    state.app.view_functions[_DISPATCH] = dispatch


def dispatch(**_path: str) -> Response:
    """Route a ``/v1`` request by TF Serving's patterns."""
    labels = metrics.track()
    handler, spec = resolve(request.method, request.path)
    labels.api, labels.model = _API_NAMES.get(handler, "other"), spec.name if spec is not None else ""
    return handler(spec) if spec is not None else handler()


def predict_match(path: str) -> re.Match[str] | None:
    """The match of a ``…:predict`` path (any case, as TF Serving), ``None`` for any other path."""
    post = _POST_PATH.fullmatch(path)
    return post if post and post.group("verb").lower() == "predict" else None


_POST_METHODS = ("OPTIONS", "POST")
_GET_METHODS = ("GET", "HEAD", "OPTIONS")


def resolve(method: str, path: str) -> tuple[Callable[..., Response], ModelSpec | None]:
    """The handler of a ``/v1`` request and its model spec, or the 400/405 TF Serving answers."""
    if post := _POST_PATH.fullmatch(path):
        if method == "POST":
            return _INFERENCE[post.group("verb").lower()], model_spec(post)
        allowed = _POST_METHODS
    elif get := _GET_PATH.fullmatch(path):
        if method in ("GET", "HEAD"):
            return (model_metadata if get.group("metadata") else model_status), model_spec(get)
        allowed = _GET_METHODS
    elif _LIST_PATH.fullmatch(path):
        if method in ("GET", "HEAD"):
            return list_models, None
        allowed = _GET_METHODS
    else:
        raise InvalidArgument(f"Malformed request: {method} {path}")
    if method == "OPTIONS":
        return functools.partial(_options, allowed), None
    raise MethodNotAllowed(f"Method {method} is not allowed for {path}", allowed)


def _options(allowed: tuple[str, ...]) -> Response:
    """``OPTIONS`` on a known path: its methods, as Flask answers for its own routes."""
    return Response(status=200, headers={"Allow": ", ".join(allowed)})


def model_spec(match: re.Match[str]) -> ModelSpec:
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


def parse_json_body(data: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a 400 in TF Serving's words."""
    if not data or data.isspace():  # NOTE: not data.strip(), which copies a large body
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        # NOTE: orjson >= 3.9.15 refuses nesting deeper than 1024 levels; older ones crashed (CVE-2024-27454).
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        body = _loads_non_finite(data)
        if body is None:
            raise InvalidArgument(f"JSON Parse error: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"JSON Value: {data[:200].decode('utf-8', 'replace')} Is not object")
    return body


def _loads_non_finite(data: bytes) -> Any | None:
    """``data`` parsed with the ``NaN``, ``Infinity`` and ``-Infinity`` tokens TF Serving accepts, else None.

    NOTE: TF Serving's rapidjson parses with ``kParseNanAndInfFlag``; orjson refuses those tokens, so a
    body that has them is parsed again by Python's json, made to read integers beyond [int64 min,
    uint64 max] as floats and to refuse numbers beyond float64's range, as orjson does, and checked with
    ``orjson.dumps`` for lone surrogates (which orjson refuses too). Where that fails, the caller reports
    orjson's parse error; nesting too deep for Python's parser is a 400 of its own.
    """
    if b"NaN" not in data and b"Infinity" not in data:
        return None
    if _nesting_depth(data) > _NON_FINITE_MAX_DEPTH:
        raise InvalidArgument("JSON Parse error: depth limit exceeded")
    try:
        body = json.loads(data, parse_constant=float, parse_float=_finite_float, parse_int=_json_int)
        orjson.dumps(body)
    except RecursionError:
        raise InvalidArgument("JSON Parse error: depth limit exceeded") from None
    except (ValueError, TypeError):  # NOTE: orjson.JSONEncodeError is a TypeError
        return None
    return body


def _nesting_depth(data: bytes) -> int:
    """How deep ``[`` and ``{`` nest in the JSON text ``data``, brackets inside strings not counted.

    NOTE: counted on the bytes, not by recursion, so the answer is the same on every Python (whose
    parser's recursion limit depends on the stack in use) and for every body size.
    """
    outside_strings = _JSON_STRING.sub(b'""', data)
    brackets = np.frombuffer(outside_strings, np.uint8)
    steps = np.isin(brackets, _OPENERS).astype(np.int8) - np.isin(brackets, _CLOSERS).astype(np.int8)
    # NOTE: int16 may wrap past 32767 levels, but any depth over the limit passes through limit + 1 first.
    return int(np.cumsum(steps, dtype=np.int16).max(initial=0))


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number is infinity when parsed as double: {text}")
    return value


def _json_int(text: str) -> int | float:
    value = int(text)
    return value if _INT64_MIN <= value <= _UINT64_MAX else _finite_float(text)


def _signature_name(body: dict[str, Any]) -> str:
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise InvalidArgument("'signature_name' key must be a string value.")
    return name


def predict(spec: ModelSpec) -> Response:
    """``POST …:predict`` in the row (``instances``) or columnar (``inputs``) format."""
    parts = predict_body(_core(), spec, request.get_data(cache=False), metrics.current_labels())
    return json_response(b"".join(parts))


def predict_body(
    core: ServerCore, spec: ModelSpec, data: bytes | bytearray, labels: metrics.RequestLabels | None
) -> list[bytes]:
    """The predict answer to the request body ``data`` (in pieces, see ``encode_predict``), on the calling
    thread; ``labels`` get the version that answered. The ASGI front runs the same steps with the model
    call awaited."""
    outputs, columnar = _predict_outputs(core, spec, data, labels)
    return encode_predict(outputs, columnar)


def _predict_outputs(
    core: ServerCore, spec: ModelSpec, data: bytes | bytearray, labels: metrics.RequestLabels | None
) -> tuple[Mapping[str, Any], bool]:
    """Steps 1 to 3: the model's outputs, and whether the request was columnar.

    Once the inputs are decoded, the body and what was parsed of it are let go (a ``bytearray`` is
    emptied), and the inputs go with this frame: the model call and the answer do not add to them.
    """
    call = parse_predict(data)
    signature_name = call.signature_name
    with core.get_handle(spec) as handle:
        request = decode_predict(call, handle, labels)
        del call
        if isinstance(data, bytearray):
            data.clear()
        with request_timing.timed("run"):
            return handle.servable.run(signature_name, request.inputs), request.columnar


@dataclass(frozen=True)
class PredictCall:
    """A predict body, parsed, and the signature it names.

    A body of one numeric tensor from ``NUMERIC_BODY_BYTES`` comes as ``numeric``, a body from
    ``LARGE_BODY_BYTES`` with its long arrays read into numpy as ``large``; in both, ``body`` stays
    unparsed until a signature they do not fit asks for the general path.
    """

    data: bytes
    signature_name: str
    body: dict[str, Any] | None = None
    numeric: NumericBody | None = None
    large: dict[str, Any] | None = None


def parse_predict(data: bytes) -> PredictCall:
    """Step 1 of a predict: the JSON body (timed as ``parse``)."""
    with request_timing.timed("parse"):
        large = parse_large_body(data) if len(data) >= LARGE_BODY_BYTES else None
        if large is not None:
            return PredictCall(data, _signature_name(large), large=large)
        numeric = parse_numeric_body(data) if NUMERIC_BODY_BYTES <= len(data) < LARGE_BODY_BYTES else None
        if numeric is not None:
            return PredictCall(data, numeric.signature_name or DEFAULT_SIGNATURE, numeric=numeric)
        body = parse_json_body(data)
        return PredictCall(data, _signature_name(body), body=body)


def decode_predict(call: PredictCall, handle: ServableHandle, labels: metrics.RequestLabels | None) -> PredictRequest:
    """Step 2: the inputs for the signature of the version ``handle`` holds (timed as ``parse``)."""
    if labels is not None:
        labels.version = str(handle.id.version)
    signature = handle.servable.signatures.get(call.signature_name)
    if signature is None:
        raise InvalidArgument(f'Serving signature name: "{call.signature_name}" not found in signature def')
    with request_timing.timed("parse"):
        request = None
        if call.numeric is not None:
            request = decode_numeric_body(call.numeric, signature)
        elif call.large is not None:
            request = decode_large_body(call.large, signature)
        if request is not None:
            return request
        return decode_predict_request(call.body if call.body is not None else parse_json_body(call.data), signature)


def encode_predict(outputs: Mapping[str, Any], columnar: bool) -> list[bytes]:
    """Step 4, after the model call: the response body in pieces, one unless it is large (timed as ``encode``)."""
    with request_timing.timed("encode"):
        return encode_predict_parts(outputs, columnar)


def classify(spec: ModelSpec) -> Response:
    """``POST …:classify``: ``examples`` (and ``context``) as tf.Examples → ``[[label, score], …]``."""
    return _run_examples(spec, "classify", lambda *args: classify_json(*classify_examples(*args)))


def regress(spec: ModelSpec) -> Response:
    """``POST …:regress``: ``examples`` (and ``context``) as tf.Examples → one float per example."""
    return _run_examples(spec, "regress", lambda *args: regress_json(regress_examples(*args)))


def _run_examples(spec: ModelSpec, method: str, run: Callable[[Any, str, list[bytes]], bytes]) -> Response:
    """Classify and regress share everything but the call that runs the signature."""
    body = parse_json_body(request.get_data(cache=False))
    signature_name = _signature_name(body)
    examples = decode_examples(body, method)
    with _handle(spec) as handle:
        return json_response(run(handle.servable, signature_name, examples))


_INFERENCE = {"predict": predict, "classify": classify, "regress": regress}


def model_metadata(spec: ModelSpec) -> Response:
    """``GET …/metadata``: the version's SignatureDefs, in TF Serving's GetModelMetadataResponse JSON."""
    with _handle(spec) as handle:
        version, signature_defs = handle.id.version, handle.servable.signature_def_map_json()
    return json_response(
        {
            "model_spec": {"name": spec.name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": signature_defs},
        }
    )


def list_models() -> Response:
    """``GET /v1/models``: every configured model with its labels and version states.

    TF Serving has no such call (its users have asked since 2018, TF Serving #795).
    """
    core = _core()
    models = []
    for name in core.model_names:
        states = core.states(name)
        models.append(
            {
                "name": name,
                "version_labels": dict(core.version_labels(name)),
                "model_version_status": [_version_status(s) for s in states.values()],
            }
        )
    return json_response({"models": models})


_API_NAMES: dict[Callable[..., Response], str] = {
    predict: "predict",
    classify: "classify",
    regress: "regress",
    model_metadata: "metadata",
    model_status: "status",
    list_models: "list",
}
"""The ``api`` label of each handler's requests in the metrics."""
