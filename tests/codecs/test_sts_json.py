"""Simple TensorFlow Serving's request and answer format, without a server: parsing, STS's conversions of
input lists, its messages, the answer's text and gen_json's example request."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from werkzeug.test import EnvironBuilder

from tfaas.codecs import sts_json
from tfaas.codecs.sts_json import StsCall, decode_input, example_request, parse_request
from tfaas.errors import InvalidArgument
from tfaas.inference.types import PredictResult, ServedSpec
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec

JSON = "application/json"


def tensor(alias: str, dtype: str, shape: tuple[int | None, ...] | None = (None,), name: str = "") -> TensorInfo:
    return TensorInfo(alias, name or f"{alias}:0", dtype, shape)


TEMPLATE = SignatureInfo(
    "serving_default",
    "tensorflow/serving/predict",
    inputs={"features": tensor("features", "DT_FLOAT", (None, 9)), "keys": tensor("keys", "DT_INT32", (None, 1))},
)


def parsed(body: object, content_type: str | None = JSON) -> StsCall:
    return parse_request(json.dumps(body).encode(), content_type)


# ---- requests -------------------------------------------------------------------------------------


def test_a_request_names_model_version_and_signature_or_takes_stss_defaults():
    call = parsed({"data": {}})
    assert (call.model_name, call.version, call.signature_name, call.spec) == (
        "default",
        None,
        "serving_default",
        ModelSpec("default"),
    )
    call = parsed({"model_name": "m", "model_version": "3", "signature_name": "s", "data": {}})
    assert (call.spec, call.signature_name) == (ModelSpec("m", 3), "s")
    assert parsed({"model_version": 4, "data": {}}).version == 4


@pytest.mark.parametrize(
    "body,content_type,message",
    [
        (b"[1, 2]", JSON, "Invalid json data: b'[1, 2]'"),
        (b"{", "application/json; charset=utf-8", "Invalid json data: b'{'"),
        (b"", JSON, "Invalid json data: b''"),
        (b"{}", JSON, "Inference with empty data, please check the request JSON"),
        (b'{"data": {}, "model_name": 3}', JSON, "Invalid model name: 3, a model name is a string"),
        (b'{"data": {}, "model_version": 1.5}', JSON, "Invalid model version: 1.5, a version is a decimal number"),
        (b'{"data": {}, "model_version": true}', JSON, "Invalid model version: True"),
        (b'{"data": {}, "model_version": "-1"}', JSON, "Invalid model version: '-1'"),
        (b'{"data": {}, "signature_name": 1}', JSON, "Fail to request the signature name: 1, please check"),
        (b"x=1", "application/x-www-form-urlencoded", "Error, unsupported content type"),
        (b"x", "multipart/form-data", "Invalid form-data: Missing boundary"),
    ],
)
def test_stss_messages_for_a_bad_request(body, content_type, message):
    with pytest.raises(InvalidArgument) as error:
        parse_request(body, content_type)
    assert error.value.message.startswith(message)


def test_a_long_body_is_quoted_shortened():
    with pytest.raises(InvalidArgument) as error:
        parse_request(b"[" + b"1," * 1000 + b"1]", JSON)
    assert error.value.message.endswith("...") and len(error.value.message) < 250


def test_a_body_without_content_type_is_json():
    assert parsed({"data": {"x": [1]}}, None).data == {"x": [1]}


def test_nan_and_infinity_are_read_as_stss_json_parser_reads_them():
    call = parse_request(b'{"data": {"x": [NaN, Infinity]}}', JSON)
    assert np.isnan(call.data["x"][0]) and call.data["x"][1] == float("inf")


def form(fields: dict) -> tuple[bytes, str]:
    """A multipart form's body and content type, as a client encodes it."""
    builder = EnvironBuilder(method="POST", data=fields)
    try:
        environ = builder.get_environ()
        return environ["wsgi.input"].read(), environ["CONTENT_TYPE"]
    finally:
        builder.close()


def test_a_form_feeds_its_images_urlsafe_base64_encoded_under_images():
    body, content_type = form(
        {
            "image": (io.BytesIO(b"\xfb\xff first"), "a.jpg"),
            "images": [(io.BytesIO(b"\xfe second"), "b.jpg")],
            "model_version": "2",
            "signature_name": "sig",
            "model_name": "pictures",
        }
    )
    call = parse_request(body, content_type)
    assert call.data == {"images": [base64.urlsafe_b64encode(b"\xfb\xff first").decode(), "_iBzZWNvbmQ="]}
    assert (call.spec, call.signature_name) == (ModelSpec("pictures", 2), "sig")


def test_a_form_without_an_image_is_refused():
    with pytest.raises(InvalidArgument, match="the form has no 'image' or 'images' file"):
        parse_request(*form({"model_version": "1", "image": "a text field", "other": (io.BytesIO(b"x"), "x.png")}))


# ---- inputs ---------------------------------------------------------------------------------------


def test_every_input_is_decoded_to_its_dtype_and_extra_keys_ignored():
    call = parsed({"data": {"keys": [[11.0], [2.0]], "features": [[1] * 9, [0.5] * 9], "extra": 1}})
    inputs = call.decode(TEMPLATE)
    assert inputs["keys"].dtype == np.int32 and inputs["keys"].tolist() == [[11], [2]]
    assert inputs["features"].dtype == np.float32 and inputs["features"].shape == (2, 9)
    assert call.decoded


def test_a_missing_input_is_stss_message_quoting_the_data():
    call = parsed({"data": {"features": [[1]]}})
    with pytest.raises(InvalidArgument) as error:
        call.decode(TEMPLATE)
    assert error.value.message == (
        "Input op name 'keys' does not exist in input data: {'features': [[1]]}, please check the request JSON"
    )


@pytest.mark.parametrize("data", [None, [1, 2], "keys"])
def test_data_that_is_not_an_object_has_no_input(data):
    with pytest.raises(InvalidArgument, match="does not exist in input data"):
        parsed({"data": data}).decode(TEMPLATE)


@pytest.mark.parametrize(
    "dtype,value,expected",
    [
        ("DT_INT32", [2.7, -2.7, 3, True], [2, -2, 3, 1]),
        ("DT_INT64", [2.0**62, -(2.0**63)], [2**62, -(2**63)]),
        ("DT_UINT8", [255.9, 0], [255, 0]),
        ("DT_FLOAT", [1, 2.5, False], [1.0, 2.5, 0.0]),
        ("DT_DOUBLE", [[0.1, 2**60]], [[0.1, float(2**60)]]),
        ("DT_HALF", [1.5], [1.5]),
        ("DT_BOOL", [1, 0, 0.5, True], [True, False, True, True]),
        ("DT_STRING", [["a", "é"]], [[b"a", "é".encode()]]),
        ("DT_INT32", 7, 7),
        ("DT_FLOAT", [], []),
    ],
)
def test_lists_convert_as_tensorflows_feed_converts_them(dtype, value, expected):
    array = decode_input(value, tensor("x", dtype))
    assert array.tolist() == expected


def test_floats_beyond_float32_become_infinite_as_numpy_casts():
    assert decode_input([1e300], tensor("x", "DT_FLOAT")).tolist() == [float("inf")]


@pytest.mark.parametrize(
    "dtype,value,message",
    [
        ("DT_INT32", [2.0**31], "Input 'x' holds a number out of the range of int32"),
        ("DT_INT64", [2.0**63], "out of the range of int64"),
        ("DT_INT8", [float("nan")], "out of the range of int8"),
        ("DT_UINT8", [-1], "out of the range of uint8"),
        ("DT_INT64", [2**64], "out of the range of int64"),
        ("DT_FLOAT", [10**400], "out of the range of float32"),
        ("DT_FLOAT", ["1.5"], "Input 'x' takes numbers (DT_FLOAT), not \"1.5\""),
        ("DT_INT32", [None], "takes numbers (DT_INT32), not null"),
        ("DT_STRING", [1], "Input 'x' takes strings (DT_STRING), not 1"),
        ("DT_FLOAT", [[1], [1, 2]], "Input 'x' is not a tensor"),
        ("DT_FLOAT", [[1], 2], "Input 'x' is not a tensor"),
        ("DT_COMPLEX64", [1], "Input 'x' has dtype DT_COMPLEX64, which JSON cannot feed"),
    ],
)
def test_what_does_not_convert_is_a_400_naming_the_input(dtype, value, message):
    with pytest.raises(InvalidArgument) as error:
        decode_input(value, tensor("x", dtype))
    assert message in error.value.message


def test_base64_decode_decodes_an_estimators_examples_only():
    example = base64.urlsafe_b64encode(b"\xff\xfe example").decode()
    estimator = tensor("inputs", "DT_STRING", name=sts_json.ESTIMATOR_EXAMPLES_TENSOR)
    assert decode_input([example], estimator, base64_decode=True).tolist() == [b"\xff\xfe example"]
    assert decode_input([example], tensor("inputs", "DT_STRING"), base64_decode=True).tolist() == [example.encode()]
    assert decode_input([example], estimator).tolist() == [example.encode()]
    with pytest.raises(InvalidArgument, match="not URL-safe base64"):
        decode_input(["é"], estimator, base64_decode=True)


def test_base64_decode_is_read_from_the_request():
    call = parsed({"base64_decode": True, "data": {"inputs": ["YQ=="]}})
    signature = SignatureInfo("s", "", inputs={"inputs": tensor("inputs", "DT_STRING", name="input_example_tensor:0")})
    assert call.decode(signature)["inputs"].tolist() == [b"a"]


# ---- answers --------------------------------------------------------------------------------------


def test_the_answer_is_every_output_keys_sorted_ints_as_ints_and_a_newline():
    outputs = {
        "softmax": np.array([[0.25, 0.75]], np.float32),
        "keys": np.array([[11], [2]], np.int32),
        "prediction": np.array([1], np.int64),
        "label": np.array([b"cat"], object),
        "raw_bytes": np.array([b"\xff"], object),
        "flag": np.array(True),
    }
    (answer,) = sts_json.encode_answer(PredictResult(ServedSpec("m", 1), outputs))
    assert answer == (
        b'{"flag":true,"keys":[[11],[2]],"label":["cat"],"prediction":[1],"raw_bytes":[{"b64":"/w=="}],'
        b'"softmax":[[0.25,0.75]]}\n'
    )


def test_a_large_answer_comes_in_pieces():
    outputs = {"x": np.zeros((300_000,), np.float32)}
    parts = sts_json.encode_answer(PredictResult(ServedSpec("m", 1), outputs))
    assert len(parts) > 1 and json.loads(b"".join(parts)) == {"x": [0.0] * 300_000}


# ---- gen_json ---------------------------------------------------------------------------------------


def signature_json(inputs: dict[str, tuple[str, list[int] | None]]) -> dict:
    """A SignatureDef as TF Serving's metadata prints it, inputs given as (dtype, dims; None: unknown rank)."""
    return {
        "inputs": {
            alias: {
                "dtype": dtype,
                "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in dims or []],
                    "unknown_rank": dims is None,
                },
            }
            for alias, (dtype, dims) in inputs.items()
        },
        "outputs": {},
        "method_name": "tensorflow/serving/predict",
    }


def test_an_example_request_fills_each_input_in_its_shape_and_dtype():
    signature = signature_json(
        {
            "keys": ("DT_INT32", [-1, 1]),
            "features": ("DT_FLOAT", [-1, 3]),
            "flag": ("DT_BOOL", [-1]),
            "text": ("DT_STRING", [2]),
            "scalar": ("DT_INT64", []),
            "anything": ("DT_DOUBLE", None),
            "empty": ("DT_UINT8", [-1, 0]),
        }
    )
    body = example_request("m", {"signature_def": {"serving_default": signature}})
    assert body == {
        "model_name": "m",
        "data": {
            "anything": [1.0, 1.0],
            "empty": [[], []],
            "features": [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
            "flag": [True, True],
            "keys": [[1], [1]],
            "scalar": 1,
            "text": ["", ""],
        },
    }
    assert list(json.loads(sts_json.example_json("m", {"signature_def": {"serving_default": signature}}))) == [
        "model_name",
        "data",
    ]


@pytest.mark.parametrize(
    "names,chosen",
    [
        (["a", "predict", "serving_default"], None),
        (["b", "predict", "a"], "predict"),
        (["b", "a", "__saved_model_init_op"], "a"),
    ],
)
def test_the_example_is_for_stss_signature_and_names_it_unless_default(names, chosen):
    body = example_request("m", {"signature_def": {name: signature_json({}) for name in names}})
    assert body.get("signature_name") == chosen


def test_a_model_without_a_signature_has_no_example():
    with pytest.raises(InvalidArgument, match="no signature"):
        example_request("m", {"signature_def": {"__saved_model_init_op": signature_json({})}})
