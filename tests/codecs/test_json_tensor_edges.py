"""Edge cases of the predict codec found by the end-to-end malformed-request table (tests/e2e)."""

from __future__ import annotations

import re

import pytest

from tfaas.codecs.json_tensor import b64decode, decode_predict_request, json_text
from tfaas.errors import InvalidArgument
from tfaas.servables.servable import SignatureInfo, TensorInfo

X = SignatureInfo("s", "tensorflow/serving/predict", {"x": TensorInfo("x", "x:0", "DT_FLOAT", None)}, {})


def nested(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "text,expected",
    [
        ("QUJD", b"ABC"),
        ("QUJDRA==", b"ABCD"),
        ("QUJDRA", b"ABCD"),  # no padding at all: accepted, as absl::Base64Unescape does
        ("QUJDRUY=", b"ABCEF"),
        ("QUJDRUY", b"ABCEF"),
        ("QU JD\r\nRA==\n", b"ABCD"),  # ASCII whitespace is skipped (base64 wraps its lines)
        ("", b""),
    ],
)
def test_b64decode_accepts_what_tf_serving_accepts(text, expected):
    assert b64decode(text) == expected


@pytest.mark.parametrize(
    "text", ["QUJD=", "QUJD====", "QUJDRA=", "QUJDRA===", "QUJDRUY==", "=", "====", "QUJDR", "QU==QUJD", "QUJ-", "QUJé"]
)
def test_b64decode_refuses_wrong_padding_and_characters(text):
    with pytest.raises(InvalidArgument, match="Unable to base64 decode"):
        b64decode(text)


@pytest.mark.parametrize(
    "body,message",
    [
        ({"inputs": nested(100)}, "Too many dimensions in tensor: 100, at most"),
        (
            {"instances": [nested(99)]},
            "element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Too many dimensions in tensor: 99",
        ),
        ({"instances": nested(65)}, "Too many dimensions in tensor: 65"),  # each row has 64, the batch 65
    ],
)
def test_more_dimensions_than_numpy_holds_is_a_400(body, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        decode_predict_request(body, X)


def test_a_tensor_of_many_dimensions_still_decodes():
    assert decode_predict_request({"inputs": nested(40)}, X).inputs["x"].shape == (1,) * 40


def test_json_text_of_a_value_deeper_than_orjson_writes():
    assert json_text(nested(100_000)).startswith("[[[[")
