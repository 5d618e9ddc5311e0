"""TF Serving's REST classify and regress bodies: ``examples`` JSON to tf.Examples, results to JSON.

Follows TF Serving's ``util/json_tensor.cc``, messages included (TFSERVING.md 4.7). TensorFlow (for the
tf.Example protos) is imported inside functions only.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import orjson

from tfaas.codecs.json_tensor import b64decode, floats_json, is_b64, json_text, json_type
from tfaas.errors import InvalidArgument
from tfaas.tf_serving import INT64_MAX, INT64_MIN, UINT64_MAX

_BYTES, _FLOAT, _INT64 = "bytes", "float", "int64"  # NOTE: Feature kinds, as TF Serving's messages name them.


def decode_examples(body: Mapping[str, Any], method: str) -> list[bytes]:
    """Turn a classify or regress body into one serialized ``tf.Example`` per entry of ``examples``.

    The optional ``context`` object's features go into every example: as in TF Serving, its serialized
    bytes are prepended to each example's, so an example's own feature wins over a context one of the
    same name. Raises ``InvalidArgument`` with TF Serving's message for anything malformed.

    ``method`` (``classify`` or ``regress``) is accepted for symmetry but changes nothing: TF Serving's
    message for a missing ``examples`` says "When method is classify" for both methods.
    """
    del method  # NOTE: TF Serving hard-codes "classify" in that message, regress included.
    context = _example_bytes(body["context"]) if "context" in body else b""
    return [context + _example_bytes(example) for example in _example_list(body)]


# --- request: JSON to tf.Example ------------------------------------------------------------------


def _example_list(body: Mapping[str, Any]) -> list[Any]:
    """The ``examples`` array, checked as TF Serving checks it (its messages quote the whole body)."""
    if "examples" not in body:
        raise _body_error(body, "When method is classify, key 'examples' is expected and was not found")
    examples = body["examples"]
    if not isinstance(examples, list):
        raise _body_error(body, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _body_error(body, "'examples' value is an empty array")
    return examples


def _body_error(body: Mapping[str, Any], message: str) -> InvalidArgument:
    return InvalidArgument(f"JSON Value: {json_text(body)} {message}")


def _example_bytes(value: Any) -> bytes:
    """One JSON object of features as a serialized ``tf.Example``."""
    from tensorflow.core.example import example_pb2

    if not isinstance(value, dict):
        raise InvalidArgument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, content in value.items():
        _fill_feature(features[name], name, content if isinstance(content, list) else [content])
    return example.SerializeToString()


def _fill_feature(feature: Any, name: str, values: Sequence[Any]) -> None:
    """Put ``values`` into ``feature``, all of the kind the first one has (an empty list: no kind)."""
    kind = None
    converted = []
    for value in values:
        value_kind = _value_kind(name, value)
        if kind is None:
            kind = value_kind
        elif value_kind != kind:
            raise InvalidArgument(f"Unexpected element type in feature: {name} expecting type: {kind}")
        converted.append(_converted(name, kind, value))
    if kind == _BYTES:
        feature.bytes_list.value.extend(converted)
    elif kind == _FLOAT:
        feature.float_list.value.extend(converted)  # NOTE: stored as float32; beyond its range, +-inf.
    elif kind == _INT64:
        feature.int64_list.value.extend(converted)


def _value_kind(name: str, value: Any) -> str:
    """The Feature kind a JSON value belongs to, as rapidjson types it; null, arrays and objects fail."""
    if isinstance(value, bool):  # NOTE: before int, which bool subclasses.
        return _INT64
    if isinstance(value, int):
        # NOTE: rapidjson reads an integer beyond [int64 min, uint64 max] as a double (orjson as a float).
        return _INT64 if INT64_MIN <= value <= UINT64_MAX else _FLOAT
    if isinstance(value, float):
        return _FLOAT
    if isinstance(value, str) or is_b64(value):
        return _BYTES
    raise InvalidArgument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")


def _converted(name: str, kind: str, value: Any) -> Any:
    """``value`` as an element of a ``kind`` list; checked only once its kind matched the feature's."""
    if kind == _BYTES:
        return value.encode("utf-8") if isinstance(value, str) else b64decode(value["b64"])
    if kind == _FLOAT:
        return _as_double(value)
    if value > INT64_MAX:
        raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
    return int(value)  # NOTE: True and False become 1 and 0.


def _as_double(value: float | int) -> float:
    """A JSON number as the double rapidjson reads it: integers beyond float64's range become +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _classifications_json(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """``[[[label, score], ...] per example]``, the scores in the predict codec's float format."""
    num_examples, num_classes = (classes if classes is not None else scores).shape
    cells = num_examples * num_classes
    labels = [_label_json(label) for label in classes.ravel().tolist()] if classes is not None else [b'""'] * cells
    pairs = [b"[" + label + b"," + score + b"]" for label, score in zip(labels, _scores_json(scores, cells))]
    rows = (b"[" + b",".join(pairs[row * num_classes : (row + 1) * num_classes]) + b"]" for row in range(num_examples))
    return b"[" + b",".join(rows) + b"]"


def _scores_json(scores: np.ndarray | None, cells: int) -> list[bytes]:
    """The JSON text of each score in row-major order; ``0.0`` each without scores (the unset proto value)."""
    if not cells:
        return []
    flat = scores.ravel() if scores is not None else np.zeros(cells, dtype=np.float32)
    # NOTE: numbers hold no commas, so the flat list's commas separate exactly one score from the next.
    return floats_json(flat)[1:-1].split(b",")


def _label_json(label: Any) -> bytes:
    """A class label as a JSON string (invalid UTF-8 replaced: JSON text cannot carry raw bytes)."""
    text = label.decode("utf-8", errors="replace") if isinstance(label, bytes) else str(label)
    return orjson.dumps(text)


def classify_json(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """The classify response: ``{"results": [[[label, score], ...] per example]}``; the label is ``""``
    where the signature has no ``classes`` output, the score ``0.0`` where it has no ``scores``."""
    return b'{"results":' + _classifications_json(classes, scores) + b"}"


def regress_json(values: np.ndarray) -> bytes:
    """The regress response: ``{"results": [value per example]}``."""
    return b'{"results":' + floats_json(values) + b"}"
