"""TF Serving's REST JSON to the inference service's types and back: predict, classify and regress bodies,
and the status, metadata and model-list answers.

A predict body is parsed before the model is known, and decoded once the service knows the signature that
runs (its dtypes decide how JSON values convert): :class:`PredictJson` does both and encodes the answer
in the body's format, row (``instances``) or columnar (``inputs``). Bodies of one numeric tensor and large
bodies take their fast paths (``numeric_body``, ``large_body``) and fall back to the general one
(``json_tensor``) for anything those cannot take exactly as it would.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tfaas import request_timing
from tfaas.codecs.examples_json import classify_json, decode_examples, regress_json
from tfaas.codecs.json_tensor import JsonInputs, decode_predict_request, encode_predict_parts
from tfaas.codecs.large_body import LARGE_BODY_BYTES, decode_large_body, parse_large_body
from tfaas.codecs.numeric_body import NUMERIC_BODY_BYTES, NumericBody, decode_numeric_body, parse_numeric_body
from tfaas.core.states import ServableState
from tfaas.errors import InvalidArgument
from tfaas.inference.types import (
    ClassifyResult,
    ExamplesRequest,
    ModelListing,
    ModelMetadata,
    PredictRequest,
    PredictResult,
    RegressResult,
)
from tfaas.servables.servable import SignatureInfo
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE, INT64_MIN, UINT64_MAX

# Bodies with NaN or Infinity tokens are parsed by Python's json, whose recursion depends on the stack,
# and checked by orjson.dumps, which refuses 255 levels: one fixed limit below both.
_NON_FINITE_MAX_DEPTH = 254
# NOTE: an unterminated string runs to the end, so a failed match never makes the scan quadratic.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_OPENERS = np.frombuffer(b"[{", np.uint8)
_CLOSERS = np.frombuffer(b"]}", np.uint8)


# ---- request bodies -----------------------------------------------------------------------------


def parse_json_body(data: bytes | bytearray) -> dict[str, Any]:
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


def _loads_non_finite(data: bytes | bytearray) -> Any | None:
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


def _nesting_depth(data: bytes | bytearray) -> int:
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
    return value if INT64_MIN <= value <= UINT64_MAX else _finite_float(text)


def _signature_name(body: dict[str, Any]) -> str:
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise InvalidArgument("'signature_name' key must be a string value.")
    return name


# ---- predict ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PredictBody:
    """A predict body, parsed, and the signature it names.

    A body of one numeric tensor from ``NUMERIC_BODY_BYTES`` comes as ``numeric``, a body from
    ``LARGE_BODY_BYTES`` with its long arrays read into numpy as ``large``; in both, ``body`` stays
    unparsed until a signature they do not fit asks for the general path.
    """

    data: bytes | bytearray
    signature_name: str
    body: dict[str, Any] | None = None
    numeric: NumericBody | None = None
    large: dict[str, Any] | None = None


class PredictJson:
    """One REST predict call: the body parsed when this is made (timed as ``parse``), its inputs decoded by
    the service for the signature that runs, and the answer encoded in the body's format.

    Once the inputs are decoded, the body and what was parsed of it are let go (a ``bytearray`` body is
    emptied): the model call and the answer do not add to them.
    """

    def __init__(self, data: bytes | bytearray) -> None:
        with request_timing.timed("parse"):
            self._body: _PredictBody | None = _parse_predict(data)
        self.signature_name = self._body.signature_name
        self.columnar = False

    def request(self, spec: ModelSpec) -> PredictRequest:
        """The service's request for the model ``spec`` names, its inputs decoded by :meth:`decode`."""
        return PredictRequest(spec, self.decode, self.signature_name)

    def decode(self, signature: SignatureInfo) -> dict[str, np.ndarray]:
        """The inputs for ``signature`` (once: the body is let go)."""
        body, self._body = self._body, None
        assert body is not None, "a predict body is decoded once"
        try:
            decoded = _decode_predict(body, signature)
        finally:
            if isinstance(body.data, bytearray):
                body.data.clear()
        self.columnar = decoded.columnar
        return decoded.inputs

    def encode(self, result: PredictResult) -> list[bytes]:
        """The response body in pieces, one unless it is large (timed as ``encode``)."""
        with request_timing.timed("encode"):
            return encode_predict_parts(result.outputs, self.columnar)


def _parse_predict(data: bytes | bytearray) -> _PredictBody:
    large = parse_large_body(data) if len(data) >= LARGE_BODY_BYTES else None
    if large is not None:
        return _PredictBody(data, _signature_name(large), large=large)
    numeric = parse_numeric_body(data) if NUMERIC_BODY_BYTES <= len(data) < LARGE_BODY_BYTES else None
    if numeric is not None:
        return _PredictBody(data, numeric.signature_name or DEFAULT_SIGNATURE, numeric=numeric)
    body = parse_json_body(data)
    return _PredictBody(data, _signature_name(body), body=body)


def _decode_predict(body: _PredictBody, signature: SignatureInfo) -> JsonInputs:
    decoded = None
    if body.numeric is not None:
        decoded = decode_numeric_body(body.numeric, signature)
    elif body.large is not None:
        decoded = decode_large_body(body.large, signature)
    if decoded is not None:
        return decoded
    return decode_predict_request(body.body if body.body is not None else parse_json_body(body.data), signature)


# ---- classify and regress -----------------------------------------------------------------------


def examples_request(spec: ModelSpec, data: bytes | bytearray, method: str) -> ExamplesRequest:
    """A classify or regress body (``method``) as the service's request (timed as ``parse``)."""
    with request_timing.timed("parse"):
        body = parse_json_body(data)
        signature_name = _signature_name(body)
        return ExamplesRequest(spec, decode_examples(body, method), signature_name)


def classify_answer(result: ClassifyResult) -> bytes:
    """``{"results": [[[label, score], ...] per example]}``."""
    return classify_json(result.classes, result.scores)


def regress_answer(result: RegressResult) -> bytes:
    """``{"results": [value per example]}``."""
    return regress_json(result.values)


# ---- status, metadata, model list ---------------------------------------------------------------


def status_answer(states: list[ServableState]) -> bytes:
    """TF Serving's GetModelStatusResponse as JSON."""
    return orjson.dumps({"model_version_status": [_version_status(s) for s in states]})


def metadata_answer(metadata: ModelMetadata) -> bytes:
    """TF Serving's GetModelMetadataResponse as JSON: the version's SignatureDefs."""
    spec = metadata.spec
    return orjson.dumps(
        {
            "model_spec": {"name": spec.name, "signature_name": "", "version": str(spec.version)},
            "metadata": {"signature_def": metadata.signature_def_map},
        }
    )


def models_answer(models: list[ModelListing]) -> bytes:
    """``{"models": [...]}``: each model with its labels and the state of each version."""
    return orjson.dumps(
        {
            "models": [
                {
                    "name": model.name,
                    "version_labels": dict(model.version_labels),
                    "model_version_status": [_version_status(s) for s in model.states],
                }
                for model in models
            ]
        }
    )


def _version_status(state: ServableState) -> dict[str, Any]:
    return {
        "version": str(state.id.version),
        "state": state.state.name,
        "status": {
            "error_code": "UNKNOWN" if state.error else "OK",
            "error_message": state.error or "",
        },
    }
