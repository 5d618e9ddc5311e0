"""TF Serving's REST predict JSON codec: decoding request bodies, encoding responses (no TensorFlow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfaas.codecs import json_tensor
from tfaas.codecs.json_tensor import decode_predict_request, encode_predict_response
from tfaas.errors import InvalidArgument, TfaasError, Unimplemented
from tfaas.servables.servable import SignatureInfo, TensorInfo


def signature(**dtypes: str) -> SignatureInfo:
    """A signature whose inputs are ``alias=DT_NAME`` (shapes do not matter to the codec)."""
    inputs = {alias: TensorInfo(alias, f"{alias}:0", dtype, None) for alias, dtype in sorted(dtypes.items())}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", inputs, {})


X = signature(x="DT_FLOAT")
AB = signature(a="DT_FLOAT", b="DT_INT64")
INT32, INT64, UINT64 = signature(x="DT_INT32"), signature(x="DT_INT64"), signature(x="DT_UINT64")
BOOL, STRING = signature(x="DT_BOOL"), signature(x="DT_STRING")

# --- decoding: accepted ----------------------------------------------------------------------------

DECODED = [
    # (id, signature, body, {alias: (numpy dtype, shape, values)}, columnar)
    ("row scalars", X, {"instances": [2.0, 3.0, 4.0]}, {"x": ("float32", (3,), [2.0, 3.0, 4.0])}, False),
    ("row lists", X, {"instances": [[1, 2], [3, 4]]}, {"x": ("float32", (2, 2), [[1, 2], [3, 4]])}, False),
    (
        "row named",
        X,
        {"instances": [{"x": [1.0]}, {"x": [2.0]}]},
        {"x": ("float32", (2, 1), [[1], [2]])},
        False,
    ),
    ("row empty lists", X, {"instances": [[], []]}, {"x": ("float32", (2, 0), [[], []])}, False),
    ("columnar scalar", X, {"inputs": 2.5}, {"x": ("float32", (), 2.5)}, True),
    ("columnar list", X, {"inputs": [2.0, 3.0]}, {"x": ("float32", (2,), [2.0, 3.0])}, True),
    ("columnar named", X, {"inputs": {"x": [[2.0]]}}, {"x": ("float32", (1, 1), [[2.0]])}, True),
    (
        "row several inputs",
        AB,
        {"instances": [{"a": 1.0, "b": [1, 2]}, {"b": [3, 4], "a": 2.0}]},
        {"a": ("float32", (2,), [1.0, 2.0]), "b": ("int64", (2, 2), [[1, 2], [3, 4]])},
        False,
    ),
    (
        "columnar several inputs, own batch sizes, extra keys ignored",
        AB,
        {"inputs": {"a": [1.0], "b": [1, 2, 3], "c": "ignored"}},
        {"a": ("float32", (1,), [1.0]), "b": ("int64", (3,), [1, 2, 3])},
        True,
    ),
    ("float takes ints", X, {"instances": [1, 2.5]}, {"x": ("float32", (2,), [1.0, 2.5])}, False),
    ("float overflow is inf", X, {"inputs": [1e300]}, {"x": ("float32", (1,), [float("inf")])}, True),
    ("double", signature(x="DT_DOUBLE"), {"inputs": [0.1]}, {"x": ("float64", (1,), [0.1])}, True),
    (
        "int8 bounds",
        signature(x="DT_INT8"),
        {"inputs": [-128, 127]},
        {"x": ("int8", (2,), [-128, 127])},
        True,
    ),
    ("uint8", signature(x="DT_UINT8"), {"inputs": [0, 255]}, {"x": ("uint8", (2,), [0, 255])}, True),
    ("int32", signature(x="DT_INT32"), {"inputs": [[7]]}, {"x": ("int32", (1, 1), [[7]])}, True),
    (
        "uint64 max",
        signature(x="DT_UINT64"),
        {"inputs": [2**64 - 1]},
        {"x": ("uint64", (1,), [2**64 - 1])},
        True,
    ),
    (
        "bool",
        signature(x="DT_BOOL"),
        {"instances": [True, False]},
        {"x": ("bool", (2,), [True, False])},
        False,
    ),
    (
        "strings, text and b64",
        signature(x="DT_STRING"),
        {"instances": ["héllo", {"b64": "aGVsbG8="}, {"b64": "d29ybGQ"}]},
        {"x": ("object", (3,), ["héllo".encode(), b"hello", b"world"])},
        False,
    ),
    (
        "columnar b64 scalar",
        signature(x="DT_STRING"),
        {"inputs": {"b64": "aGVsbG8="}},
        {"x": ("object", (), b"hello")},
        True,
    ),
    ("no inputs", signature(), {"inputs": {}}, {}, True),
]


@pytest.mark.parametrize(
    ("sig", "body", "expected", "columnar"), [case[1:] for case in DECODED], ids=[case[0] for case in DECODED]
)
def test_decode(sig: SignatureInfo, body: dict, expected: dict, columnar: bool) -> None:
    request = decode_predict_request(body, sig)
    assert request.columnar is columnar
    assert sorted(request.inputs) == sorted(expected)
    for alias, (dtype, shape, values) in expected.items():
        array = request.inputs[alias]
        assert (array.dtype.name, array.shape, array.tolist()) == (dtype, shape, values)


def test_decode_large_batch_matches_numpy() -> None:
    rows = np.random.default_rng(3).random((500, 42)).tolist()
    decoded = decode_predict_request({"instances": rows}, signature(inputs="DT_FLOAT")).inputs["inputs"]
    np.testing.assert_array_equal(decoded, np.array(rows, dtype=np.float32))


# --- decoding: refused -----------------------------------------------------------------------------

ROW_ERROR = "Failed to process element: {} of 'instances' list. Error: INVALID_ARGUMENT: "
REFUSED = [
    # (id, signature, body, exact message or a substring of it)
    ("not an object", X, [1, 2], "JSON Value: [1,2] Is not object"),
    (
        "both keys",
        X,
        {"instances": [1.0], "inputs": [1.0]},
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
    ),
    ("neither key", X, {"signature_name": "serving_default"}, "Missing 'inputs' or 'instances' key"),
    ("instances not a list", X, {"instances": 1.0}, "Expecting 'instances' to be an list/array"),
    ("instances empty", X, {"instances": []}, "No values in 'instances' array"),
    (
        "ragged size",
        X,
        {"instances": [[1, 2], [3, 4], [5, 6, 7]]},
        ROW_ERROR.format(2) + "Expecting tensor size: 2 but got: 3",
    ),
    (
        "ragged shape",
        X,
        {"instances": [[1, 2], [3, 4], [[5, 6]]]},
        ROW_ERROR.format(2) + "Expecting shape [2] but got: [1,2]",
    ),
    ("scalar then list", X, {"instances": [1, [1]]}, ROW_ERROR.format(1) + "Expecting shape [] but got: [1]"),
    (
        "list too deep",
        X,
        {"instances": [[1, [2]], [3, 4]]},
        ROW_ERROR.format(0) + "Encountered list at unexpected level: 1 expected < 1",
    ),
    (
        "list of the wrong size",
        X,
        {"inputs": [[1, 2], [3]]},
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        "value at the wrong level",
        X,
        {"inputs": [[1, 2], 3]},
        "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
    ),
    (
        "string for float",
        X,
        {"instances": ["x", "y"]},
        ROW_ERROR.format(0) + 'JSON Value: "x" Type: String is not of expected type: float',
    ),
    (
        "bool for float",
        X,
        {"inputs": [1.0, True]},
        "JSON Value: true Type: True is not of expected type: float",
    ),
    ("null for float", X, {"inputs": [None]}, "JSON Value: null Type: Null is not of expected type: float"),
    ("object for float", X, {"inputs": [{"b64": "eA=="}]}, "Type: Object is not of expected type: float"),
    ("huge int for float", X, {"inputs": [10**400]}, "Type: Number is not of expected type: float"),
    (
        "1.0 for int",
        INT32,
        {"inputs": [1, 1.0]},
        "JSON Value: 1.0 Type: Number is not of expected type: int32",
    ),
    (
        "bool for int",
        INT64,
        {"inputs": [False]},
        "JSON Value: false Type: False is not of expected type: int64",
    ),
    (
        "int8 overflow",
        signature(x="DT_INT8"),
        {"instances": [1, 300]},
        ROW_ERROR.format(1) + "JSON Value: 300 Type: Number is not of expected type: int8",
    ),
    (
        "negative uint64",
        UINT64,
        {"inputs": [-1]},
        "JSON Value: -1 Type: Number is not of expected type: uint64",
    ),
    ("int64 overflow", INT64, {"inputs": [2**63]}, "is not of expected type: int64"),
    ("int for bool", BOOL, {"inputs": [1]}, "JSON Value: 1 Type: Number is not of expected type: bool"),
    (
        "number for string",
        STRING,
        {"inputs": [1]},
        "JSON Value: 1 Type: Number is not of expected type: string",
    ),
    ("bad b64", STRING, {"inputs": [{"b64": "!!!"}]}, "Unable to base64 decode"),
    ("b64 of bad length", STRING, {"inputs": {"b64": "aGVsb"}}, "Unable to base64 decode"),
    (
        "not a b64 object",
        STRING,
        {"inputs": [{"b64": "eA==", "more": 1}]},
        'JSON Value: {"b64":"eA==","more":1} not formatted correctly for base64 data',
    ),
    (
        "plain rows, several inputs",
        AB,
        {"instances": [1.0]},
        "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
        "tensorinfo_map",
    ),
    (
        "row misses an input",
        AB,
        {"instances": [{"a": 1.0}]},
        """Failed to process element: 0 of 'instances' list. JSON object: {"a":1.0} keys must be equal to: a,b""",
    ),
    (
        "row has an unknown input",
        AB,
        {"instances": [{"a": 1.0, "b": 1, "z": 1}]},
        "Failed to process element: 0 key: z of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: z",
    ),
    (
        "named rows disagree",
        AB,
        {"instances": [{"a": 1.0, "b": [1, 2]}, {"a": 2.0, "b": [1]}]},
        "Failed to process element: 1 key: b of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 1",
    ),
    (
        "object after value",
        X,
        {"instances": [1.0, {"x": 2.0}]},
        "Expecting value/list but got object at item 1",
    ),
    ("list after object", X, {"instances": [{"x": 1.0}, [2.0]]}, "Expecting object but got list at item 1"),
    ("columnar missing input", AB, {"inputs": {"a": [1.0]}}, "Missing named input: b in 'inputs' object."),
    (
        "columnar named input missing",
        X,
        {"inputs": {"y": [1.0]}},
        "Missing named input: x in 'inputs' object.",
    ),
    (
        "columnar plain, several inputs",
        AB,
        {"inputs": [1.0]},
        "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
        "tensorinfo_map",
    ),
]


@pytest.mark.parametrize(("sig", "body", "message"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_decode_refuses(sig: SignatureInfo, body: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_predict_request(body, sig)
    assert message in raised.value.message
    assert raised.value.http_status == 400


@pytest.mark.parametrize("body", [{"instances": [1.0]}, {"inputs": [1.0]}])
def test_unsupported_dtype_is_unimplemented(body: dict) -> None:
    with pytest.raises(Unimplemented, match="to type: half") as raised:
        decode_predict_request(body, signature(x="DT_HALF"))
    assert raised.value.http_status == 501


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [[1, 2], [3, "x"]]},
        {"inputs": [[[[[[1]]]]], 2]},
        {"instances": [[1.0, 2.0], [3.0, {}], None]},
        {"instances": [[1] * 3, [1] * 2, [[1]]]},
        {"inputs": {"x": object()}},
    ],
)
def test_decode_never_leaks_python_errors(body: dict) -> None:
    for sig in (X, signature(x="DT_INT8"), signature(x="DT_STRING"), signature(x="DT_BOOL")):
        with pytest.raises(TfaasError):
            decode_predict_request(body, sig)


# --- encoding -------------------------------------------------------------------------------------

FLOATS = np.array([3.0, 3.5, 4.0], dtype=np.float32)
INT_TENSOR = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], dtype=np.int32)
MIXED = {
    "double_scalar_tensor": np.array([8.0, 9.0]),
    "float_tensor": np.array([[1.0], [2.0]], dtype=np.float32),
    "int_tensor": INT_TENSOR,
    "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"qux"]], dtype=object),
    "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object),
}
NAN, INF = float("nan"), float("inf")

ENCODED = [
    # (id, outputs, columnar, expected JSON text)
    ("row one output", {"y": FLOATS}, False, '{"predictions":[3.0,3.5,4.0]}'),
    ("columnar one output", {"y": FLOATS}, True, '{"outputs":[3.0,3.5,4.0]}'),
    (
        "float32 as TF Serving writes it: %g, else 9 digits, .0 on whole numbers",
        {"y": np.array([0.1, 1e-7, 1e-5, 9e6, 999999.0, 16777216.0, 123456789.0, -0.0], dtype=np.float32)},
        True,
        '{"outputs":[0.1,1e-07,1e-05,9e+06,999999.0,16777216.0,123456792.0,-0.0]}',
    ),
    ("float64: %g, else 17 digits", {"y": np.array([0.1, 1 / 3])}, True, '{"outputs":[0.1,0.33333333333333331]}'),
    ("float16 widened", {"y": np.array([1.5], dtype=np.float16)}, True, '{"outputs":[1.5]}'),
    ("ints", {"y": INT_TENSOR}, False, '{"predictions":[[[1,2],[3,4],[5,6]],[[7,8],[9,0],[1,2]]]}'),
    (
        "bools and uint8",
        {"a": np.array([True, False]), "b": np.array([0, 255], dtype=np.uint8)},
        True,
        '{"outputs":{"a":[true,false],"b":[0,255]}}',
    ),
    (
        "non-finite floats",
        {"y": np.array([[1.0, NAN], [INF, -INF]], dtype=np.float32)},
        True,
        '{"outputs":[[1.0,NaN],[Infinity,-Infinity]]}',
    ),
    ("non-finite scalar", {"y": np.array(NAN)}, True, '{"outputs":NaN}'),
    ("scalar", {"y": np.array(3, dtype=np.int64)}, True, '{"outputs":3}'),
    (
        "row several outputs",
        MIXED,
        False,
        '{"predictions":[{"double_scalar_tensor":8.0,"float_tensor":[1.0],"int_tensor":[[1,2],[3,4],[5,6]],'
        '"str_tensor":["foo","bar"],"str_tensor_bytes":[{"b64":"aGVsbG8="},{"b64":"d29ybGQ="}]},'
        '{"double_scalar_tensor":9.0,"float_tensor":[2.0],"int_tensor":[[7,8],[9,0],[1,2]],'
        '"str_tensor":["baz","qux"],"str_tensor_bytes":[{"b64":"dGY="},{"b64":"c2VydmluZw=="}]}]}',
    ),
    (
        "columnar several outputs",
        MIXED,
        True,
        '{"outputs":{"double_scalar_tensor":[8.0,9.0],"float_tensor":[[1.0],[2.0]],'
        '"int_tensor":[[[1,2],[3,4],[5,6]],[[7,8],[9,0],[1,2]]],"str_tensor":[["foo","bar"],["baz","qux"]],'
        '"str_tensor_bytes":[[{"b64":"aGVsbG8="},{"b64":"d29ybGQ="}],[{"b64":"dGY="},{"b64":"c2VydmluZw=="}]]}}',
    ),
    (
        "row several outputs, non-finite",
        {"a": np.array([NAN, 1.0], dtype=np.float32), "b": np.array([[INF, 2.0], [3.0, -INF]])},
        False,
        '{"predictions":[{"a":NaN,"b":[Infinity,2.0]},{"a":1.0,"b":[3.0,-Infinity]}]}',
    ),
    (
        "row several outputs, empty inner dims",
        {"a": np.zeros((2, 0, 3), dtype=np.float32), "b": np.array([1, 2])},
        False,
        '{"predictions":[{"a":[],"b":1},{"a":[],"b":2}]}',
    ),
    ("row zero batch", {"y": np.zeros((0, 1), dtype=np.float32)}, False, '{"predictions":[]}'),
    ("row zero batch, several", {"a": np.zeros(0), "b": np.zeros((0, 2))}, False, '{"predictions":[]}'),
    ("invalid utf-8", {"y": np.array([b"ok", b"\xff"], dtype=object)}, True, '{"outputs":["ok","\ufffd"]}'),
    ("str elements", {"y_bytes": np.array(["x"])}, True, '{"outputs":[{"b64":"eA=="}]}'),
]


@pytest.mark.parametrize(
    ("outputs", "columnar", "expected"), [case[1:] for case in ENCODED], ids=[case[0] for case in ENCODED]
)
def test_encode(outputs: dict[str, np.ndarray], columnar: bool, expected: str) -> None:
    encoded = encode_predict_response(outputs, columnar)
    assert encoded.decode("utf-8") == expected
    json.loads(encoded)  # Python's json takes the NaN / Infinity tokens, as TF Serving's clients do.


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"y": np.array(3.0)}, "Tensor name: y has no shape information"),
        (
            {"x": np.array([1.0, 2.0]), "y": np.array([1.0])},
            "Tensor name: y has inconsistent batch size: 1 expecting: 2",
        ),
    ],
)
def test_encode_row_format_needs_one_batch_size(outputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        encode_predict_response(outputs, columnar=False)
    assert raised.value.message == message


LARGE = np.random.default_rng(2).normal(size=(3, 5, 40)) * 10.0 ** np.arange(-20, 20)
NON_FINITE = np.where(np.arange(LARGE.size).reshape(LARGE.shape) % 7 == 0, np.nan, LARGE)


@pytest.mark.parametrize("block", [1, 7, 100, 200])
@pytest.mark.parametrize(
    ("outputs", "columnar"),
    [
        ({"y": LARGE.astype(np.float32)}, False),
        ({"y": LARGE}, True),
        ({"a": NON_FINITE.astype(np.float32), "b": np.arange(3)}, True),
        ({"a": LARGE[0, 0], "b": np.arange(40)}, False),
        ({"a": LARGE[0], "b": np.array([b"x", b"\xff", b""] * 5, dtype=object).reshape(5, 3)}, False),
    ],
    ids=["rank 3 float32", "rank 3 float64", "columnar NaN and ints", "rows of two outputs", "rows with strings"],
)
def test_a_large_answer_in_pieces_is_the_answer_in_one(
    monkeypatch, outputs: dict[str, np.ndarray], columnar: bool, block: int
) -> None:
    """Tensors are written in blocks of rows of about ENCODE_BLOCK values (a row larger than a block in
    pieces of its own); the pieces joined are the very text written in one go."""
    whole = encode_predict_response(outputs, columnar)
    monkeypatch.setattr(json_tensor, "ENCODE_BLOCK", block)
    monkeypatch.setattr(json_tensor, "JOINED_BYTES", 0)
    parts = json_tensor.encode_predict_parts(outputs, columnar)
    assert b"".join(parts) == whole
    if block <= 7:
        assert len(parts) > 3  # NOTE: blocks this small cut every one of these answers


def test_importing_does_not_import_tensorflow() -> None:
    code = "import sys, tfaas.codecs.json_tensor; sys.exit('tensorflow' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
