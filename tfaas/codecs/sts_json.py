"""Simple TensorFlow Serving's inference call (``POST /``) to the inference service's types and back, and
its example request (``gen_json``).

A request is JSON, ``{"model_name", "model_version", "signature_name", "data": {alias: nested list}}``, or a
multipart form whose ``image``/``images`` files become URL-safe base64 strings under the alias ``images``
(STS's image models decode them in the graph). STS feeds each list to TensorFlow as it is, which converts
it the way numpy does: numbers go into any numeric input (``11.0`` into an int32 one, truncated), booleans
count as 0 and 1. The answer is ``{output alias: nested list}`` with the keys sorted, as Flask's
``jsonify`` writes it, trailing newline included. Error messages are STS's where STS has one; where STS
fails with a 500 (TensorFlow's errors, Python 3's missing ``e.message``), the message is ours and the
status a 400. numpy, orjson and Werkzeug's form parser only: no TensorFlow, no transport.
"""

from __future__ import annotations

import base64
import io
import reprlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import orjson
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

from tfaas.codecs.json_tensor import JOINED_BYTES, dense_leaves, dense_shape, json_text, named_tensors_parts
from tfaas.codecs.tf_serving_json import parse_json_body
from tfaas.errors import InvalidArgument
from tfaas.inference.types import PredictRequest, PredictResult
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE, INT64_MAX

DEFAULT_MODEL = "default"
"""The model a request that names none asks for (STS's ``--model_name`` default)."""

IMAGES_ALIAS = "images"
"""The input a form's image files are fed to, as base64 strings."""

ESTIMATOR_EXAMPLES_TENSOR = "input_example_tensor:0"
"""The tensor whose strings ``"base64_decode": true`` decodes (an Estimator's serialized tf.Examples)."""

_SHOWN_CHARS = 200  # NOTE: longest quote of a request in an error message (STS quotes it all).

_NUMERIC_DTYPES = {
    "DT_HALF": np.float16,
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
}
_NUMBERS = frozenset({int, float, bool})


@dataclass
class StsCall:
    """One ``POST /`` request, parsed: the model it names and what it feeds. ``data`` is the request's
    ``data`` value as sent (anything: the decoder checks it), ``None`` when the request has none."""

    model_name: str = DEFAULT_MODEL
    version: int | None = None
    signature_name: str = DEFAULT_SIGNATURE
    data: Any = None
    base64_decode: bool = False
    decoded: bool = field(default=False, init=False)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.model_name, self.version)

    def request(self) -> PredictRequest:
        """The service's predict request, whose inputs :meth:`decode` makes for the signature that runs."""
        return PredictRequest(self.spec, self.decode, self.signature_name)

    def decode(self, signature: SignatureInfo) -> dict[str, np.ndarray]:
        """Every input of ``signature`` from ``data`` (extra keys ignored, as STS does); STS's message for
        a missing one. ``decoded`` tells afterwards that the signature was found."""
        self.decoded = True
        data = self.data
        inputs = {}
        for alias, info in signature.inputs.items():
            if not isinstance(data, dict) or alias not in data:
                raise InvalidArgument(
                    f"Input op name '{alias}' does not exist in input data: {_python_text(data)}, please check"
                    " the request JSON"
                )
            inputs[alias] = decode_input(data[alias], info, self.base64_decode)
        return inputs


# ---- requests -------------------------------------------------------------------------------------


def parse_request(body: bytes | bytearray, content_type: str | None) -> StsCall:
    """A ``POST /`` body as STS reads it, by its content type: JSON (also with no content type, where
    STS fails), or a multipart form; any other type is refused with STS's message."""
    media_type = (content_type or "application/json").lower()
    if media_type.startswith("application/json"):
        return json_call(body)
    if media_type.startswith("multipart/form-data"):
        return form_call(body, content_type or "")
    raise InvalidArgument("Error, unsupported content type")


def json_call(body: bytes | bytearray) -> StsCall:
    """A JSON request; STS's message for a body that is not a JSON object."""
    try:
        request = parse_json_body(body)
    except InvalidArgument:
        raise InvalidArgument(f"Invalid json data: {_bytes_text(body)}") from None
    if "data" not in request:
        raise InvalidArgument("Inference with empty data, please check the request JSON")
    return StsCall(
        model_name=_model_name(request.get("model_name", DEFAULT_MODEL)),
        version=_version(request.get("model_version")),
        signature_name=_signature_name(request.get("signature_name", DEFAULT_SIGNATURE)),
        data=request["data"],
        base64_decode=request.get("base64_decode") is True,
    )


def form_call(body: bytes | bytearray, content_type: str) -> StsCall:
    """A multipart form: ``image`` and/or ``images`` files (URL-safe base64 under ``images``, in that
    order) and the text fields ``model_version``, ``signature_name`` and, unlike STS (which always asks
    for ``default``), ``model_name``."""
    media_type, options = parse_options_header(content_type)
    try:
        _, form, files = FormDataParser(silent=False).parse(io.BytesIO(body), media_type, len(body), options)
    except ValueError as error:
        raise InvalidArgument(f"Invalid form-data: {error}") from None
    images = files.getlist("image")[:1] + files.getlist("images")
    if not images:
        raise InvalidArgument("Invalid form-data: the form has no 'image' or 'images' file")
    return StsCall(
        model_name=_model_name(form.get("model_name", DEFAULT_MODEL)),
        version=_version(form.get("model_version")),
        signature_name=form.get("signature_name", DEFAULT_SIGNATURE),
        data={IMAGES_ALIAS: [base64.urlsafe_b64encode(image.read()).decode("ascii") for image in images]},
    )


def _model_name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"Invalid model name: {_python_text(value)}, a model name is a string")
    return value


def _version(value: Any) -> int | None:
    """``model_version`` as a number or a decimal string (STS looks it up as ``str(value)``)."""
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isdecimal() or int(text) > INT64_MAX:
        raise InvalidArgument(f"Invalid model version: {_python_text(value)}, a version is a decimal number")
    return int(text)


def _signature_name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(
            f"Fail to request the signature name: {_python_text(value)}, please check the request JSON"
        )
    return value


def unknown_signature(signature_name: str) -> InvalidArgument:
    """STS's error for a signature the model does not have."""
    return InvalidArgument(f"Fail to request the signature name: {signature_name}, please check the request JSON")


def unknown_model(model_name: str, models: list[str]) -> InvalidArgument:
    """STS's error for a model the server does not serve (its Python 3 rendering of the model names)."""
    return InvalidArgument(f"Invalid model name: {model_name}, available models: dict_keys({models!r})")


# ---- inputs ---------------------------------------------------------------------------------------


def decode_input(value: Any, info: TensorInfo, base64_decode: bool = False) -> np.ndarray:
    """One ``data`` value as an array of the input's dtype, converted as TensorFlow's feed converts a list.

    Numeric inputs take numbers and booleans; a float fed to an integer input is truncated (``2.7`` →
    ``2``), as numpy casts, but one outside the dtype's range is refused. String inputs take strings (UTF-8
    encoded), URL-safe base64 decoded for an Estimator's ``input_example_tensor:0`` with ``base64_decode``.
    """
    shape = dense_shape(value)
    leaves = dense_leaves(value, shape)
    if leaves is None:
        raise InvalidArgument(f"Input '{info.alias}' is not a tensor: its lists differ in length or depth")
    if info.dtype == "DT_STRING":
        decode = base64_decode and info.tensor_name == ESTIMATOR_EXAMPLES_TENSOR
        return _strings(leaves, shape, info.alias, decode)
    dtype = _NUMERIC_DTYPES.get(info.dtype)
    if dtype is None:
        raise InvalidArgument(f"Input '{info.alias}' has dtype {info.dtype}, which JSON cannot feed")
    for leaf in leaves:
        if type(leaf) not in _NUMBERS:
            raise InvalidArgument(f"Input '{info.alias}' takes numbers ({info.dtype}), not {json_text(leaf)}")
    return _numbers(leaves, np.dtype(dtype), info.alias).reshape(shape)


def _numbers(leaves: list[Any], dtype: np.dtype, alias: str) -> np.ndarray:
    """Numbers (and booleans) as ``dtype``: floats truncated into an integer dtype within its range."""
    try:
        if dtype.kind not in "iu" or all(type(leaf) is not float for leaf in leaves):
            with np.errstate(over="ignore"):  # NOTE: floats beyond float32's range become +-inf, as numpy casts
                return np.array(leaves, dtype=dtype)
        floats = np.trunc(np.array(leaves, dtype=np.float64))
    except OverflowError:
        raise InvalidArgument(f"Input '{alias}' holds a number out of the range of {dtype.name}") from None
    limits = np.iinfo(dtype)
    # NOTE: max + 1 is a power of two, exact as a float where max itself may round up (int64, uint64).
    if not ((floats >= float(limits.min)) & (floats < float(limits.max) + 1)).all():
        raise InvalidArgument(f"Input '{alias}' holds a number out of the range of {dtype.name}")
    return floats.astype(dtype)


def _strings(leaves: list[Any], shape: list[int], alias: str, base64_decode: bool) -> np.ndarray:
    values = np.empty(len(leaves), dtype=object)
    for index, leaf in enumerate(leaves):
        if not isinstance(leaf, str):
            raise InvalidArgument(f"Input '{alias}' takes strings (DT_STRING), not {json_text(leaf)}")
        values[index] = _urlsafe_b64decode(leaf, alias) if base64_decode else leaf.encode("utf-8")
    return values.reshape(shape)


def _urlsafe_b64decode(text: str, alias: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except ValueError:  # NOTE: binascii.Error and UnicodeEncodeError are ValueErrors
        raise InvalidArgument(f"Input '{alias}' holds a string that is not URL-safe base64") from None


# ---- answers --------------------------------------------------------------------------------------


def encode_answer(result: PredictResult) -> list[bytes]:
    """``{output alias: nested list}``, keys sorted, and a newline, as Flask's ``jsonify`` ends a body; in
    pieces when large (see ``json_tensor``). Floats are written as TF Serving writes them (the shortest text
    that reads back as the same float32 or float64), strings as UTF-8 text (``{"b64": ...}`` for an alias
    ending in ``_bytes``)."""
    parts = [*named_tensors_parts(result.outputs), b"\n"]
    return parts if sum(map(len, parts)) > JOINED_BYTES else [b"".join(parts)]


# ---- gen_json --------------------------------------------------------------------------------------

EXAMPLE_BATCH = 2
"""What an unknown dimension becomes in an example request (STS's batch size)."""

_INT_DTYPES = frozenset(name for name, dtype in _NUMERIC_DTYPES.items() if np.dtype(dtype).kind in "iu")
_EXAMPLE_VALUES: Mapping[str, Any] = {"DT_BOOL": True, "DT_STRING": ""}


def example_request(model_name: str, signature_def_map: Mapping[str, Any]) -> dict[str, Any]:
    """A request body ``POST /`` accepts for ``model_name``: its input signature's every input filled with
    ``1`` (integers), ``1.0`` (floats), ``true`` or ``""`` in its shape, ``EXAMPLE_BATCH`` for an unknown dim.

    ``signature_def_map`` is a version's SignatureDefs as TF Serving's metadata gives them. The signature
    is STS's choice: ``serving_default``, else ``predict``, else the first by name; ``signature_name`` is
    named only when it is not the default, and ``model_name`` always (STS's has only ``data``, which asks
    for the model ``default``).
    """
    signatures = {
        name: signature for name, signature in signature_def_map["signature_def"].items() if not name.startswith("__")
    }
    if not signatures:
        raise InvalidArgument(f"Model {model_name} has no signature to build an example request for")
    name = next((n for n in (DEFAULT_SIGNATURE, "predict") if n in signatures), min(signatures))
    body: dict[str, Any] = {"model_name": model_name}
    if name != DEFAULT_SIGNATURE:
        body["signature_name"] = name
    body["data"] = example_inputs(signatures[name])
    return body


def example_inputs(signature: Mapping[str, Any]) -> dict[str, Any]:
    """``{alias: value}`` for every input of ``signature`` (a SignatureDef as TF Serving's metadata gives
    it), each filled as :func:`example_request` says, aliases sorted."""
    return {alias: _example_value(tensor) for alias, tensor in sorted(signature.get("inputs", {}).items())}


def example_json(model_name: str, signature_def_map: Mapping[str, Any]) -> bytes:
    """:func:`example_request` as JSON text."""
    return orjson.dumps(example_request(model_name, signature_def_map))


def _example_value(tensor: Mapping[str, Any]) -> Any:
    dtype = tensor.get("dtype", "")
    value = _EXAMPLE_VALUES.get(dtype, 1 if dtype in _INT_DTYPES else 1.0)
    shape = tensor.get("tensor_shape", {})
    dims = [-1] if shape.get("unknown_rank") else [int(dim["size"]) for dim in shape.get("dim", [])]
    for size in reversed(dims):
        value = [value] * (EXAMPLE_BATCH if size < 0 else size)
    return value


# ---- messages -------------------------------------------------------------------------------------


def _bounded_repr() -> reprlib.Repr:
    """Python's ``repr``, bounded: a large request is never printed whole (a dict's keys come sorted)."""
    bounded = reprlib.Repr()  # NOTE: Python 3.11's takes no keyword arguments
    bounded.maxlevel, bounded.maxdict, bounded.maxlist = 8, 50, 100
    bounded.maxstring = bounded.maxother = _SHOWN_CHARS
    return bounded


_REPR = _bounded_repr()


def _python_text(value: Any) -> str:
    """``value`` as STS's messages print it (Python's ``repr``), shortened."""
    return _shortened(_REPR.repr(value))


def _bytes_text(body: bytes | bytearray) -> str:
    """A body as STS quotes it (Python 3's ``b'...'``), shortened."""
    return _shortened(repr(bytes(body[: _SHOWN_CHARS + 1])))


def _shortened(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
