"""TF Serving's REST predict JSON: request bodies to numpy inputs, numpy outputs to response bytes.

Follows TF Serving's ``util/json_tensor.cc`` (TFSERVING.md 4.5, 4.6), messages included. Valid
requests take a fast path (C-level type and size checks over each nesting level, one numpy
conversion); only a request that fails it is walked element by element, to name the first error the
way TF Serving does. Large bodies of numbers take faster paths first (``numeric_body``, ``large_body``).
numpy and orjson only: no TensorFlow here.
"""

from __future__ import annotations

import base64
import binascii
import math
import reprlib
import sys
from dataclasses import dataclass
from itertools import chain
from typing import Any, Mapping, NoReturn, Sequence

import numpy as np
import orjson

from tfaas.errors import Internal, InvalidArgument, Unimplemented
from tfaas.servables.servable import SignatureInfo
from tfaas.tf_serving import shape_text

_B64 = "b64"
_BYTES_SUFFIX = "_bytes"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_MAX_MESSAGE_VALUE = 200  # NOTE: longest JSON text of a value quoted in an error message.
_MAX_RANK = 64 if int(np.__version__.split(".")[0]) >= 2 else 32  # NOTE: numpy's NPY_MAXDIMS.


@dataclass(frozen=True)
class JsonInputs:
    """The decoded tensors of a predict body, and whether they came in the columnar format.

    ``columnar`` picks the response format: ``{"outputs": ...}`` for ``inputs`` requests,
    ``{"predictions": [...]}`` for ``instances`` requests.
    """

    inputs: dict[str, np.ndarray]
    columnar: bool


@dataclass(frozen=True)
class _Codec:
    """How JSON values become one TF dtype: ``kind`` is float, int, bool or string."""

    name: str  # TF's DataTypeString, used in messages ("float")
    kind: str
    dtype: np.dtype
    leaf_types: frozenset[type]


def _new_codec(name: str, kind: str, dtype: type, leaf_types: frozenset[type]) -> _Codec:
    return _Codec(name, kind, np.dtype(dtype), leaf_types)


_NUMBERS = frozenset({int, float})
_CODECS: dict[str, _Codec] = {
    "DT_FLOAT": _new_codec("float", "float", np.float32, _NUMBERS),
    "DT_DOUBLE": _new_codec("double", "float", np.float64, _NUMBERS),
    "DT_INT8": _new_codec("int8", "int", np.int8, frozenset({int})),
    "DT_INT16": _new_codec("int16", "int", np.int16, frozenset({int})),
    "DT_INT32": _new_codec("int32", "int", np.int32, frozenset({int})),
    "DT_INT64": _new_codec("int64", "int", np.int64, frozenset({int})),
    "DT_UINT8": _new_codec("uint8", "int", np.uint8, frozenset({int})),
    "DT_UINT16": _new_codec("uint16", "int", np.uint16, frozenset({int})),
    "DT_UINT32": _new_codec("uint32", "int", np.uint32, frozenset({int})),
    "DT_UINT64": _new_codec("uint64", "int", np.uint64, frozenset({int})),
    "DT_BOOL": _new_codec("bool", "bool", np.bool_, frozenset({bool})),
    "DT_STRING": _new_codec("string", "string", np.object_, frozenset({str, dict})),
}


def decode_predict_request(body: Mapping[str, Any], signature: SignatureInfo) -> JsonInputs:
    """Turn a parsed predict body into one numpy array per input alias of ``signature``.

    Raises ``InvalidArgument`` for anything the client got wrong and ``Unimplemented`` for an input
    dtype JSON cannot express (e.g. ``DT_HALF``), each with TF Serving's message.
    """
    _check_object(body)
    if "instances" in body:
        if "inputs" in body:
            raise InvalidArgument("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
        return JsonInputs(_decode_instances(body["instances"], signature), columnar=False)
    if "inputs" in body:
        return JsonInputs(_decode_inputs(body["inputs"], signature), columnar=True)
    raise InvalidArgument("Missing 'inputs' or 'instances' key")


def encode_predict_response(outputs: Mapping[str, np.ndarray], columnar: bool) -> bytes:
    """Write ``outputs`` as TF Serving's predict response: ``{"outputs": ...}`` or ``{"predictions": [...]}``.

    Row format needs every output to have rank >= 1 and the same dim 0; otherwise ``InvalidArgument``.
    """
    return b"".join(encode_predict_parts(outputs, columnar))


def encode_predict_parts(outputs: Mapping[str, np.ndarray], columnar: bool) -> list[bytes]:
    """:func:`encode_predict_response`'s bytes in pieces, to be sent one after the other: one piece up to
    ``JOINED_BYTES``; a larger answer is never copied whole (a large tensor's text comes in blocks)."""
    aliases = sorted(outputs)
    key = b'{"outputs":' if columnar else b'{"predictions":'
    if not columnar:
        _check_batch_sizes(outputs, aliases)
    if len(aliases) == 1:
        parts = _tensor_parts(aliases[0], outputs[aliases[0]])
        if len(parts) == 1:  # NOTE: the common case (a tensor of up to ENCODE_BLOCK values), kept short
            return [key + parts[0] + b"}"]
        parts = [key, *parts, b"}"]
    elif columnar:
        parts = [key, *named_tensors_parts(outputs), b"}"]
    else:
        parts = [key, *_rows_parts(outputs, aliases), b"}"]
    return parts if sum(map(len, parts)) > JOINED_BYTES else [b"".join(parts)]


JOINED_BYTES = 1 << 20
"""Answers up to this size are one piece (one message to send)."""


def named_tensors_parts(outputs: Mapping[str, np.ndarray]) -> list[bytes]:
    """``{"alias": tensor, ...}`` (aliases sorted; TF Serving's float and bytes conventions) in pieces to be
    joined: the ``outputs`` object of a columnar answer, and Simple TensorFlow Serving's whole answer."""
    parts = [b"{"]
    for alias in sorted(outputs):
        parts += [orjson.dumps(alias), b":", *_tensor_parts(alias, outputs[alias]), b","]
    parts[-1] = b"}" if outputs else b"{}"
    return parts


# --- decoding -------------------------------------------------------------------------------------


def _check_object(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidArgument(f"JSON Value: {json_text(body)} Is not object")


def _decode_instances(instances: Any, signature: SignatureInfo) -> dict[str, np.ndarray]:
    """The row format: a list with one entry per batch element."""
    if not isinstance(instances, list):
        raise InvalidArgument("Expecting 'instances' to be an list/array")
    if not instances:
        raise InvalidArgument("No values in 'instances' array")
    aliases = sorted(signature.inputs)
    if _is_named_object(instances[0]):
        _check_named_rows(instances, aliases)
        return {
            alias: _batch([row[alias] for row in instances], input_codec(signature, alias), alias) for alias in aliases
        }
    if len(aliases) != 1:
        raise InvalidArgument(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as "
            "per tensorinfo_map"
        )
    return {aliases[0]: _batch(instances, input_codec(signature, aliases[0]), None)}


def _check_named_rows(instances: list[Any], aliases: Sequence[str]) -> None:
    """Every row must be an object whose keys are exactly the input aliases."""
    wanted = set(aliases)
    for index, row in enumerate(instances):
        if not _is_named_object(row):
            raise InvalidArgument(f"Expecting object but got list at item {index} of input list")
        if row.keys() == wanted:
            continue
        unknown = next((key for key in row if key not in wanted), None)
        if unknown is not None:
            raise InvalidArgument(
                f"Failed to process element: {index} key: {unknown} of 'instances' list. "
                f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {unknown}"
            )
        raise InvalidArgument(
            f"Failed to process element: {index} of 'instances' list. JSON object: {json_text(row)} "
            f"keys must be equal to: {','.join(aliases)}"
        )


def _batch(rows: list[Any], codec: _Codec, alias: str | None) -> np.ndarray:
    """Stack the rows of one input (``alias``; None for plain rows) into one array.

    NOTE: the rows are one nested list of shape ``[len(rows)] + row shape``, converted in one go; only
    a failure needs TF Serving's row-by-row account of what went wrong.
    """
    try:
        return to_array(rows, codec)
    except InvalidArgument:
        _explain_rows(rows, codec, alias)
        raise


def _explain_rows(rows: list[Any], codec: _Codec, alias: str | None) -> None:
    """Raise TF Serving's message for the first bad row: its own error, or a size or shape unlike row 0's."""
    if alias is None:
        for index, row in enumerate(rows):
            if _is_named_object(row):
                raise InvalidArgument(f"Expecting value/list but got object at item {index} of input list")
    where = "" if alias is None else f" key: {alias}"
    first_shape = dense_shape(rows[0])
    for index, row in enumerate(rows):
        shape = dense_shape(row)
        try:
            to_array(row, codec)
            if math.prod(shape) != math.prod(first_shape):
                raise InvalidArgument(f"Expecting tensor size: {math.prod(first_shape)} but got: {math.prod(shape)}")
            if shape != first_shape:
                raise InvalidArgument(f"Expecting shape {shape_text(first_shape)} but got: {shape_text(shape)}")
        except InvalidArgument as error:
            raise InvalidArgument(
                f"Failed to process element: {index}{where} of 'instances' list. Error: INVALID_ARGUMENT: {error}"
            ) from None


def _decode_inputs(inputs: Any, signature: SignatureInfo) -> dict[str, np.ndarray]:
    """The columnar format: one full tensor, or an object with one full tensor per alias."""
    aliases = sorted(signature.inputs)
    if not _is_named_object(inputs):
        if len(aliases) != 1:
            raise InvalidArgument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as "
                "per tensorinfo_map"
            )
        return {aliases[0]: to_array(inputs, input_codec(signature, aliases[0]))}
    for alias in aliases:
        if alias not in inputs:
            raise InvalidArgument(f"Missing named input: {alias} in 'inputs' object.")
    return {alias: to_array(inputs[alias], input_codec(signature, alias)) for alias in aliases}


def float_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype JSON numbers become for the TF float ``dtype`` (``DT_FLOAT``…); ``None`` for other dtypes."""
    codec = _CODECS.get(dtype)
    return codec.dtype if codec is not None and codec.kind == "float" else None


def input_codec(signature: SignatureInfo, alias: str) -> _Codec:
    """How JSON values become input ``alias`` of ``signature``; ``Unimplemented`` for a dtype JSON cannot express."""
    dtype = signature.inputs[alias].dtype
    codec = _CODECS.get(dtype)
    if codec is None:
        name = dtype[3:].lower() if dtype.startswith("DT_") else dtype
        raise Unimplemented(f"Conversion of JSON Value to type: {name} is not supported (input: {alias})")
    return codec


def is_b64(value: Any) -> bool:
    """Whether ``value`` is TF Serving's binary-string object: exactly one key, ``b64``, holding a string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_B64), str)


def _is_named_object(value: Any) -> bool:
    """An object naming inputs, as opposed to a value (a ``{"b64": ...}`` object is a value)."""
    return isinstance(value, dict) and not is_b64(value)


def dense_shape(value: Any) -> list[int]:
    """The shape TF Serving infers for ``value``: the lengths along its first elements."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def to_array(value: Any, codec: _Codec) -> np.ndarray:
    """Convert one JSON value (a scalar or nested lists) to an array of ``codec``'s dtype."""
    shape = dense_shape(value)
    if len(shape) > _MAX_RANK:  # NOTE: numpy cannot hold it; TF Serving's model would refuse it anyway.
        raise InvalidArgument(f"Too many dimensions in tensor: {len(shape)}, at most {_MAX_RANK} are supported")
    leaves = dense_leaves(value, shape)
    if leaves is None or not set(map(type, leaves)) <= codec.leaf_types:
        _explain(value, shape, codec)
    if codec.kind == "string":
        return _string_array([_string_leaf(leaf, codec) for leaf in leaves], shape)
    try:
        with np.errstate(over="ignore"):  # NOTE: floats beyond float32's range become +-inf, as in TF Serving.
            return np.array(leaves, dtype=codec.dtype).reshape(shape)
    except OverflowError:  # an int out of the dtype's range, or too large for a float
        _explain(value, shape, codec)


def dense_leaves(value: Any, shape: Sequence[int]) -> list[Any] | None:
    """The leaves of ``value`` in row-major order if its lists all have ``shape``'s sizes, else None.

    NOTE: each level is checked with C-level set/map calls, so a valid tensor costs no per-element
    Python code; the leaf types are checked by the caller the same way.
    """
    items = [value]
    for size in shape:
        if set(map(type, items)) != {list} or set(map(len, items)) != {size}:
            return None
        items = list(chain.from_iterable(items))
    return items


def _explain(value: Any, shape: Sequence[int], codec: _Codec) -> NoReturn:
    """Walk ``value`` depth first and raise TF Serving's message for its first offending element."""
    rank = len(shape)
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, list):
            if level != rank:
                raise InvalidArgument(
                    f"JSON Value: {json_text(item)} found at incorrect level: {level + 1} in the JSON DOM. "
                    f"Expected at level: {rank}"
                )
            _check_leaf(item, codec)
        elif level >= rank:
            raise InvalidArgument(f"Encountered list at unexpected level: {level} expected < {rank}")
        elif len(item) != shape[level]:
            raise InvalidArgument(
                f"Encountered list at unexpected size: {len(item)} at level: {level} expected size: {shape[level]}"
            )
        else:
            stack.extend((child, level + 1) for child in reversed(item))
    raise InvalidArgument(f"JSON Value: {json_text(value)} is not a tensor of type: {codec.name}")


def _check_leaf(value: Any, codec: _Codec) -> None:
    """Raise ``InvalidArgument`` unless ``value`` converts to ``codec``'s dtype exactly."""
    if codec.kind == "string":
        _string_leaf(value, codec)
    elif type(value) not in codec.leaf_types or not _in_range(value, codec):
        raise InvalidArgument(
            f"JSON Value: {json_text(value)} Type: {json_type(value)} is not of expected type: {codec.name}"
        )


def _in_range(value: int | float, codec: _Codec) -> bool:
    if codec.kind == "int":
        limits = np.iinfo(codec.dtype)
        return limits.min <= value <= limits.max
    if codec.kind == "float" and isinstance(value, int):
        return abs(value) <= sys.float_info.max  # NOTE: int/float comparison is exact, never overflows.
    return True


def _string_leaf(value: Any, codec: _Codec) -> bytes:
    """A DT_STRING element: a str (UTF-8 encoded) or a ``{"b64": ...}`` object (decoded)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        if not is_b64(value):
            raise InvalidArgument(f"JSON Value: {json_text(value)} not formatted correctly for base64 data")
        return b64decode(value[_B64])
    raise InvalidArgument(
        f"JSON Value: {json_text(value)} Type: {json_type(value)} is not of expected type: {codec.name}"
    )


def b64decode(text: str) -> bytes:
    """Decode standard base64 as TF Serving does (``absl::Base64Unescape``).

    ASCII whitespace is skipped (``base64`` wraps its output in lines), and the ``=`` padding must be
    absent or exactly what the last group needs: ``QUJD=`` and ``QUJDRA=`` are refused.
    """
    data = text.translate(_B64_WHITESPACE)
    unpadded = data.rstrip("=")
    if len(data) - len(unpadded) not in (0, -len(unpadded) % 4):
        raise InvalidArgument("Unable to base64 decode")
    try:
        return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("Unable to base64 decode") from None


_B64_WHITESPACE = str.maketrans("", "", " \t\n\v\f\r")


def _string_array(values: list[Any], shape: Sequence[int]) -> np.ndarray:
    """An object array of ``shape`` holding ``values`` (bytes, str or dicts) in row-major order."""
    array = np.empty(len(values), dtype=object)
    array[:] = values  # NOTE: slice assignment stops numpy from looking inside the elements.
    return array.reshape(shape)


# --- encoding -------------------------------------------------------------------------------------


def _check_batch_sizes(outputs: Mapping[str, np.ndarray], aliases: Sequence[str]) -> None:
    """Row format: every output needs a batch dim, the same for all."""
    batch = None
    for alias in aliases:
        shape = np.shape(outputs[alias])
        if not shape:
            raise InvalidArgument(f"Tensor name: {alias} has no shape information")
        if batch is None:
            batch = shape[0]
        elif shape[0] != batch:
            raise InvalidArgument(f"Tensor name: {alias} has inconsistent batch size: {shape[0]} expecting: {batch}")


def _rows_parts(outputs: Mapping[str, np.ndarray], aliases: Sequence[str]) -> list[bytes]:
    """:func:`_rows_json`'s text in pieces: one, or ``[``, blocks of rows of about ``ENCODE_BLOCK`` values, ``]``."""
    arrays = {alias: np.asarray(outputs[alias]) for alias in aliases}
    rows = len(arrays[aliases[0]])
    step = max(1, ENCODE_BLOCK * rows // max(1, sum(array.size for array in arrays.values())))
    if rows <= step:
        return [_rows_json(arrays, aliases)]
    parts = []
    for start in range(0, rows, step):
        block = {alias: array[start : start + step] for alias, array in arrays.items()}
        parts += [b",", _rows_json(block, aliases)[1:-1]]
    parts[0] = b"["
    parts.append(b"]")
    return parts


def _rows_json(outputs: Mapping[str, np.ndarray], aliases: Sequence[str]) -> bytes:
    """``[{"a": a[0], "b": b[0]}, ...]``: the row format of several outputs."""
    keys = [orjson.dumps(alias) + b":" for alias in aliases]
    columns = [_row_jsons(alias, np.asarray(outputs[alias])) for alias in aliases]
    rows = (b"{" + b",".join(map(bytes.__add__, keys, parts)) + b"}" for parts in zip(*columns))
    return b"[" + b",".join(rows) + b"]"


def _row_jsons(alias: str, array: np.ndarray) -> list[bytes]:
    """The JSON text of each ``array[i]``, without a Python loop over the elements of numeric arrays."""
    if array.dtype.kind in "OSU":
        return [orjson.dumps(row) for row in _strings_jsonable(alias, array)]
    if not array.size:
        return [_tensor_json(alias, row) for row in array]
    depth = array.ndim - 1
    inner = _tensor_json(alias, array)[array.ndim : -array.ndim]
    # NOTE: numbers (NaN and Infinity too) hold no brackets or commas, so rows meet exactly where `depth`
    # brackets close, a comma follows and `depth` brackets open; deeper seams have fewer brackets.
    seam = b"]" * depth + b"," + b"[" * depth
    return [b"[" * depth + part + b"]" * depth for part in inner.split(seam)]


def _tensor_json(alias: str, value: np.ndarray) -> bytes:
    """The JSON text of one tensor: nested lists, TF Serving's float and bytes conventions."""
    return b"".join(_tensor_parts(alias, value))


def _tensor_parts(alias: str, value: np.ndarray) -> list[bytes]:
    """:func:`_tensor_json`'s text in pieces to be joined."""
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind in "OSU":
        return [orjson.dumps(_strings_jsonable(alias, array))]
    if kind == "f":
        return _float_parts(array)
    if kind in "biu":
        return [_dump_numeric(array)]
    raise Unimplemented(f"Tensor name: {alias} has type {array.dtype}, which JSON cannot express")


def _dump_numeric(array: np.ndarray) -> bytes:
    if array.ndim == 0:
        return orjson.dumps(array[()], option=_NUMPY)  # NOTE: orjson takes numpy scalars, not 0-d arrays.
    return orjson.dumps(np.ascontiguousarray(array), option=_NUMPY)


def floats_json(array: np.ndarray) -> bytes:
    """Floats written exactly as TF Serving writes them (its ``WriteDecimal``).

    Each value is printed with ``%g`` (6 significant digits) when that reads back as the same
    value, else with 9 (float) or 17 (double) digits; ``.0`` is added to whole numbers written
    without an exponent (``3.0``, ``9e+06``, ``1e-05``); NaN and the infinities are the bare tokens
    ``NaN``, ``Infinity`` and ``-Infinity``.
    """
    parts = _float_parts(array)
    return parts[0] if len(parts) == 1 else b"".join(parts)


ENCODE_BLOCK = 1 << 16
"""Floats formatted at once: a large tensor's text is made in blocks of rows of about this many values, so
the Python floats and strings alive at a time stay a few MB (one per value would cost ~100 bytes each)."""


def _float_parts(array: np.ndarray) -> list[bytes]:
    """:func:`floats_json`'s text in pieces: one, or ``[``, blocks of rows along axis 0 (a row too large
    for a block in pieces of its own), and ``]``."""
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32 if array.dtype.itemsize < 4 else np.float64)
    if array.size <= ENCODE_BLOCK:
        return [_floats_text(array)]
    row_size = array.size // len(array)
    parts = []
    if row_size > ENCODE_BLOCK:
        for row in array:
            parts += [b",", *_float_parts(row)]
    else:
        step = ENCODE_BLOCK // row_size
        for start in range(0, len(array), step):
            parts += [b",", _floats_text(array[start : start + step])[1:-1]]
    parts[0] = b"["
    parts.append(b"]")
    return parts


def _floats_text(array: np.ndarray) -> bytes:
    """The text of a float32 or float64 array, as :func:`floats_json` writes it."""
    if not array.size:
        return orjson.dumps(array.tolist())  # nested empty lists, e.g. [[],[]]
    flat = array.ravel()
    values = flat.tolist()
    texts = list(map(_G6, values))
    # NOTE: numpy parses the short forms back in C; only values that do not survive get more digits.
    lossy = np.flatnonzero(np.array(texts, dtype=np.float64).astype(array.dtype) != flat)
    long_form = _G9 if array.dtype == np.float32 else _G17
    for index in lossy.tolist():
        texts[index] = long_form(values[index])
    texts = [t if "." in t or "e" in t or "n" in t else t + ".0" for t in texts]
    if not np.isfinite(flat).all():
        texts = [_NON_FINITE.get(t, t) for t in texts]
    return _nest(texts, array.shape).encode("ascii")


_G6, _G9, _G17 = "%.6g".__mod__, "%.9g".__mod__, "%.17g".__mod__
_NON_FINITE = {"nan": "NaN", "-nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _nest(texts: list[str], shape: tuple[int, ...]) -> str:
    """Join flat element texts into nested JSON lists of ``shape`` (row-major)."""
    if not shape:
        return texts[0]
    if shape[1:] == (1,):  # NOTE: one output per row, the common case: one join, no list per row
        return "[[" + "],[".join(texts) + "]]"
    for size in reversed(shape[1:]):
        texts = ["[" + ",".join(texts[i : i + size]) + "]" for i in range(0, len(texts), size)]
    return "[" + ",".join(texts) + "]"


def _strings_jsonable(alias: str, array: np.ndarray) -> Any:
    """Nested lists of str: ``{"b64": ...}`` objects when ``alias`` ends in ``_bytes``, else UTF-8 text."""
    as_b64 = alias.endswith(_BYTES_SUFFIX)
    values = [_string_jsonable(alias, element, as_b64) for element in array.ravel().tolist()]
    return _string_array(values, array.shape).tolist()


def _string_jsonable(alias: str, element: Any, as_b64: bool) -> Any:
    if isinstance(element, str):
        element = element.encode("utf-8")
    elif not isinstance(element, bytes):
        raise Internal(f"Tensor name: {alias} holds a {type(element).__name__}, not bytes")
    if as_b64:
        return {_B64: base64.b64encode(element).decode("ascii")}
    # NOTE: TF Serving writes the raw bytes, invalid UTF-8 included; JSON text cannot hold those.
    return element.decode("utf-8", errors="replace")


# --- messages -------------------------------------------------------------------------------------


def json_text(value: Any) -> str:
    """``value`` as (compact, possibly shortened) JSON text for an error message."""
    try:
        text = orjson.dumps(value).decode("utf-8")
    except TypeError:  # NOTE: nested deeper than orjson writes (255 levels); repr() would recurse too deep.
        text = reprlib.repr(value)
    return text if len(text) <= _MAX_MESSAGE_VALUE else text[:_MAX_MESSAGE_VALUE] + "..."


def json_type(value: Any) -> str:
    """The JSON type name rapidjson gives ``value`` (TF Serving's messages use it)."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return type(value).__name__
