"""Predict bodies of one numeric tensor, read by simdjson straight into an array.

A body this path cannot take exactly as the general path (``json_tensor``) would is declined (``None``),
and the general path then answers it in TF Serving's words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import simdjson

from tfaas.codecs.json_tensor import JsonInputs, float_dtype
from tfaas.servables.servable import SignatureInfo

NUMERIC_BODY_BYTES = 16 * 1024
"""Bodies from this size are first tried as one numeric array: building Python floats (orjson) and
then an array cost ~3 ms for 1024 rows of 42 floats, simdjson's flat buffer ~0.5 ms."""


@dataclass(frozen=True)
class NumericBody:
    """A predict body that is one numeric tensor of rank 1 or 2 (``instances`` or ``inputs``)."""

    values: np.ndarray  # float64
    columnar: bool
    signature_name: str | None  # None: the body names none (the default signature)


def parse_numeric_body(data: bytes) -> NumericBody | None:
    """``data`` as a :class:`NumericBody`, or ``None`` for any other body (the general path then parses
    it, and reports whatever is wrong with it in TF Serving's words).

    NOTE: simdjson flattens nested arrays of any shape into its buffer, so the shape is checked apart:
    every row the same length, and no ``[`` in the text beyond one per row and the outer one (the only
    other string allowed, the signature name, may hold none), so no row nests a list.
    """
    try:
        document = simdjson.Parser().parse(data)
        keys = list(document.keys()) if isinstance(document, simdjson.Object) else []
        key = _numeric_key(keys)
        if key is None:
            return None
        signature_name = document["signature_name"] if "signature_name" in keys else None
        array = document[key]
        if not isinstance(array, simdjson.Array) or not len(array):
            return None
        values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
        shape = _uniform_shape(array)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError):  # NOTE: not JSON, too deep, not a number
        return None
    if "signature_name" in keys and (not isinstance(signature_name, str) or "[" in signature_name):
        return None
    if shape is None or values.size != math.prod(shape) or data.count(b"[") != 1 + (shape[0] if len(shape) == 2 else 0):
        return None
    return NumericBody(values.reshape(shape), key == "inputs", signature_name)


def _numeric_key(keys: list[str]) -> str | None:
    """``instances`` or ``inputs`` when the keys are one of them (and maybe ``signature_name``), once each."""
    rest = set(keys) - {"signature_name"}
    if len(set(keys)) != len(keys) or len(rest) != 1:
        return None
    (key,) = rest
    return key if key in ("instances", "inputs") else None


def _uniform_shape(array: Any) -> tuple[int, ...] | None:
    """``(rows,)`` or ``(rows, columns)`` when every row has ``columns`` entries; ``None`` otherwise."""
    if not isinstance(array[0], simdjson.Array):
        return (len(array),)
    columns = len(array[0])
    if not columns or any(not isinstance(row, simdjson.Array) or len(row) != columns for row in array):
        return None
    return (len(array), columns)


def decode_numeric_body(body: NumericBody, signature: SignatureInfo) -> JsonInputs | None:
    """The inputs of a one-input signature of float dtype from ``body``; ``None`` for any other signature."""
    if len(signature.inputs) != 1:
        return None
    ((alias, info),) = signature.inputs.items()
    dtype = float_dtype(info.dtype)
    if dtype is None:
        return None
    with np.errstate(over="ignore"):  # NOTE: beyond float32's range: +-inf, as in TF Serving
        return JsonInputs({alias: body.values.astype(dtype)}, body.columnar)
