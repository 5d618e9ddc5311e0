"""PAI-EAS's TensorFlow processor format (``tf_predict.proto``) as the inference service's requests and
results: a serialized ``PredictRequest`` to a service ``PredictRequest``, a ``PredictResult`` to a serialized
``PredictResponse``, and a version's metadata to EAS's model structure JSON.

An ``ArrayProto`` carries its dtype (``ArrayDataType``, TensorFlow's ``DataType`` numbers), its shape and its
values flattened into the one repeated field of that dtype (``float_val``, ``int_val``...), as EAS's SDKs
fill them. Every dtype of the enum that TensorFlow feeds is decoded, with EAS's fields: the small ints and
the quantized ints from ``int_val`` (range-checked), ``DT_HALF`` and ``DT_BFLOAT16`` from ``float_val``
(EAS names no field for them; its SDK cannot send them). Complex numbers, resources and variants have no
field and are refused, as are a shape whose product is not the number of values, a negative dim, values
in another dtype's field and an unknown dtype: all ``InvalidArgument`` (HTTP 400).

numpy and the generated messages only: no TensorFlow here (``ml_dtypes``, TensorFlow's own bfloat16, only
for a bfloat16 array). The EAS warm-up replay (``tfaas.servables.eas_warmup``) decodes with
:func:`decode_inputs` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from tfaas.errors import FailedPrecondition, InvalidArgument, Unimplemented
from tfaas.inference.types import ModelMetadata, PredictRequest, PredictResult
from tfaas.protos import tf_predict_pb2 as eas
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE, INT64_MAX, PREDICT_METHOD_NAME, shape_text

_MAX_RANK = 64 if int(np.__version__.split(".")[0]) >= 2 else 32  # NOTE: numpy's NPY_MAXDIMS.
_VALUE_FIELDS = ("float_val", "double_val", "int_val", "string_val", "int64_val", "bool_val")


@dataclass(frozen=True)
class _Kind:
    """How one ``ArrayDataType`` travels: the repeated field holding its values and the numpy dtype it is
    fed as (TensorFlow's own numpy dtype for it: a one-field structured dtype for the quantized ints)."""

    field: str
    dtype: np.dtype | str  # NOTE: "bfloat16": ml_dtypes' dtype, imported only when one is decoded

    def numpy_dtype(self) -> np.dtype:
        if self.dtype == "bfloat16":
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(self.dtype)


def _quantized(name: str, base: str) -> np.dtype:
    """TensorFlow's numpy dtype for a quantized int (``tf.qint8.as_numpy_dtype``): ``[(name, base)]``."""
    return np.dtype([(name, base)])


_FED: dict[int, _Kind] = {
    eas.DT_FLOAT: _Kind("float_val", np.dtype(np.float32)),
    eas.DT_DOUBLE: _Kind("double_val", np.dtype(np.float64)),
    eas.DT_INT32: _Kind("int_val", np.dtype(np.int32)),
    eas.DT_UINT8: _Kind("int_val", np.dtype(np.uint8)),
    eas.DT_INT16: _Kind("int_val", np.dtype(np.int16)),
    eas.DT_INT8: _Kind("int_val", np.dtype(np.int8)),
    eas.DT_STRING: _Kind("string_val", np.dtype(object)),
    eas.DT_INT64: _Kind("int64_val", np.dtype(np.int64)),
    eas.DT_BOOL: _Kind("bool_val", np.dtype(np.bool_)),
    eas.DT_QINT8: _Kind("int_val", _quantized("qint8", "i1")),
    eas.DT_QUINT8: _Kind("int_val", _quantized("quint8", "u1")),
    eas.DT_QINT32: _Kind("int_val", _quantized("qint32", "<i4")),
    eas.DT_BFLOAT16: _Kind("float_val", "bfloat16"),
    eas.DT_QINT16: _Kind("int_val", _quantized("qint16", "<i2")),
    eas.DT_QUINT16: _Kind("int_val", _quantized("quint16", "<u2")),
    eas.DT_UINT16: _Kind("int_val", np.dtype(np.uint16)),
    eas.DT_HALF: _Kind("float_val", np.dtype(np.float16)),
}
"""Every ``ArrayDataType`` a request may carry. Not here: DT_INVALID (unset), the complex types (no field holds
them), DT_RESOURCE and DT_VARIANT (not fed from values)."""

_PLAIN_OUTPUTS: dict[np.dtype, int] = {
    np.dtype(np.float32): eas.DT_FLOAT,
    np.dtype(np.float64): eas.DT_DOUBLE,
    np.dtype(np.float16): eas.DT_HALF,
    np.dtype(np.int8): eas.DT_INT8,
    np.dtype(np.int16): eas.DT_INT16,
    np.dtype(np.int32): eas.DT_INT32,
    np.dtype(np.int64): eas.DT_INT64,
    np.dtype(np.uint8): eas.DT_UINT8,
    np.dtype(np.uint16): eas.DT_UINT16,
    np.dtype(np.bool_): eas.DT_BOOL,
}
"""The ``ArrayDataType`` of an output by its numpy dtype, where it is one of the enum's."""

_WIDENED_OUTPUTS = (np.dtype(np.uint32), np.dtype(np.uint64))
"""Unsigned outputs the enum has no type for: answered as DT_INT64 (uint64 only while its values fit)."""


# ---- requests ---------------------------------------------------------------------------------------


def parse_request(data: bytes | bytearray) -> eas.PredictRequest:
    """A serialized EAS ``PredictRequest``; ``InvalidArgument`` for bytes that are not one."""
    message = eas.PredictRequest()
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as error:
        raise InvalidArgument(f"The body is not a serialized EAS PredictRequest: {error}") from None
    return message


def predict_request(spec: ModelSpec, message: eas.PredictRequest) -> PredictRequest:
    """The service's predict request for ``message``: its inputs decoded, an empty ``signature_name`` meaning
    the default signature, ``output_filter`` as sent (the service checks its aliases)."""
    return PredictRequest(
        spec,
        decode_inputs(message),
        signature_name=message.signature_name or DEFAULT_SIGNATURE,
        output_filter=tuple(message.output_filter),
    )


def decode_inputs(message: eas.PredictRequest) -> dict[str, np.ndarray]:
    """Every input of ``message`` as a numpy array (see :func:`decode_array`), by alias."""
    return {alias: decode_array(alias, array) for alias, array in message.inputs.items()}


def decode_array(alias: str, array: eas.ArrayProto) -> np.ndarray:
    """The numpy array an ``ArrayProto`` holds: its values, of its dtype, reshaped to its ``array_shape``.

    ``InvalidArgument`` for a dtype that cannot be fed, values in another dtype's field, a negative dim, a
    shape whose product differs from the number of values, and an int outside its dtype's range.
    """
    kind = _FED.get(array.dtype)
    if kind is None:
        raise InvalidArgument(f"Input {alias}: {_dtype_name(array.dtype)} cannot be fed from an EAS ArrayProto")
    shape = tuple(array.array_shape.dim)
    _check_shape(alias, shape)
    stray = next((name for name in _VALUE_FIELDS if name != kind.field and len(getattr(array, name))), None)
    if stray is not None:
        raise InvalidArgument(
            f"Input {alias} is {_dtype_name(array.dtype)}, whose values go in {kind.field}, but it has values"
            f" in {stray}"
        )
    values = getattr(array, kind.field)
    if len(values) != math.prod(shape):
        raise InvalidArgument(
            f"Input {alias}: array_shape {shape_text(shape)} holds {math.prod(shape)} values, but {len(values)} were"
            f" sent in {kind.field}"
        )
    flat = _values_array(alias, values, kind)
    try:
        return flat.reshape(shape)
    except ValueError as error:  # NOTE: an empty array whose other dims overflow numpy's sizes
        raise InvalidArgument(f"Input {alias}: array_shape {shape_text(shape)} is too large: {error}") from None


def _check_shape(alias: str, shape: tuple[int, ...]) -> None:
    if any(dim < 0 for dim in shape):
        raise InvalidArgument(f"Input {alias}: array_shape {shape_text(shape)} has a negative dimension")
    if len(shape) > _MAX_RANK:
        raise InvalidArgument(f"Input {alias}: array_shape has {len(shape)} dimensions, more than {_MAX_RANK}")


def _values_array(alias: str, values: Any, kind: _Kind) -> np.ndarray:
    """The flat values as ``kind``'s numpy dtype; ints narrower than ``int_val``'s int32 are range-checked."""
    dtype = kind.numpy_dtype()
    if dtype.kind == "O":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)  # NOTE: assigned, not np.array(list): bytes of equal length would make 'S' arrays
        return array
    if kind.field != "int_val":
        return np.array(values, dtype=np.float32 if kind.field == "float_val" else dtype).astype(dtype, copy=False)
    ints = np.array(values, dtype=np.int32)
    base = dtype.fields[dtype.names[0]][0] if dtype.names else dtype
    info = np.iinfo(base)
    if ints.size and (ints.min() < info.min or ints.max() > info.max):
        bad = ints[(ints < info.min) | (ints > info.max)][0]
        raise InvalidArgument(f"Input {alias}: value {bad} is out of range for {base.name} ({info.min}..{info.max})")
    return ints.astype(base).view(dtype)


def _dtype_name(number: int) -> str:
    """An ``ArrayDataType``'s name, or the number of one the enum does not have."""
    try:
        return eas.ArrayDataType.Name(number)
    except ValueError:
        return f"dtype {number} (not an ArrayDataType)"


# ---- responses --------------------------------------------------------------------------------------


def encode_response(result: PredictResult) -> bytes:
    """A serialized EAS ``PredictResponse`` of the result's outputs."""
    response = eas.PredictResponse()
    for alias, value in result.outputs.items():
        encode_array(alias, np.asarray(value), response.outputs[alias])
    return response.SerializeToString()


def encode_array(alias: str, value: np.ndarray, array: eas.ArrayProto) -> None:
    """Fill ``array`` with ``value``: its dtype, shape, and values flattened into the dtype's field.

    uint32 (and uint64 that fits) goes as DT_INT64, the enum having neither; an output the enum cannot carry
    at all (complex, uint64 beyond int64) is ``Unimplemented``. NOTE: a quantized output comes as its plain
    int (DT_INT8 for a qint8...): the servable's outputs are ``np.asarray`` of TensorFlow's tensors, which drops it.
    """
    dtype = _output_dtype(alias, value)
    kind = _FED[dtype]
    array.dtype = dtype
    array.array_shape.dim.extend(value.shape)
    if kind.field == "float_val" and value.dtype != np.float32:
        value = value.astype(np.float32)  # NOTE: half and bfloat16 widen exactly
    getattr(array, kind.field).extend(value.ravel().tolist())


def _output_dtype(alias: str, value: np.ndarray) -> int:
    dtype = value.dtype
    if dtype in _PLAIN_OUTPUTS:
        return _PLAIN_OUTPUTS[dtype]
    if dtype.kind in "OS":
        return eas.DT_STRING
    if dtype.name == "bfloat16":
        return eas.DT_BFLOAT16
    if dtype in _WIDENED_OUTPUTS and (dtype == np.uint32 or not value.size or value.max() <= INT64_MAX):
        return eas.DT_INT64
    raise Unimplemented(f"Output {alias} has dtype {dtype}, which an EAS ArrayProto cannot carry")


# ---- the model structure ------------------------------------------------------------------------------


def structure_json(metadata: ModelMetadata) -> bytes:
    """EAS's answer to an empty request: the inputs and outputs of one signature of the version, and its name.

    ``{"inputs": [{"name", "shape", "type"}], "outputs": [...], "signature_name"}``, a shape with -1 for an
    unknown dim (``null`` for an unknown rank), a type as its ``DT_*`` name. The signature is the default one
    when it is a predict signature, else the first predict signature by name, else the first by name: EAS
    answers ``predict_images`` for TF Serving's ``mnist_saved_model``, whose default signature classifies.
    """
    signatures = {
        key: signature
        for key, signature in metadata.signature_def_map["signature_def"].items()
        if not key.startswith("__")  # NOTE: __saved_model_init_op and the like run nothing a client feeds
    }
    if not signatures:
        raise FailedPrecondition(f"Model {metadata.spec.name} version {metadata.spec.version} has no signature")
    key = _described_signature(signatures)
    signature = signatures[key]
    return orjson.dumps(
        {
            "inputs": _tensors(signature.get("inputs", {})),
            "outputs": _tensors(signature.get("outputs", {})),
            "signature_name": key,
        }
    )


def _described_signature(signatures: Mapping[str, Any]) -> str:
    predict = sorted(
        key for key, signature in signatures.items() if signature.get("method_name") == PREDICT_METHOD_NAME
    )
    if DEFAULT_SIGNATURE in predict:
        return DEFAULT_SIGNATURE
    return predict[0] if predict else sorted(signatures)[0]


def _tensors(infos: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A signature's TensorInfos (protobuf JSON) as EAS lists them, by alias."""
    return [
        {"name": alias, "shape": _dims(info), "type": info.get("dtype", "DT_INVALID")}
        for alias, info in sorted(infos.items())
    ]


def _dims(info: Mapping[str, Any]) -> list[int] | None:
    shape = info.get("tensor_shape", {})
    if shape.get("unknown_rank", False):
        return None
    return [int(dim.get("size", -1)) for dim in shape.get("dim", [])]
