"""PAI-EAS's ``tf_predict.proto`` codec without a server: every dtype of the enum, the bounds of an
``ArrayProto``, the response's encoding, and the model structure JSON of seed 004."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from tfaas.codecs import eas_proto
from tfaas.errors import FailedPrecondition, InvalidArgument, Unimplemented
from tfaas.inference.types import ModelMetadata, PredictResult, ServedSpec
from tfaas.protos import tf_predict_pb2 as eas
from tfaas.server_core import ModelSpec


def array(dtype: int, shape: list[int], **values) -> eas.ArrayProto:
    proto = eas.ArrayProto(dtype=dtype, **values)
    proto.array_shape.dim.extend(shape)
    return proto


# (dtype, field, sent values, numpy dtype fed, values fed)
FED = [
    (eas.DT_FLOAT, "float_val", [0.5, -1.25, 3.0, 1e30], np.float32, [0.5, -1.25, 3.0, 1e30]),
    (eas.DT_DOUBLE, "double_val", [0.1, 1e300, -2.5, 0.0], np.float64, [0.1, 1e300, -2.5, 0.0]),
    (eas.DT_INT32, "int_val", [-(2**31), 2**31 - 1, 0, 7], np.int32, [-(2**31), 2**31 - 1, 0, 7]),
    (eas.DT_UINT8, "int_val", [0, 255, 1, 2], np.uint8, [0, 255, 1, 2]),
    (eas.DT_INT16, "int_val", [-32768, 32767, 0, 1], np.int16, [-32768, 32767, 0, 1]),
    (eas.DT_INT8, "int_val", [-128, 127, 0, 1], np.int8, [-128, 127, 0, 1]),
    (eas.DT_UINT16, "int_val", [0, 65535, 1, 2], np.uint16, [0, 65535, 1, 2]),
    (eas.DT_INT64, "int64_val", [-(2**63), 2**63 - 1, 0, 1], np.int64, [-(2**63), 2**63 - 1, 0, 1]),
    (eas.DT_BOOL, "bool_val", [True, False, False, True], np.bool_, [True, False, False, True]),
    (eas.DT_STRING, "string_val", [b"ab", b"cd", b"\xff\x00", b""], object, [b"ab", b"cd", b"\xff\x00", b""]),
    (eas.DT_HALF, "float_val", [0.5, 65504.0, -2.0, 1.0], np.float16, [0.5, 65504.0, -2.0, 1.0]),
    (eas.DT_BFLOAT16, "float_val", [0.5, 3.0, -2.0, 2.0**100], ml_dtypes.bfloat16, [0.5, 3.0, -2.0, 2.0**100]),
    (eas.DT_QINT8, "int_val", [-128, 127, 0, 1], [("qint8", "i1")], [-128, 127, 0, 1]),
    (eas.DT_QUINT8, "int_val", [0, 255, 0, 1], [("quint8", "u1")], [0, 255, 0, 1]),
    (eas.DT_QINT16, "int_val", [-32768, 32767, 0, 1], [("qint16", "<i2")], [-32768, 32767, 0, 1]),
    (eas.DT_QUINT16, "int_val", [0, 65535, 0, 1], [("quint16", "<u2")], [0, 65535, 0, 1]),
    (eas.DT_QINT32, "int_val", [-(2**31), 2**31 - 1, 0, 1], [("qint32", "<i4")], [-(2**31), 2**31 - 1, 0, 1]),
]
FED_IDS = [eas.ArrayDataType.Name(case[0]) for case in FED]


@pytest.mark.parametrize("dtype,field,sent,numpy_dtype,fed", FED, ids=FED_IDS)
def test_every_fed_dtype_is_decoded_from_its_field_and_reshaped(dtype, field, sent, numpy_dtype, fed):
    decoded = eas_proto.decode_array("x", array(dtype, [2, 2], **{field: sent}))
    assert decoded.dtype == np.dtype(numpy_dtype) and decoded.shape == (2, 2)
    plain = decoded.view(decoded.dtype[0]) if decoded.dtype.names else decoded
    expected = np.array(fed, dtype=plain.dtype).reshape(2, 2)
    assert plain.tolist() == expected.tolist()


def test_fed_dtypes_are_tensorflows_own_numpy_dtypes():
    # NOTE: so the servable feeds them without a cast (quantized ints, bfloat16 included).
    import tensorflow as tf

    for dtype, field, sent, _, _ in FED:
        decoded = eas_proto.decode_array("x", array(dtype, [4], **{field: sent}))
        assert decoded.dtype == np.dtype(tf.as_dtype(dtype).as_numpy_dtype), eas.ArrayDataType.Name(dtype)
        assert tf.convert_to_tensor(decoded).dtype.as_datatype_enum == dtype


def test_strings_of_equal_length_stay_python_bytes():
    decoded = eas_proto.decode_array("s", array(eas.DT_STRING, [2], string_val=[b"ab", b"cd"]))
    assert decoded.dtype == object and decoded.tolist() == [b"ab", b"cd"]


def test_a_scalar_and_an_empty_array():
    scalar = eas_proto.decode_array("x", array(eas.DT_FLOAT, [], float_val=[2.5]))
    assert scalar.shape == () and scalar.item() == 2.5
    empty = eas_proto.decode_array("x", array(eas.DT_INT64, [0, 3]))
    assert empty.shape == (0, 3) and empty.dtype == np.int64


@pytest.mark.parametrize(
    "proto,message",
    [
        (array(eas.DT_INVALID, [1], float_val=[1.0]), "Input x: DT_INVALID cannot be fed from an EAS ArrayProto"),
        (array(eas.DT_COMPLEX64, [1]), "Input x: DT_COMPLEX64 cannot be fed"),
        (array(eas.DT_COMPLEX128, [1]), "Input x: DT_COMPLEX128 cannot be fed"),
        (array(eas.DT_RESOURCE, [1]), "Input x: DT_RESOURCE cannot be fed"),
        (array(eas.DT_VARIANT, [1]), "Input x: DT_VARIANT cannot be fed"),
        (array(99, [1]), "Input x: dtype 99 (not an ArrayDataType) cannot be fed"),
        (
            array(eas.DT_FLOAT, [2, 3], float_val=[1.0] * 5),
            "Input x: array_shape [2,3] holds 6 values, but 5 were sent",
        ),
        (array(eas.DT_FLOAT, [-1, 2], float_val=[1.0] * 2), "Input x: array_shape [-1,2] has a negative dimension"),
        (array(eas.DT_FLOAT, [1] * 65, float_val=[1.0]), "Input x: array_shape has 65 dimensions, more than 64"),
        (
            array(eas.DT_FLOAT, [0, 2**62, 2**62]),
            "Input x: array_shape [0,4611686018427387904,4611686018427387904] is too large",
        ),
        (
            array(eas.DT_FLOAT, [1], int_val=[1]),
            "Input x is DT_FLOAT, whose values go in float_val, but it has values in int_val",
        ),
        (array(eas.DT_INT64, [1], int64_val=[1], int_val=[2]), "values go in int64_val, but it has values in int_val"),
        (array(eas.DT_INT8, [2], int_val=[1, 128]), "Input x: value 128 is out of range for int8 (-128..127)"),
        (array(eas.DT_UINT8, [2], int_val=[-1, 0]), "Input x: value -1 is out of range for uint8 (0..255)"),
        (array(eas.DT_UINT16, [1], int_val=[70000]), "value 70000 is out of range for uint16 (0..65535)"),
        (array(eas.DT_QUINT8, [1], int_val=[256]), "value 256 is out of range for uint8 (0..255)"),
    ],
)
def test_arrays_that_cannot_be_fed_are_invalid_arguments(proto, message):
    with pytest.raises(InvalidArgument) as raised:
        eas_proto.decode_array("x", proto)
    assert message in raised.value.message


def test_a_body_that_is_no_predict_request_is_an_invalid_argument():
    with pytest.raises(InvalidArgument, match="The body is not a serialized EAS PredictRequest"):
        eas_proto.parse_request(b"\xff\xff\xff")


def test_predict_request_defaults_to_the_default_signature_and_keeps_the_output_filter():
    message = eas.PredictRequest(output_filter=["y", "z"])
    message.inputs["x"].CopyFrom(array(eas.DT_FLOAT, [1, 2], float_val=[1.0, 2.0]))
    request = eas_proto.predict_request(ModelSpec("m"), eas_proto.parse_request(message.SerializeToString()))
    assert request.spec == ModelSpec("m") and request.signature_name == "serving_default"
    assert request.output_filter == ("y", "z")
    assert request.inputs["x"].tolist() == [[1.0, 2.0]]
    message.signature_name = "predict_images"
    assert eas_proto.predict_request(ModelSpec("m"), message).signature_name == "predict_images"


def response(**outputs) -> eas.PredictResponse:
    data = eas_proto.encode_response(PredictResult(ServedSpec("m", 1, "serving_default"), outputs))
    return eas.PredictResponse.FromString(data)


PLAIN = [case for case in FED if not isinstance(case[3], list)]


@pytest.mark.parametrize("dtype,field,sent,numpy_dtype,fed", PLAIN, ids=[FED_IDS[FED.index(c)] for c in PLAIN])
def test_every_fed_dtype_but_the_quantized_goes_back_as_it_came(dtype, field, sent, numpy_dtype, fed):
    decoded = eas_proto.decode_array("x", array(dtype, [2, 2], **{field: sent}))
    answered = response(y=decoded).outputs["y"]
    assert answered == array(dtype, [2, 2], **{field: sent})


def test_unsigned_outputs_the_enum_lacks_go_as_int64_while_they_fit():
    answered = response(a=np.array([2**32 - 1], np.uint32), b=np.array([[2**63 - 1]], np.uint64))
    assert answered.outputs["a"] == array(eas.DT_INT64, [1], int64_val=[2**32 - 1])
    assert answered.outputs["b"] == array(eas.DT_INT64, [1, 1], int64_val=[2**63 - 1])
    with pytest.raises(Unimplemented, match="Output c has dtype uint64, which an EAS ArrayProto cannot carry"):
        response(c=np.array([2**63], np.uint64))
    with pytest.raises(Unimplemented, match="Output d has dtype complex64"):
        response(d=np.array([1j], np.complex64))


def test_string_outputs_of_numpy_bytes_and_a_scalar_output():
    answered = response(s=np.array([b"a", b"bc"]), t=np.float32(1.5))
    assert answered.outputs["s"] == array(eas.DT_STRING, [2], string_val=[b"a", b"bc"])
    assert answered.outputs["t"] == array(eas.DT_FLOAT, [], float_val=[1.5])


def tensor_info(name: str, dtype: str, dims: list[int] | None) -> dict:
    """A TensorInfo as the service's metadata gives it (protobuf JSON, sizes as strings)."""
    shape = {"dim": [{"size": str(d), "name": ""} for d in dims or []], "unknown_rank": dims is None}
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def metadata(signatures: dict) -> ModelMetadata:
    return ModelMetadata(ServedSpec("mnist", 1), {"signature_def": signatures})


MNIST = {
    # TF Serving's mnist_saved_model: its default signature classifies serialized tf.Examples.
    "predict_images": {
        "inputs": {"images": tensor_info("x:0", "DT_FLOAT", [-1, 784])},
        "outputs": {"scores": tensor_info("y:0", "DT_FLOAT", [-1, 10])},
        "method_name": "tensorflow/serving/predict",
    },
    "serving_default": {
        "inputs": {"inputs": tensor_info("tf_example:0", "DT_STRING", None)},
        "outputs": {
            "classes": tensor_info("index_to_string_Lookup:0", "DT_STRING", [-1, 10]),
            "scores": tensor_info("TopKV2:0", "DT_FLOAT", [-1, 10]),
        },
        "method_name": "tensorflow/serving/classify",
    },
    "__saved_model_init_op": {"inputs": {}, "outputs": {}, "method_name": ""},
}


def test_the_structure_of_seed_004s_mnist_model_is_its_documented_answer():
    assert json.loads(eas_proto.structure_json(metadata(MNIST))) == {
        "inputs": [{"name": "images", "shape": [-1, 784], "type": "DT_FLOAT"}],
        "outputs": [{"name": "scores", "shape": [-1, 10], "type": "DT_FLOAT"}],
        "signature_name": "predict_images",
    }


def test_the_structure_describes_a_predict_default_signature_else_the_first_by_name():
    predict_default = {**MNIST, "serving_default": {**MNIST["predict_images"], "inputs": {}}}
    assert json.loads(eas_proto.structure_json(metadata(predict_default)))["signature_name"] == "serving_default"
    classify_only = {key: MNIST["serving_default"] for key in ("b", "a")}
    described = json.loads(eas_proto.structure_json(metadata(classify_only)))
    assert described["signature_name"] == "a"
    assert described["inputs"] == [{"name": "inputs", "shape": None, "type": "DT_STRING"}], "an unknown rank"
    assert [o["name"] for o in described["outputs"]] == ["classes", "scores"]


def test_a_version_without_signatures_has_no_structure():
    with pytest.raises(FailedPrecondition, match="Model mnist version 1 has no signature"):
        eas_proto.structure_json(metadata({"__saved_model_init_op": MNIST["__saved_model_init_op"]}))
