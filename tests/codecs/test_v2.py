"""The Open Inference Protocol's shared facts: datatypes, binary tensor data both ways, model specs from version
strings, and how a request's tensors must fit a signature."""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest

from tfaas.codecs import v2
from tfaas.errors import InvalidArgument, Unimplemented
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec

SIGNATURE = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    {
        "ids": TensorInfo("ids", "ids:0", "DT_INT64", (None, 3)),
        "any": TensorInfo("any", "any:0", "DT_FLOAT", None),
        "c": TensorInfo("c", "c:0", "DT_COMPLEX64", (None,)),
    },
)

EVERY_DATATYPE = [
    ("BOOL", np.array([True, False])),
    ("UINT8", np.array([0, 255], np.uint8)),
    ("UINT16", np.array([0, 65535], np.uint16)),
    ("UINT32", np.array([0, 2**32 - 1], np.uint32)),
    ("UINT64", np.array([0, 2**64 - 1], np.uint64)),
    ("INT8", np.array([-128, 127], np.int8)),
    ("INT16", np.array([-(2**15), 2**15 - 1], np.int16)),
    ("INT32", np.array([-(2**31), 2**31 - 1], np.int32)),
    ("INT64", np.array([-(2**63), 2**63 - 1], np.int64)),
    ("FP16", np.array([0.5, -65504], np.float16)),
    ("FP32", np.array([1.5, np.inf], np.float32)),
    ("FP64", np.array([1e300, np.nan], np.float64)),
    ("BF16", np.array([1.5, -2], ml_dtypes.bfloat16)),
    ("BYTES", v2.bytes_array([b"", b"\x00\xff"])),
]


@pytest.mark.parametrize("datatype,array", EVERY_DATATYPE, ids=[d for d, _ in EVERY_DATATYPE])
def test_every_datatype_goes_to_binary_and_back(datatype, array):
    assert v2.datatype_of(array, "t") == datatype
    assert v2.datatype_of_tf(v2.DATATYPES[datatype][0]) == datatype
    header = v2.tensor_header("t", datatype, [2, 1])
    back = v2.from_binary(v2.to_binary(array), header)
    assert back.shape == (2, 1) and back.dtype == array.dtype
    np.testing.assert_array_equal(back.ravel(), array)


def test_binary_data_is_little_endian_and_bytes_elements_length_prefixed():
    assert v2.to_binary(np.array([1, 256], ">i4")) == bytes.fromhex("01000000 00010000")
    assert v2.to_binary(np.array(["é", b"ab"], np.object_)) == struct.pack("<I", 2) + "é".encode() + b"\x02\0\0\0ab"
    assert v2.to_binary(np.ones((2, 2), np.int8)[:, :1]) == b"\x01\x01"  # NOTE: a strided view, made contiguous


@pytest.mark.parametrize(
    "data,shape,message",
    [
        (b"\x00" * 7, [2], "has 7 bytes of data, but FP32 elements of shape [2] take 8"),
        (b"\x00" * 8, [3], "has 8 bytes of data, but FP32 elements of shape [3] take 12"),
    ],
)
def test_binary_data_must_hold_exactly_the_elements(data, shape, message):
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        v2.from_binary(data, v2.tensor_header("t", "FP32", shape))


@pytest.mark.parametrize(
    "data,count",
    [
        (b"\x01\x00\x00\x00a\x01\x00\x00\x00b\x00", 2),  # a byte left over
        (b"\x01\x00\x00\x00a", 2),  # one element short
        (b"\x01\x00\x00\x00a\x01\x00\x00\x00b", 1),  # one element too many
        (b"\x01\x00\x00", 1),  # a length cut short
        (b"", 1),
    ],
)
def test_bytes_data_must_be_exactly_the_elements(data, count):
    with pytest.raises(InvalidArgument, match="its BYTES data must be exactly"):
        v2.from_binary(data, v2.tensor_header("t", "BYTES", [count]))


def test_a_bytes_length_past_the_end_is_refused_before_reading():
    with pytest.raises(InvalidArgument, match="element 0 is 4294967295 bytes long, past the end of its data"):
        v2.from_binary(b"\xff\xff\xff\xffabc", v2.tensor_header("t", "BYTES", [1]))


def test_an_empty_tensor_and_a_scalar():
    assert v2.from_binary(b"", v2.tensor_header("t", "FP32", [0, 5])).shape == (0, 5)
    assert v2.from_binary(b"\x00\x00\x80\x3f", v2.tensor_header("t", "FP32", [])).tolist() == 1.0


@pytest.mark.parametrize(
    "name,datatype,shape,message",
    [
        (3, "FP32", [1], "Every input needs a 'name' string"),
        ("x", "FLOAT32", [1], "Input 'x' has an unknown datatype 'FLOAT32'"),
        ("x", "FP32", "1", "Input 'x' needs a 'shape'"),
        ("x", "FP32", None, "Input 'x' needs a 'shape'"),
        ("x", "FP32", [1, -1], "dimensions are integers of 0 or more"),
        ("x", "FP32", [True], "dimensions are integers of 0 or more"),
        ("x", "FP32", [1.0], "dimensions are integers of 0 or more"),
    ],
)
def test_malformed_headers(name, datatype, shape, message):
    with pytest.raises(InvalidArgument, match=message):
        v2.tensor_header(name, datatype, shape)


def test_a_huge_shape_is_refused_by_its_element_count_before_any_allocation():
    header = v2.tensor_header("t", "FP64", [2**40, 2**40])
    with pytest.raises(InvalidArgument, match="take 9671406556917033397649408"):
        v2.from_binary(b"\x00" * 8, header)


def test_versions_are_decimal_numbers_or_labels():
    assert v2.model_spec("m", "") == ModelSpec("m")
    assert v2.model_spec("m", "12") == ModelSpec("m", version=12)
    assert v2.model_spec("m", "stable") == ModelSpec("m", label="stable")
    assert v2.model_spec("m", "١") == ModelSpec("m", label="١")  # NOTE: an Arabic-Indic digit is no version
    with pytest.raises(InvalidArgument, match="beyond the largest version number"):
        v2.model_spec("m", str(2**63))


def test_metadata_of_a_signature():
    assert v2.tensor_metadata(SIGNATURE.inputs["ids"]) == ("ids", "INT64", [-1, 3])
    assert v2.tensor_metadata(SIGNATURE.inputs["any"]) == ("any", "FP32", [-1])
    assert v2.tensor_metadata(SIGNATURE.inputs["c"]) == ("c", "COMPLEX64", [-1])


def test_inputs_fit_the_signature_by_name_datatype_and_shape():
    signature = SignatureInfo("s", "m", {name: info for name, info in SIGNATURE.inputs.items() if name != "c"})

    def headers(ids_shape=(2, 3), any_shape=(4, 5, 6), ids_type="INT64"):
        return [v2.tensor_header("ids", ids_type, ids_shape), v2.tensor_header("any", "FP32", any_shape)]

    v2.check_inputs(headers(), signature, "m")  # NOTE: an unknown rank takes any shape
    with pytest.raises(InvalidArgument, match=r"has shape \[-1, 3\]; the request sends \[2, 4\]"):
        v2.check_inputs(headers(ids_shape=(2, 4)), signature, "m")
    with pytest.raises(InvalidArgument, match=r"has shape \[-1, 3\]; the request sends \[3\]"):
        v2.check_inputs(headers(ids_shape=(3,)), signature, "m")
    with pytest.raises(InvalidArgument, match="Input 'ids' of model 'm' is INT64; the request sends INT32"):
        v2.check_inputs(headers(ids_type="INT32"), signature, "m")
    with pytest.raises(InvalidArgument, match="Model 'm' needs the inputs any, which the request lacks"):
        v2.check_inputs(headers()[:1], signature, "m")
    # NOTE: an input of a dtype V2 has no datatype for cannot be fed: a request can only lack it.
    with pytest.raises(InvalidArgument, match="needs the inputs c, which the request lacks"):
        v2.check_inputs(headers(), SIGNATURE, "m")


def test_an_output_v2_cannot_express_and_unsupported_extensions():
    with pytest.raises(Unimplemented, match="Output 'c' has type complex64"):
        v2.datatype_of(np.zeros(1, np.complex64), "c")
    with pytest.raises(InvalidArgument, match="shared memory is not supported"):
        v2.check_tensor_parameters({"shared_memory_region": "r"}, "x")
    with pytest.raises(InvalidArgument, match="classification extension"):
        v2.check_tensor_parameters({"classification": 3}, "y")
    v2.check_tensor_parameters({"binary_data": True, "anything": 1}, "y")
