"""TensorProto <-> numpy: decoding checked against TensorFlow's own C++ parser (``tf.io.parse_tensor`` runs
``Tensor::FromProto``, as TF Serving does), encoding against ``tf.make_ndarray``."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from tfaas.codecs import tensor_proto
from tfaas.errors import InvalidArgument

LIMIT = 1 << 20


def proto(dtype: int, shape: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    message = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        message.tensor_shape.dim.add().size = size
    for name, values in fields.items():
        if name == "tensor_content":
            message.tensor_content = values
        else:
            getattr(message, name).extend(values)
    return message


def tensorflow_parses(message: tensor_pb2.TensorProto) -> np.ndarray:
    return tf.io.parse_tensor(message.SerializeToString(), tf.dtypes.as_dtype(message.dtype)).numpy()


FIELD_CASES = [
    ("one value fills the shape", proto(types_pb2.DT_FLOAT, [2, 3], float_val=[1.5])),
    ("fewer values: the last repeats", proto(types_pb2.DT_FLOAT, [2, 2], float_val=[1.0, 2.0])),
    ("more values: the first ones", proto(types_pb2.DT_FLOAT, [2, 2], float_val=[1, 2, 3, 4, 5])),
    ("no value: zeros", proto(types_pb2.DT_INT64, [3], int64_val=[])),
    ("scalar", proto(types_pb2.DT_DOUBLE, [], double_val=[0.1])),
    ("empty shape", proto(types_pb2.DT_FLOAT, [0, 4])),
    ("int32", proto(types_pb2.DT_INT32, [3], int_val=[-(2**31), 2**31 - 1, 7])),
    ("int8 in int_val", proto(types_pb2.DT_INT8, [2], int_val=[-128, 127])),
    ("uint8 in int_val", proto(types_pb2.DT_UINT8, [2], int_val=[0, 255])),
    ("uint16 in int_val", proto(types_pb2.DT_UINT16, [2], int_val=[65535, 1])),
    ("int16", proto(types_pb2.DT_INT16, [2], int_val=[-32768, 32767])),
    ("uint32", proto(types_pb2.DT_UINT32, [2], uint32_val=[2**32 - 1, 0])),
    ("uint64", proto(types_pb2.DT_UINT64, [2], uint64_val=[2**64 - 1, 0])),
    ("int64 limits", proto(types_pb2.DT_INT64, [2], int64_val=[-(2**63), 2**63 - 1])),
    ("bool", proto(types_pb2.DT_BOOL, [3], bool_val=[True, False])),
    ("half as bits", proto(types_pb2.DT_HALF, [2], half_val=[np.float16(1.5).view(np.uint16), 0x7C00])),
    ("bfloat16 as bits", proto(types_pb2.DT_BFLOAT16, [2], half_val=[ml_dtypes.bfloat16(2.5).view(np.uint16)])),
    ("complex64 pairs", proto(types_pb2.DT_COMPLEX64, [2], scomplex_val=[1, 2, 3, 4])),
    ("complex128 pairs", proto(types_pb2.DT_COMPLEX128, [1], dcomplex_val=[1, -1])),
    ("strings", proto(types_pb2.DT_STRING, [2, 2], string_val=[b"a", b"\x00\xff", b""])),
    ("no string", proto(types_pb2.DT_STRING, [2])),
    ("content", proto(types_pb2.DT_FLOAT, [2, 2], tensor_content=np.float32([1, 2, 3, 4]).tobytes())),
    ("content int64", proto(types_pb2.DT_INT64, [2], tensor_content=np.int64([-1, 2**62]).tobytes())),
    ("content wins", proto(types_pb2.DT_INT32, [1], int_val=[5], tensor_content=np.int32([9]).tobytes())),
]


@pytest.mark.parametrize("message", [case[1] for case in FIELD_CASES], ids=[case[0] for case in FIELD_CASES])
def test_decodes_as_tensorflow_does(message: tensor_pb2.TensorProto) -> None:
    expected = tensorflow_parses(message)
    decoded = tensor_proto.decode(message, "x", LIMIT)
    assert decoded.shape == expected.shape
    assert decoded.dtype == expected.dtype
    assert decoded.tolist() == expected.tolist()


def test_content_is_read_without_a_copy() -> None:
    message = proto(types_pb2.DT_FLOAT, [1024, 64], tensor_content=np.ones((1024, 64), np.float32).tobytes())
    decoded = tensor_proto.decode(message, "x", LIMIT)
    assert not decoded.flags.owndata and decoded.base is not None


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (
            proto(types_pb2.DT_FLOAT, [2, 2], tensor_content=b"\0" * 12),
            "tensor_content has 12 bytes, where shape [2,2]",
        ),
        (proto(types_pb2.DT_INT32, [-1], int_val=[1]), "negative dimension in shape [-1]"),
        (proto(types_pb2.DT_INVALID, [1]), "unsupported dtype 0"),
        (proto(types_pb2.DT_RESOURCE, [1]), "unsupported dtype 20"),
        (proto(999, [1]), "unsupported dtype 999"),
        (proto(types_pb2.DT_QINT8, [1]), "unsupported dtype 11"),
        (proto(types_pb2.DT_STRING, [1], tensor_content=b"\x01a"), "DT_STRING in tensor_content"),
        (proto(types_pb2.DT_FLOAT, [1 << 30, 1 << 30], float_val=[0]), "takes 4611686018427387904 bytes, over"),
        (proto(types_pb2.DT_STRING, [1 << 20], string_val=[b"a"]), "takes 8388608 bytes, over the 1048576"),
    ],
)
def test_malformed_protos_are_invalid_arguments(message: tensor_pb2.TensorProto, why: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        tensor_proto.decode(message, "x", LIMIT)
    assert error.value.message.startswith("tensor parsing error: x: ")
    assert why in error.value.message


def test_unknown_rank_is_an_invalid_argument() -> None:
    message = proto(types_pb2.DT_FLOAT, [], float_val=[1])
    message.tensor_shape.unknown_rank = True
    with pytest.raises(InvalidArgument, match="unknown rank"):
        tensor_proto.decode(message, "x", LIMIT)


OUTPUTS = [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    np.array([np.nan, np.inf, -0.0], np.float64),
    np.array(2.5, np.float32),
    np.array([[-(2**31), 2**31 - 1]], np.int32),
    np.array([-(2**63), 2**63 - 1], np.int64),
    np.array([0, 255], np.uint8),
    np.array([-128, 127], np.int8),
    np.array([-32768, 32767], np.int16),
    np.array([65535], np.uint16),
    np.array([2**32 - 1], np.uint32),
    np.array([2**64 - 1], np.uint64),
    np.array([True, False, True]),
    np.array([1.5, -2.0, 65504], np.float16),
    np.array([1.5, -2.0], ml_dtypes.bfloat16),
    np.array([1 + 2j, -3j], np.complex64),
    np.array([1 + 2j], np.complex128),
    np.array([[b"a", b"\x00\xff"], [b"", b"xyz"]], object),
    np.zeros((0, 3), np.float32),
]


@pytest.mark.parametrize("array", OUTPUTS, ids=[f"{a.dtype}{list(a.shape)}" for a in OUTPUTS])
def test_encodes_typed_fields_that_tensorflow_reads_back(array: np.ndarray) -> None:
    message = tensor_pb2.TensorProto()
    tensor_proto.encode(array, message)
    assert not message.tensor_content  # NOTE: TF Serving's default: the typed field
    back = tf.make_ndarray(tensor_pb2.TensorProto.FromString(message.SerializeToString()))
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(tensor_proto.decode(message, "y", LIMIT), array)  # NOTE: and our own decoder


def test_float_outputs_are_read_from_float_val() -> None:
    message = tensor_pb2.TensorProto()
    tensor_proto.encode(np.float32([[0.5, 1.5]]), message)
    assert message.dtype == types_pb2.DT_FLOAT
    assert list(message.float_val) == [0.5, 1.5]
    assert [d.size for d in message.tensor_shape.dim] == [1, 2]


def test_string_outputs_of_numpy_strings() -> None:
    message = tensor_pb2.TensorProto()
    tensor_proto.encode(np.array(["é", "b"]), message)
    assert message.dtype == types_pb2.DT_STRING and list(message.string_val) == ["é".encode(), b"b"]


def test_dtype_names() -> None:
    assert tensor_proto.dtype_name(types_pb2.DT_HALF) == "DT_HALF" and tensor_proto.dtype_name(999) == "999"
