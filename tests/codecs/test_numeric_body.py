"""Large numeric bodies read by simdjson: the same arrays as the general path, or the general path itself.

Every body here is padded past ``NUMERIC_BODY_BYTES`` with whitespace. For each one, either the numeric
path declines it (``None``) or its inputs equal, dtype and bits, what the general path decodes; a body
the general path refuses must always be declined, so its error comes out in TF Serving's words.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tfaas.codecs.json_tensor import decode_predict_request
from tfaas.codecs.numeric_body import NUMERIC_BODY_BYTES, decode_numeric_body, parse_numeric_body
from tfaas.errors import InvalidArgument
from tfaas.servables.servable import SignatureInfo, TensorInfo


def signature(dtype: str = "DT_FLOAT", aliases: tuple[str, ...] = ("x",)) -> SignatureInfo:
    inputs = {alias: TensorInfo(alias, f"{alias}:0", dtype, None) for alias in aliases}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", inputs, {})


def padded(text: str) -> bytes:
    return (text + " " * NUMERIC_BODY_BYTES).encode()


ROWS = np.random.default_rng(3).normal(size=(300, 42)) * 10.0 ** np.arange(-20, 22)
TAKEN = [
    ("rows", orjson.dumps({"instances": ROWS.tolist()}).decode()),
    ("columnar rows", orjson.dumps({"inputs": ROWS.tolist(), "signature_name": "serving_default"}).decode()),
    ("rank 1", '{"instances": [1, -2.5, 3e5, 1e39, -1e-50, 18446744073709551615]}'),
    ("ints in a float tensor", '{"instances": [[1, 2], [3, 4]]}'),
    ("whitespace", '{ "signature_name" : "serving_default" ,\n "instances" :\t[ [ 1.5 , 2 ] ,[3,4] ] }'),
]
DECLINED = [
    ("ragged", '{"instances": [[1, 2], [3]]}'),
    ("ragged with the right count", '{"instances": [[1, 2], [3, 4, 5], [6]]}'),
    ("a nested list of one", '{"instances": [[1, [2]], [3, 4]]}'),
    ("rank 3", '{"instances": [[[1, 2]], [[3, 4]]]}'),
    ("mixed levels", '{"instances": [1.5, [2]]}'),
    ("a bool", '{"instances": [[1, true]]}'),
    ("a null", '{"instances": [[1, null]]}'),
    ("a string", '{"instances": [[1, "2"]]}'),
    ("NaN token", '{"instances": [[1, NaN]]}'),
    ("beyond float64", '{"instances": [[1, 1e400]]}'),
    ("empty", '{"instances": []}'),
    ("empty rows", '{"instances": [[], []]}'),
    ("both keys", '{"instances": [[1]], "inputs": [[1]]}'),
    ("a duplicate key", '{"instances": [[1]], "instances": [[2]]}'),
    ("another key", '{"instances": [[1]], "x": 1}'),
    ("named inputs", '{"inputs": {"x": [[1]]}}'),
    ("a null signature name", '{"instances": [[1]], "signature_name": null}'),
    ("a bracket in the signature name", '{"instances": [[1], [2]], "signature_name": "a[b"}'),
    ("not an object", "[[1, 2]]"),
    ("not JSON", '{"instances": [[1, 2]'),
    ("too deep for simdjson", '{"instances": ' + "[" * 5000 + "]" * 5000 + "}"),
]


@pytest.mark.parametrize("dtype", ["DT_FLOAT", "DT_DOUBLE"])
@pytest.mark.parametrize("text", [t for _, t in TAKEN], ids=[i for i, _ in TAKEN])
def test_taken_bodies_decode_as_the_general_path_does(text: str, dtype: str) -> None:
    numeric = parse_numeric_body(padded(text))
    assert numeric is not None
    general = decode_predict_request(orjson.loads(text), signature(dtype))
    fast = decode_numeric_body(numeric, signature(dtype))
    assert fast is not None and fast.columnar == general.columnar
    (expected,), (got,) = general.inputs.values(), fast.inputs.values()
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("text", [t for _, t in DECLINED], ids=[i for i, _ in DECLINED])
def test_other_bodies_are_left_to_the_general_path(text: str) -> None:
    assert parse_numeric_body(padded(text)) is None


def test_a_declined_ragged_body_gets_tf_servings_error_from_the_general_path() -> None:
    with pytest.raises(InvalidArgument, match="Expecting tensor size"):
        decode_predict_request(orjson.loads('{"instances": [[1, 2], [3]]}'), signature())


@pytest.mark.parametrize("sig", [signature("DT_INT64"), signature(aliases=("a", "b"))], ids=["int", "two inputs"])
def test_signatures_other_than_one_float_input_take_the_general_path(sig: SignatureInfo) -> None:
    numeric = parse_numeric_body(padded('{"instances": [[1, 2], [3, 4]]}'))
    assert numeric is not None and decode_numeric_body(numeric, sig) is None
