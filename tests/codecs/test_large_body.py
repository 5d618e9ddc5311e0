"""Large bodies read array by array: the same inputs as the general path, or the general path itself.

Each body's arrays are long enough to be read in several blocks. For each body, either the large-body path
declines it (``None``) or its inputs equal, dtype and bits, what the general path decodes; a body the
general path refuses must always be declined, so its error comes out in TF Serving's words.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from tfaas.codecs import large_body
from tfaas.codecs.json_tensor import decode_predict_request
from tfaas.codecs.large_body import decode_large_body, parse_large_body
from tfaas.errors import InvalidArgument
from tfaas.servables.servable import SignatureInfo, TensorInfo


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch) -> None:
    """Blocks and long arrays of a few KB, so that modest bodies take several blocks."""
    monkeypatch.setattr(large_body, "ARRAY_BYTES", 2048)
    monkeypatch.setattr(large_body, "BLOCK_BYTES", 1000)


def signature(dtypes: dict[str, str]) -> SignatureInfo:
    inputs = {alias: TensorInfo(alias, f"{alias}:0", dtype, None) for alias, dtype in dtypes.items()}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", inputs, {})


RNG = np.random.default_rng(5)
ROWS = (RNG.normal(size=(300, 7)) * 10.0 ** RNG.integers(-30, 30, size=(300, 7))).tolist()
IMAGES = RNG.integers(0, 256, size=(6, 9, 8, 3)).tolist()
VECTOR = RNG.normal(size=2000).tolist()
MIXED = [[1, 2.5, -3, 4e40] for _ in range(400)]
TAKEN = [
    ("rows", {"instances": ROWS}, {"x": "DT_FLOAT"}),
    ("rows as doubles", {"inputs": ROWS, "signature_name": "serving_default"}, {"x": "DT_DOUBLE"}),
    ("rank 4 ints as floats", {"instances": IMAGES}, {"x": "DT_FLOAT"}),
    ("rank 4 ints", {"inputs": IMAGES}, {"x": "DT_INT32"}),
    ("rank 1", {"instances": VECTOR}, {"x": "DT_FLOAT"}),
    ("ints and floats", {"instances": MIXED}, {"x": "DT_FLOAT"}),
    (
        "named inputs",
        {"inputs": {"a": ROWS, "b": IMAGES, "c": [1, 2]}},
        {"a": "DT_FLOAT", "b": "DT_UINT8", "c": "DT_INT64"},
    ),
    ("bools", {"instances": [[True, False]] * 600}, {"x": "DT_BOOL"}),
    ("one element longer than a block", {"instances": [IMAGES[0] * 10]}, {"x": "DT_FLOAT"}),
    ("ints that grow", {"instances": [[i**3 - 5, -i] for i in range(3000)]}, {"x": "DT_INT64"}),
    ("exact floats, then not", {"instances": [0.5] * 1000 + VECTOR}, {"x": "DT_DOUBLE"}),
    ("ints, then floats", {"instances": [[7]] * 1000 + [[0.1]] * 500}, {"x": "DT_DOUBLE"}),
    ("floats, then ints", {"instances": [[0.1]] * 1000 + [[2**60 + 1]] * 500}, {"x": "DT_FLOAT"}),
    (
        "named rows",
        {"instances": [{"a": row, "b": [i, -i]} for i, row in enumerate(ROWS)], "signature_name": "s"},
        {"a": "DT_FLOAT", "b": "DT_INT32"},
    ),
    ("named rows of one input", {"instances": [{"x": image} for image in IMAGES]}, {"x": "DT_UINT8"}),
]


def pretty(body: dict) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


@pytest.mark.parametrize("dump", [orjson.dumps, pretty], ids=["compact", "indented"])
@pytest.mark.parametrize(("body", "dtypes"), [t[1:] for t in TAKEN], ids=[t[0] for t in TAKEN])
def test_taken_bodies_decode_as_the_general_path_does(body: dict, dtypes: dict[str, str], dump) -> None:
    parsed = parse_large_body(dump(body))
    assert parsed is not None
    general = decode_predict_request(body, signature(dtypes))
    fast = decode_large_body(parsed, signature(dtypes))
    assert fast is not None and fast.columnar == general.columnar
    assert fast.inputs.keys() == general.inputs.keys()
    for alias, expected in general.inputs.items():
        got = fast.inputs[alias]
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()


LONG = ",".join(["1.5"] * 1000)
ROW = '{"a": [1.5, 2.5], "b": 1}'


def numbers(rest: str) -> str:
    """A body whose ``instances`` start with 1000 numbers and go on with ``rest``."""
    return '{"instances": [' + LONG + rest


def named_rows(rest: str) -> str:
    """A body whose ``instances`` start with 300 rows of named inputs and go on with ``rest``."""
    return '{"instances": [' + ", ".join([ROW] * 300) + rest


DECLINED = [
    ("ragged", '{"instances": [[1, 2], [3]' + ", [1, 2]" * 1000 + "]}"),
    ("ragged with the right count", '{"instances": [[1, 2], [3, 4, 5], [6]' + ", [1, 2]" * 1000 + "]}"),
    ("deeper in one row", '{"instances": [[1, [2]]' + ", [1, 2]" * 1000 + "]}"),
    ("a null", numbers(", null]}")),
    ("a string", numbers(', "2"]}')),
    ("a minus before NaN", numbers(", -NaN]}")),
    ("a token run on", numbers(", Infinity1]}")),
    ("a token outside the tensor", numbers('], "x": NaN}')),
    ("beyond float64", numbers(", 1e400]}")),
    ("beyond int64", '{"instances": [' + LONG.replace(".5", "") + ", 99999999999999999999]}"),
    ("a trailing comma", numbers(",]}")),
    ("two commas", numbers(",,1]}")),
    ("not closed", numbers("}")),
    ("both keys", numbers('], "inputs": [1]}')),
    ("in an object in a row", '{"instances": [[{"x": [' + LONG + "]}]]}"),
    ("after a string in a list", '{"instances": ["a", [' + LONG + "]]}"),
    ("not an object", "[" + LONG + "]"),
    ("a placeholder look-alike", numbers('], "s": "\\u0000array 0"}')),
    ("a number signature name", numbers('], "signature_name": 1}')),
    ("a long run of backslashes", numbers('], "s": "' + "\\\\" * 100 + '"}')),
    ("named rows, one with another name", named_rows(', {"a": [1.5, 2.5], "c": 1}]}')),
    ("named rows, one short", named_rows(', {"a": [1.5], "b": 1}]}')),
    ("named rows with an object inside", named_rows(', {"a": {"b64": "AA=="}, "b": 1}]}')),
    ("named rows with a string", named_rows(', {"a": [1.5, 2.5], "b": "N"}]}')),
    ("named rows with a NaN and a string", named_rows(', {"a": [NaN, 2.5], "b": "N"}]}')),
    ("named rows, a bad number", named_rows(', {"a": [1.5, 2.5], "b": 01}]}')),
    ("named rows and inputs", named_rows('], "inputs": 1}')),
    ("named rows elsewhere", '{"x": ' + named_rows("]}") + "}"),
]


@pytest.mark.parametrize("text", [t for _, t in DECLINED], ids=[i for i, _ in DECLINED])
def test_other_bodies_are_left_to_the_general_path(text: str) -> None:
    parsed = parse_large_body(text.encode())
    assert parsed is None or decode_large_body(parsed, signature({"x": "DT_FLOAT"})) is None


@pytest.mark.parametrize("dtype", ["DT_FLOAT", "DT_DOUBLE"])
def test_nan_and_infinity_tokens_are_read_as_the_general_path_reads_them(dtype: str) -> None:
    """TF Serving takes NaN, Infinity and -Infinity (Python's json reads them as the general path does)."""
    text = '{"instances": [' + ", ".join(["[1.5, NaN]", "[Infinity, -Infinity]", "[2, 0.1]"] * 300) + "]}"
    parsed = parse_large_body(text.encode())
    assert parsed is not None
    fast = decode_large_body(parsed, signature({"x": dtype}))
    general = decode_predict_request(json.loads(text), signature({"x": dtype}))
    assert fast is not None and fast.inputs["x"].tobytes() == general.inputs["x"].tobytes()


@pytest.mark.parametrize("name", ['a"b', "a\\", 'a\\"[1,2]', "\\" * 30])
def test_strings_with_escaped_quotes_are_read_whole(name: str) -> None:
    body = {"signature_name": name, "instances": VECTOR, "inputs_too": {"k": [name]}}
    parsed = parse_large_body(orjson.dumps(body))
    assert parsed is not None
    assert parsed["signature_name"] == name and parsed["inputs_too"] == {"k": [name]}


@pytest.mark.parametrize(
    ("body", "dtypes"),
    [
        ({"instances": IMAGES}, {"x": "DT_INT8"}),  # out of int8's range
        ({"instances": ROWS}, {"x": "DT_INT64"}),  # floats in an int tensor
        ({"instances": ROWS}, {"x": "DT_STRING"}),
        ({"instances": ROWS}, {"a": "DT_FLOAT", "b": "DT_FLOAT"}),
        ({"inputs": {"a": ROWS}}, {"a": "DT_FLOAT", "b": "DT_FLOAT"}),
        ({"instances": [{"a": row, "b": row} for row in ROWS]}, {"a": "DT_FLOAT"}),
    ],
    ids=[
        "out of range",
        "floats for ints",
        "numbers for strings",
        "plain rows, two inputs",
        "a missing input",
        "named rows, a name too many",
    ],
)
def test_inputs_the_general_path_refuses_are_left_to_it(body: dict, dtypes: dict[str, str]) -> None:
    parsed = parse_large_body(orjson.dumps(body))
    assert parsed is not None and decode_large_body(parsed, signature(dtypes)) is None
    with pytest.raises(InvalidArgument):
        decode_predict_request(body, signature(dtypes))
