"""Every malformed request gets TF Serving's 4xx and a JSON ``{"error": ...}``, never a 500 or a crash.

One table of bad requests against the ``multi`` model (see ``multi_model.py``), sent to the session's
shared server (``multi_server``, also used by the golden tests). Each case names the HTTP status TF
Serving answers with (TFSERVING.md 4.1, 4.2, 4.5, 4.7) and a piece of the message. After the whole table
the server must still be the same process with the same worker, and answer a valid request.

NOTE: two statuses are tfaas's own: a wrong method on a known path is 405 with `Allow` (TF Serving answers 400
"Malformed request" for anything its two path patterns do not take), and an unknown path outside
``/v1`` is a JSON 404 (TF Serving's is libevent's HTML page).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

M = "/v1/models/multi"
P, C, R = M + ":predict", M + ":classify", M + ":regress"
NAN_TOKENS = "unexpected character"  # orjson's words for a token that is not JSON
DEEP = "JSON Parse error: depth limit exceeded"


def raw(text: str) -> bytes:
    """A body sent exactly as written (not JSON-encoded by the test)."""
    return text.encode("utf-8")


def nested(depth: int, leaf: str = "1.0") -> str:
    """``depth`` levels of ``[``, a leaf, and as many ``]``."""
    return "[" * depth + leaf + "]" * depth


def row(**changes: Any) -> dict[str, Any]:
    """A ``serving_default`` row-format body whose only row has ``changes`` applied (None removes a key)."""
    instance = {"a": [1.0, 2.0], "b": 1, "s": "x", "flag": True, **changes}
    return {"instances": [{k: v for k, v in instance.items() if v is not None}]}


def columns(**changes: Any) -> dict[str, Any]:
    """A ``serving_default`` columnar body with ``changes`` applied (None removes a key)."""
    inputs = {"a": [[1.0, 2.0]], "b": [1], "s": ["x"], "flag": [True], **changes}
    return {"inputs": {k: v for k, v in inputs.items() if v is not None}}


DTYPE_VALUES = {
    "int8": 1,
    "int16": 1,
    "int32": 1,
    "int64": 1,
    "uint8": 1,
    "uint16": 1,
    "uint32": 1,
    "uint64": 1,
    "f32": 1.0,
    "f64": 1.0,
    "t": True,
    "s": "x",
}


def dtypes(alias: str, value: Any) -> dict[str, Any]:
    """A columnar body for the ``dtypes`` signature: one element per input, ``alias``'s replaced by ``value``."""
    return {"signature_name": "dtypes", "inputs": {**{k: [v] for k, v in DTYPE_VALUES.items()}, alias: [value]}}


def dtypes_raw(alias: str, number_text: str) -> bytes:
    """As ``dtypes``, with ``alias``'s element written as raw JSON text (numbers JSON encoders refuse)."""
    body = json.dumps(dtypes(alias, "@"))
    return raw(body.replace('["@"]', f"[{number_text}]"))


def double(**body: Any) -> dict[str, Any]:
    """A body for the one-input ``double`` signature (``x`` double [-1,3])."""
    return {"signature_name": "double", **body}


def examples(*items: Any, **body: Any) -> dict[str, Any]:
    """A classify body for the ``classify`` signature."""
    return {"signature_name": "classify", "examples": list(items), **body}


def regress_examples(*items: Any, **body: Any) -> dict[str, Any]:
    """A regress body for the ``regress`` signature."""
    return {"signature_name": "regress", "examples": list(items), **body}


HUGE_RAGGED = {"signature_name": "double", "instances": [[1.5, 2.0, 3.0]] * 100_000 + [[1.0, 2.0]]}
HUGE_BAD_B64 = columns(s=[{"b64": "QUJD" * 1_000_000 + "!"}])
HUGE_STRING_FOR_FLOAT = double(instances=["x" * 4_000_000])

# (id, method, path, body, status, a piece of the message); the status is TF Serving's but where the NOTE above says
# fmt: off
CASES: list[tuple[str, str, str, Any, int, str]] = [
    # --- the body is not a JSON object ---------------------------------------------------------------
    ("empty body", "POST", P, b"", 400, "JSON Parse error: The document is empty"),
    ("whitespace body", "POST", P, b" \n\t ", 400, "JSON Parse error: The document is empty"),
    ("empty body classify", "POST", C, b"", 400, "JSON Parse error: The document is empty"),
    ("empty body regress", "POST", R, b"", 400, "JSON Parse error: The document is empty"),
    ("not JSON", "POST", P, raw("instances=1"), 400, "JSON Parse error"),
    ("trailing comma", "POST", P, raw('{"instances": [1.0,]}'), 400, "JSON Parse error"),
    ("truncated", "POST", P, raw('{"instances": [[1.0, 2.0'), 400, "JSON Parse error"),
    ("single quotes", "POST", P, raw("{'instances': [1.0]}"), 400, "JSON Parse error"),
    ("two documents", "POST", P, raw('{"instances": [1.0]} {}'), 400, "JSON Parse error"),
    ("non-UTF-8 body", "POST", P, b'\xff\xfe{"instances": [1.0]}', 400, "JSON Parse error"),
    ("UTF-16 body", "POST", P, '{"instances": [1.0]}'.encode("utf-16"), 400, "JSON Parse error"),
    ("lowercase nan token", "POST", P, raw('{"signature_name": "nonfinite", "inputs": [[nan, 1.0]]}'), 400, "JSON Parse error"),
    ("top-level array", "POST", P, [1.0, 2.0], 400, "JSON Value: [1.0, 2.0] Is not object"),
    ("top-level string", "POST", P, "instances", 400, 'JSON Value: "instances" Is not object'),
    ("top-level number", "POST", P, 12, 400, "JSON Value: 12 Is not object"),
    ("top-level null", "POST", P, None, 400, "JSON Value: null Is not object"),
    ("top-level true", "POST", P, True, 400, "JSON Value: true Is not object"),
    ("top-level array classify", "POST", C, [{"x": 1.0}], 400, "Is not object"),
    ("top-level string regress", "POST", R, "x", 400, "Is not object"),
    # --- predict: the request's keys --------------------------------------------------------------------
    ("no instances or inputs", "POST", P, {"signature_name": "double"}, 400, "Missing 'inputs' or 'instances' key"),
    ("empty object", "POST", P, {}, 400, "Missing 'inputs' or 'instances' key"),
    ("misspelt instances", "POST", P, {"instance": [[1, 2, 3]]}, 400, "Missing 'inputs' or 'instances' key"),
    ("both instances and inputs", "POST", P, double(instances=[[1, 2, 3]], inputs=[[1, 2, 3]]), 400, "expecting only one of 'inputs' or 'instances'"),
    ("instances an object", "POST", P, double(instances={"x": [1, 2, 3]}), 400, "Expecting 'instances' to be an list/array"),
    ("instances a string", "POST", P, double(instances="[1, 2, 3]"), 400, "Expecting 'instances' to be an list/array"),
    ("instances a number", "POST", P, double(instances=1.0), 400, "Expecting 'instances' to be an list/array"),
    ("instances null", "POST", P, double(instances=None), 400, "Expecting 'instances' to be an list/array"),
    ("instances empty", "POST", P, double(instances=[]), 400, "No values in 'instances' array"),
    ("inputs null", "POST", P, double(inputs=None), 400, "Type: Null is not of expected type: double"),
    ("inputs a string", "POST", P, double(inputs="x"), 400, "Type: String is not of expected type: double"),
    ("inputs a scalar for a batch", "POST", P, double(inputs=1.0), 400, "Input x has shape [] but the signature expects [-1,3]"),
    ("plain instances, several inputs", "POST", P, {"instances": [[1.0, 2.0]]}, 400, "instances is a plain list, but expecting list of objects"),
    ("plain inputs, several inputs", "POST", P, {"inputs": [[1.0, 2.0]]}, 400, "inputs is a plain value/list, but expecting an object"),
    # --- signature_name ----------------------------------------------------------------------------
    ("signature_name a number", "POST", P, {"signature_name": 100, "instances": [1.0]}, 400, "'signature_name' key must be a string value."),
    ("signature_name null", "POST", P, {"signature_name": None, "instances": [1.0]}, 400, "'signature_name' key must be a string value."),
    ("signature_name a list", "POST", P, {"signature_name": ["double"], "instances": [1.0]}, 400, "'signature_name' key must be a string value."),
    ("signature_name an object", "POST", P, {"signature_name": {}, "instances": [1.0]}, 400, "'signature_name' key must be a string value."),
    ("signature_name true, classify", "POST", C, {"signature_name": True, "examples": [{"x": 1.0}]}, 400, "'signature_name' key must be a string value."),
    ("signature_name a number, regress", "POST", R, {"signature_name": 1, "examples": [{"x": 1.0}]}, 400, "'signature_name' key must be a string value."),
    ("unknown signature", "POST", P, {"signature_name": "nope", "instances": [1.0]}, 400, 'Serving signature name: "nope" not found in signature def'),
    ("empty signature name", "POST", P, {"signature_name": "", "inputs": [1.0]}, 400, 'Serving signature name: "" not found'),
    ("signature name of another case", "POST", P, {"signature_name": "DOUBLE", "inputs": [[1, 2, 3]]}, 400, 'Serving signature name: "DOUBLE" not found'),
    ("unknown signature classify", "POST", C, {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400, "No signature was found with the name: nope"),
    ("unknown signature regress", "POST", R, {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400, "No signature was found with the name: nope"),
    # --- ragged and mixed lists --------------------------------------------------------------------
    ("ragged rows", "POST", P, double(instances=[[1, 2, 3], [4, 5]]), 400, "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 3 but got: 2"),
    ("row of another shape", "POST", P, double(instances=[[1, 2, 3], [[4, 5, 6]]]), 400, "Expecting shape [3] but got: [1,3]"),
    ("ragged at depth 3", "POST", P, {"signature_name": "double", "inputs": [[[1, 2], [3]]]}, 400, "Encountered list at unexpected size: 1 at level: 2 expected size: 2"),
    ("ragged columnar", "POST", P, double(inputs=[[1, 2, 3], [4, 5]]), 400, "Encountered list at unexpected size: 2 at level: 1 expected size: 3"),
    ("list deeper than the first", "POST", P, double(inputs=[[1, 2, 3], [1, 2, [3]]]), 400, "Encountered list at unexpected level: 2 expected < 2"),
    ("value shallower than the first", "POST", P, double(inputs=[[1, 2, 3], 4]), 400, "JSON Value: 4 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ("ragged named rows", "POST", P, {"instances": [row()["instances"][0], row(a=[1.0, 2.0, 3.0])["instances"][0]]}, 400, "Failed to process element: 1 key: a of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 3"),
    ("ragged strings", "POST", P, columns(s=["a", ["b"]]), 400, "Encountered list at unexpected level"),
    ("empty rows", "POST", P, double(instances=[[], []]), 400, "Input x has shape [2,0] but the signature expects [-1,3]"),
    ("empty columnar tensor", "POST", P, double(inputs=[[]]), 400, "Input x has shape [1,0]"),
    ("list then object rows", "POST", P, double(instances=[[1, 2, 3], {"x": [1, 2, 3]}]), 400, "Expecting value/list but got object at item 1 of input list"),
    ("object then list rows", "POST", P, double(instances=[{"x": [1, 2, 3]}, [1, 2, 3]]), 400, "Expecting object but got list at item 1 of input list"),
    ("object then b64 rows", "POST", P, {"instances": [row()["instances"][0], {"b64": "eA=="}]}, 400, "Expecting object but got list at item 1 of input list"),
    ("null row", "POST", P, double(instances=[[1, 2, 3], None]), 400, "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: null Type: Null is not of expected type: double"),
    ("object inside a row", "POST", P, double(instances=[[1, {"x": 2}, 3]]), 400, 'JSON Value: {"x":2} Type: Object is not of expected type: double'),
    ("shape against the signature", "POST", P, double(inputs=[1, 2, 3]), 400, "Input x has shape [3] but the signature expects [-1,3]"),
    ("inner dim against the signature", "POST", P, double(inputs=[[1, 2]]), 400, "Input x has shape [1,2] but the signature expects [-1,3]"),
    ("inputs of clashing batch sizes", "POST", P, columns(a=[[1.0, 2.0], [3.0, 4.0]], b=[1, 2, 3]), 400, "Incompatible shapes"),
    # --- named inputs --------------------------------------------------------------------------------
    ("row missing a named input", "POST", P, row(flag=None), 400, "Failed to process element: 0 of 'instances' list. JSON object: "),
    ("row missing a named input, keys", "POST", P, row(flag=None), 400, "keys must be equal to: a,b,flag,s"),
    ("row with an extra named input", "POST", P, row(extra=1), 400, "Failed to process element: 0 key: extra of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does not have named input: extra"),
    ("second row missing a named input", "POST", P, {"instances": [row()["instances"][0], {"a": [1.0, 2.0]}]}, 400, "Failed to process element: 1 of 'instances' list"),
    ("empty row object", "POST", P, double(instances=[{}]), 400, "JSON object: {} keys must be equal to: x"),
    ("unknown name, single input", "POST", P, double(instances=[{"y": [1, 2, 3]}]), 400, "does not have named input: y"),
    ("b64 with a number is no b64", "POST", P, double(instances=[{"b64": 5}]), 400, "does not have named input: b64"),
    ("columnar missing a named input", "POST", P, columns(flag=None), 400, "Missing named input: flag in 'inputs' object."),
    ("columnar empty object", "POST", P, {"inputs": {}}, 400, "Missing named input: a in 'inputs' object."),
    # --- wrong types for each dtype ------------------------------------------------------------------
    ("string for float", "POST", P, dtypes("f32", "1.5"), 400, 'JSON Value: "1.5" Type: String is not of expected type: float'),
    ("bool for float", "POST", P, dtypes("f32", True), 400, "JSON Value: true Type: True is not of expected type: float"),
    ("null for double", "POST", P, dtypes("f64", None), 400, "JSON Value: null Type: Null is not of expected type: double"),
    ("b64 for double", "POST", P, dtypes("f64", {"b64": "AAAA"}), 400, "Type: Object is not of expected type: double"),
    ("list for a scalar element", "POST", P, dtypes("f32", [1.0]), 400, "Input f32 has shape [1,1] but the signature expects [-1]"),
    ("float for int32", "POST", P, dtypes("int32", 1.0), 400, "JSON Value: 1.0 Type: Number is not of expected type: int32"),
    ("fraction for int64", "POST", P, dtypes("int64", 1.5), 400, "JSON Value: 1.5 Type: Number is not of expected type: int64"),
    ("string for int64", "POST", P, dtypes("int64", "1"), 400, 'JSON Value: "1" Type: String is not of expected type: int64'),
    ("bool for int8", "POST", P, dtypes("int8", False), 400, "JSON Value: false Type: False is not of expected type: int8"),
    ("int8 above range", "POST", P, dtypes("int8", 128), 400, "JSON Value: 128 Type: Number is not of expected type: int8"),
    ("int8 below range", "POST", P, dtypes("int8", -129), 400, "is not of expected type: int8"),
    ("int16 above range", "POST", P, dtypes("int16", 32768), 400, "is not of expected type: int16"),
    ("int32 above range", "POST", P, dtypes("int32", 2**31), 400, "is not of expected type: int32"),
    ("int64 above range", "POST", P, dtypes("int64", 2**63), 400, "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64"),
    ("int64 below range", "POST", P, dtypes("int64", -(2**63) - 1), 400, "is not of expected type: int64"),
    ("negative uint8", "POST", P, dtypes("uint8", -1), 400, "JSON Value: -1 Type: Number is not of expected type: uint8"),
    ("uint8 above range", "POST", P, dtypes("uint8", 256), 400, "is not of expected type: uint8"),
    ("uint16 above range", "POST", P, dtypes("uint16", 65536), 400, "is not of expected type: uint16"),
    ("negative uint32", "POST", P, dtypes("uint32", -1), 400, "is not of expected type: uint32"),
    ("uint32 above range", "POST", P, dtypes("uint32", 2**32), 400, "is not of expected type: uint32"),
    ("uint64 above range", "POST", P, dtypes("uint64", 2**64), 400, "is not of expected type: uint64"),
    ("int beyond any int, for int64", "POST", P, dtypes("int64", 10**30), 400, "is not of expected type: int64"),
    ("NaN for int32", "POST", P, dtypes_raw("int32", "NaN"), 400, "Type: Number is not of expected type: int32"),
    ("Infinity for uint64", "POST", P, dtypes_raw("uint64", "Infinity"), 400, "is not of expected type: uint64"),
    ("0 for bool", "POST", P, dtypes("t", 0), 400, "JSON Value: 0 Type: Number is not of expected type: bool"),
    ("1 for bool", "POST", P, dtypes("t", 1), 400, "JSON Value: 1 Type: Number is not of expected type: bool"),
    ("string for bool", "POST", P, dtypes("t", "true"), 400, 'JSON Value: "true" Type: String is not of expected type: bool'),
    ("null for bool", "POST", P, dtypes("t", None), 400, "is not of expected type: bool"),
    ("number for string", "POST", P, dtypes("s", 5), 400, "JSON Value: 5 Type: Number is not of expected type: string"),
    ("bool for string", "POST", P, dtypes("s", True), 400, "JSON Value: true Type: True is not of expected type: string"),
    ("null for string", "POST", P, dtypes("s", None), 400, "JSON Value: null Type: Null is not of expected type: string"),
    ("NaN for string", "POST", P, dtypes_raw("s", "NaN"), 400, "is not of expected type: string"),
    ("unsupported input dtype", "POST", P, {"signature_name": "half", "inputs": [1.0]}, 501, "Conversion of JSON Value to type: half is not supported"),
    ("unsupported input dtype, rows", "POST", P, {"signature_name": "half", "instances": [1.0, 2.0]}, 501, "type: half"),
    # --- numbers beyond range ------------------------------------------------------------------------
    ("1e400 for float", "POST", P, dtypes_raw("f32", "1e400"), 400, "JSON Parse error"),
    ("-1e400 for double", "POST", P, dtypes_raw("f64", "-1e400"), 400, "JSON Parse error"),
    ("400-digit integer", "POST", P, dtypes_raw("f64", "9" * 400), 400, "JSON Parse error"),
    ("5000-digit integer", "POST", P, dtypes_raw("int64", "9" * 5000), 400, "JSON Parse error"),
    ("1e400 beside NaN", "POST", P, raw('{"signature_name": "nonfinite", "inputs": [[NaN, 1e400]]}'), 400, NAN_TOKENS),
    ("huge integer beside NaN", "POST", P, raw('{"signature_name": "nonfinite", "inputs": [[NaN, 1' + "0" * 400 + "]]}"), 400, NAN_TOKENS),
    ("1e400 in a feature", "POST", C, raw('{"signature_name": "classify", "examples": [{"x": 1e400}]}'), 400, "JSON Parse error"),
    # --- deep nesting ---------------------------------------------------------------------------------
    ("100000 levels of [ in instances", "POST", P, raw('{"signature_name": "double", "instances": ' + nested(100_000) + "}"), 400, DEEP),
    ("100000 levels of [ in inputs", "POST", P, raw('{"signature_name": "double", "inputs": ' + nested(100_000) + "}"), 400, DEEP),
    ("100000 levels of [ in a second row", "POST", P, raw('{"signature_name": "double", "instances": [[1, 2, 3], ' + nested(100_000) + "]}"), 400, DEEP),
    ("100000 levels of [ in a string input", "POST", P, raw(json.dumps(columns(s="@")).replace('"@"', nested(100_000, '"x"'))), 400, DEEP),
    ("100000 levels of { in inputs", "POST", P, raw('{"inputs": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001), 400, DEEP),
    ("100000 levels of [ in a feature", "POST", C, raw('{"signature_name": "classify", "examples": [{"x": ' + nested(100_000) + "}]}"), 400, DEEP),
    ("100000 levels of [ as examples", "POST", C, raw('{"signature_name": "classify", "examples": {"x": ' + nested(100_000) + "}}"), 400, DEEP),
    ("100000 levels of [ in a named row", "POST", P, raw('{"signature_name": "double", "instances": [{"x": [1, 2, 3]}, {"y": ' + nested(100_000) + "}]}"), 400, DEEP),
    ("100000 levels of [ beside NaN", "POST", P, raw('{"signature_name": "nonfinite", "inputs": [[NaN, 1.0]], "x": ' + nested(100_000, "") + "}"), 400, DEEP),
    ("100000 levels of [ in an ignored key", "POST", P, raw('{"signature_name": "double", "inputs": [[1, 2, 3]], "x": ' + nested(100_000, "") + "}"), 400, DEEP),
    ("1000000 unclosed [", "POST", P, raw('{"signature_name": "double", "instances": ' + "[" * 1_000_000), 400, DEEP),
    ("1000 levels of [", "POST", P, raw('{"signature_name": "double", "inputs": ' + nested(1000) + "}"), 400, "Too many dimensions in tensor: 1000"),
    ("1000 levels of [ in a second row", "POST", P, raw('{"signature_name": "double", "instances": [[1, 2, 3], ' + nested(1000) + "]}"), 400, "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Too many dimensions in tensor: 1000"),
    ("1000 levels of { in inputs", "POST", P, raw('{"inputs": ' + '{"a": ' * 1000 + "1" + "}" * 1001), 400, "Missing named input: b in 'inputs' object."),
    ("1000 levels of [ in a feature", "POST", R, raw('{"signature_name": "regress", "examples": [{"x": ' + nested(1000) + "}]}"), 400, "Feature: x has element with unexpected JSON type: Array"),
    ("1000 levels of [ as examples", "POST", C, raw('{"signature_name": "classify", "examples": {"x": ' + nested(1000) + "}}"), 400, "Expecting 'examples' value to be an list/array"),
    ("1000 levels of [ in a named row", "POST", P, raw('{"signature_name": "double", "instances": [{"x": [1, 2, 3]}, {"x": [1, 2, 3], "y": ' + nested(1000) + "}]}"), 400, "does not have named input: y"),
    ("1000 levels of [ beside NaN", "POST", P, raw('{"signature_name": "nonfinite", "inputs": [[NaN, 1.0]], "x": ' + nested(1000, "") + "}"), 400, DEEP),
    ("100 levels of [", "POST", P, raw('{"signature_name": "double", "inputs": ' + nested(100) + "}"), 400, "Too many dimensions in tensor: 100"),
    ("65 levels of [", "POST", P, raw('{"signature_name": "double", "instances": ' + nested(65) + "}"), 400, "Too many dimensions in tensor: 65"),
    ("40 levels of [", "POST", P, raw('{"signature_name": "double", "inputs": ' + nested(40) + "}"), 400, "Input x has shape [1,1,1"),
    # --- huge payloads ----------------------------------------------------------------------------------
    ("huge ragged instances (2 MB)", "POST", P, HUGE_RAGGED, 400, "Failed to process element: 100000 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 3 but got: 2"),
    ("huge bad b64 (4 MB)", "POST", P, HUGE_BAD_B64, 400, "Unable to base64 decode"),
    ("huge string for a float (4 MB)", "POST", P, HUGE_STRING_FOR_FLOAT, 400, "Type: String is not of expected type: double"),
    # --- b64 ------------------------------------------------------------------------------------------
    ("b64 with bad characters", "POST", P, columns(s=[{"b64": "a$b="}]), 400, "Unable to base64 decode"),
    ("b64 url-safe alphabet", "POST", P, columns(s=[{"b64": "-_-_"}]), 400, "Unable to base64 decode"),
    ("b64 non-ASCII", "POST", P, columns(s=[{"b64": "QUJé"}]), 400, "Unable to base64 decode"),
    ("b64 padding after a full group", "POST", P, columns(s=[{"b64": "QUJD="}]), 400, "Unable to base64 decode"),
    ("b64 padding too short", "POST", P, columns(s=[{"b64": "QUJDRA="}]), 400, "Unable to base64 decode"),
    ("b64 padding too long", "POST", P, columns(s=[{"b64": "QUJDRA==="}]), 400, "Unable to base64 decode"),
    ("b64 only padding", "POST", P, columns(s=[{"b64": "===="}]), 400, "Unable to base64 decode"),
    ("b64 padding in the middle", "POST", P, columns(s=[{"b64": "QU==QUJD"}]), 400, "Unable to base64 decode"),
    ("b64 one char too many", "POST", P, columns(s=[{"b64": "QUJDR"}]), 400, "Unable to base64 decode"),
    ("b64 with extra keys", "POST", P, columns(s=[{"b64": "QUJD", "x": 1}]), 400, 'JSON Value: {"b64":"QUJD","x":1} not formatted correctly for base64 data'),
    ("b64 not a string", "POST", P, columns(s=[{"b64": 5}]), 400, "not formatted correctly for base64 data"),
    ("b64 null", "POST", P, columns(s=[{"b64": None}]), 400, "not formatted correctly for base64 data"),
    ("object of another key for a string", "POST", P, columns(s=[{"text": "x"}]), 400, "not formatted correctly for base64 data"),
    ("bad b64 in a row", "POST", P, row(s={"b64": "!!"}), 400, "Failed to process element: 0 key: s of 'instances' list. Error: INVALID_ARGUMENT: Unable to base64 decode"),
    ("bad b64 in a feature", "POST", C, examples({"x": 1.0, "tag": {"b64": "QUJD="}}), 400, "Unable to base64 decode"),
    ("b64 with extra keys in a feature", "POST", C, examples({"x": 1.0, "tag": {"b64": "QUJD", "y": 1}}), 400, "Feature: tag has element with unexpected JSON type: Object"),
    # --- classify and regress: the request ------------------------------------------------------------
    ("classify without examples", "POST", C, {"signature_name": "classify"}, 400, "When method is classify, key 'examples' is expected and was not found"),
    ("regress without examples", "POST", R, {"signature_name": "regress", "instances": [{"x": 1.0}]}, 400, "When method is classify, key 'examples' is expected and was not found"),
    ("examples an object", "POST", C, {"signature_name": "classify", "examples": {"x": 1.0}}, 400, "Expecting 'examples' value to be an list/array"),
    ("examples a string", "POST", R, {"signature_name": "regress", "examples": "x"}, 400, "Expecting 'examples' value to be an list/array"),
    ("examples null", "POST", C, {"signature_name": "classify", "examples": None}, 400, "Expecting 'examples' value to be an list/array"),
    ("examples empty", "POST", C, examples(), 400, "'examples' value is an empty array"),
    ("examples empty regress", "POST", R, regress_examples(), 400, "'examples' value is an empty array"),
    ("example a list", "POST", C, examples([1.0]), 400, "Example must be JSON object but got JSON Array"),
    ("example a number", "POST", R, regress_examples({"x": 1.0}, 3), 400, "Example must be JSON object but got JSON Number"),
    ("example a string", "POST", C, examples("x"), 400, "Example must be JSON object but got JSON String"),
    ("example null", "POST", C, examples(None), 400, "Example must be JSON object but got JSON Null"),
    ("null feature", "POST", C, examples({"x": None}), 400, "Feature: x has element with unexpected JSON type: Null"),
    ("null in a feature list", "POST", R, regress_examples({"x": [1.0, None]}), 400, "Feature: x has element with unexpected JSON type: Null"),
    ("nested-list feature", "POST", C, examples({"x": [[1.0]]}), 400, "Feature: x has element with unexpected JSON type: Array"),
    ("object feature", "POST", C, examples({"x": {"v": 1.0}}), 400, "Feature: x has element with unexpected JSON type: Object"),
    ("mixed float and string feature", "POST", C, examples({"x": [1.0, "a"]}), 400, "Unexpected element type in feature: x expecting type: float"),
    ("mixed int and float feature", "POST", C, examples({"x": [10, 10.0]}), 400, "Unexpected element type in feature: x expecting type: int64"),
    ("mixed string and int feature", "POST", R, regress_examples({"x": 1.0, "tag": ["a", 1]}), 400, "Unexpected element type in feature: tag expecting type: bytes"),
    ("uint64 feature", "POST", C, examples({"x": 1.0, "n": 2**63}), 400, "Feature: n has uint64_t element. Only int64_t is supported."),
    ("int feature for a float", "POST", R, regress_examples({"x": 2}), 400, "Data types don't match. Data type: int64 but expected type: float"),
    ("string feature for an int", "POST", C, examples({"x": 1.0, "n": "2"}), 400, "Data types don't match"),
    ("missing required feature", "POST", C, examples({"tag": "a"}), 400, "Feature: x (data type: float) is required but could not be found."),
    ("two values for one", "POST", R, regress_examples({"x": [1.0, 2.0]}), 400, "Number of float values != expected"),
    ("context a list", "POST", C, examples({"x": 1.0}, context=[{"n": 1}]), 400, "must be JSON object but got JSON Array"),
    ("context a string", "POST", R, regress_examples({"x": 1.0}, context="n=1"), 400, "must be JSON object but got JSON String"),
    ("context null", "POST", C, examples({"x": 1.0}, context=None), 400, "must be JSON object but got JSON Null"),
    ("null feature in context", "POST", C, examples({"x": 1.0}, context={"n": None}), 400, "Feature: n has element with unexpected JSON type: Null"),
    # --- classify and regress: the signature ----------------------------------------------------------
    ("classify a predict signature", "POST", C, {"examples": [{"x": 1.0}]}, 400, "Expected one input Tensor."),
    ("classify a one-input predict signature", "POST", C, {"signature_name": "double", "examples": [{"x": 1.0}]}, 400, "No classification inputs found in SignatureDef"),
    ("classify a regress signature", "POST", C, {"signature_name": "regress", "examples": [{"x": 1.0}]}, 400, 'Expected classification signature outputs to contain at least one of "classes" or "scores"'),
    ("regress a classify signature", "POST", R, {"signature_name": "classify", "examples": [{"x": 1.0}]}, 400, "Expected one output Tensor."),
    ("regress a predict signature", "POST", R, {"signature_name": "double", "examples": [{"x": 1.0}]}, 400, "No regression inputs found in SignatureDef"),
    ("predict a classify signature with floats", "POST", P, {"signature_name": "classify", "inputs": [1.0]}, 400, "Type: Number is not of expected type: string"),
    # --- models, versions, labels -------------------------------------------------------------------
    ("unknown model predict", "POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404, "Servable not found for request: Latest(nope)"),
    ("unknown model classify", "POST", "/v1/models/nope:classify", examples({"x": 1.0}), 404, "Servable not found for request: Latest(nope)"),
    ("unknown model regress", "POST", "/v1/models/nope:regress", regress_examples({"x": 1.0}), 404, "Servable not found for request: Latest(nope)"),
    ("unknown model status", "GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("unknown model metadata", "GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("model name of another case", "POST", "/v1/models/MULTI:predict", double(inputs=[[1, 2, 3]]), 404, "Latest(MULTI)"),
    ("unknown version predict", "POST", M + "/versions/7:predict", double(inputs=[[1, 2, 3]]), 404, "Servable not found for request: Specific(multi, 7)"),
    ("version 0", "POST", M + "/versions/0:regress", regress_examples({"x": 1.0}), 404, "Specific(multi, 0)"),
    ("unknown version status", "GET", M + "/versions/7", None, 404, "Could not find version 7 of model multi"),
    ("unknown version metadata", "GET", M + "/versions/7/metadata", None, 404, "Specific(multi, 7)"),
    ("largest int64 version", "POST", M + f"/versions/{2**63 - 1}:predict", double(inputs=[[1, 2, 3]]), 404, f"Specific(multi, {2**63 - 1})"),
    ("version beyond int64", "POST", M + f"/versions/{2**63}:predict", double(inputs=[[1, 2, 3]]), 400, f"Failed to convert version: {2**63} to numeric."),
    ("version beyond uint64", "GET", M + "/versions/99999999999999999999999", None, 400, "Failed to convert version: 99999999999999999999999 to numeric."),
    ("version beyond int64 classify", "POST", M + f"/versions/{2**64}:classify", examples({"x": 1.0}), 400, "Failed to convert version"),
    ("negative version", "POST", M + "/versions/-1:predict", double(inputs=[[1, 2, 3]]), 400, "Malformed request: POST /v1/models/multi/versions/-1:predict"),
    ("version not a number", "GET", M + "/versions/one", None, 400, "Malformed request: GET /v1/models/multi/versions/one"),
    ("unknown label predict", "POST", M + "/labels/canary:predict", double(inputs=[[1, 2, 3]]), 400, "Unrecognized servable version label: canary"),
    ("unknown label metadata", "GET", M + "/labels/canary/metadata", None, 400, "Unrecognized servable version label: canary"),
    ("unknown label classify", "POST", M + "/labels/canary:classify", examples({"x": 1.0}), 400, "Unrecognized servable version label: canary"),
    # --- methods and paths ----------------------------------------------------------------------------
    ("GET predict", "GET", P, None, 405, "Method GET is not allowed"),
    ("PUT predict", "PUT", P, double(inputs=[[1, 2, 3]]), 405, "Method PUT is not allowed"),
    ("DELETE predict", "DELETE", P, None, 405, "Method DELETE is not allowed"),
    ("PATCH classify", "PATCH", C, examples({"x": 1.0}), 405, "Method PATCH is not allowed"),
    ("GET regress", "GET", R, None, 405, "Method GET is not allowed"),
    ("POST status", "POST", M, {}, 405, "Method POST is not allowed"),
    ("POST metadata", "POST", M + "/metadata", {}, 405, "Method POST is not allowed"),
    ("DELETE model", "DELETE", M, None, 405, "Method DELETE is not allowed"),
    ("POST model list", "POST", "/v1/models", {}, 405, "Method POST is not allowed"),
    ("unknown verb", "POST", M + ":explain", {"instances": [1.0]}, 400, "Malformed request: POST /v1/models/multi:explain"),
    ("unknown path under /v1", "GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("unknown path under a model", "GET", M + "/foo", None, 400, "Malformed request"),
    ("singular version", "GET", M + "/version/1", None, 400, "Malformed request"),
    ("singular label", "POST", M + "/label/stable:predict", {"instances": [1.0]}, 400, "Malformed request"),
    ("version and label", "GET", M + "/versions/1/labels/stable", None, 400, "Malformed request"),
    ("suffix after the verb", "POST", P + "/x", {"instances": [1.0]}, 400, "Malformed request"),
    ("empty model name", "POST", "/v1/models/:predict", {"instances": [1.0]}, 400, "Malformed request"),
    ("/v1 alone", "GET", "/v1/", None, 400, "Malformed request"),
    ("outside every API", "GET", "/v3/models/multi", None, 404, "not found"),
    ("outside every API, POST", "POST", "/predict", {"instances": [1.0]}, 404, "not found"),
]
# fmt: on

IDS = [case[0] for case in CASES]
assert len(set(IDS)) == len(IDS), "case ids must be unique"


def send(server: ServerProcess, method: str, path: str, body: Any) -> requests.Response:
    """``body``: bytes as they are, None for no body on GET/DELETE (JSON null otherwise), else JSON."""
    if isinstance(body, bytes):
        data = body
    elif body is None and method in ("GET", "DELETE"):
        data = None
    else:
        data = json.dumps(body).encode("utf-8")
    return requests.request(method, server.url + path, data=data, timeout=60)


@pytest.mark.parametrize("method,path,body,status,message", [case[1:] for case in CASES], ids=IDS)
def test_malformed_request_gets_a_json_4xx(multi_server, method, path, body, status, message):
    response = send(multi_server, method, path, body)
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert isinstance(error, str) and error
    assert 400 <= response.status_code < 500 or response.status_code == 501
    assert response.status_code == status, error[:500]
    assert message in error


POST_ONLY, GET_ONLY = {"POST", "OPTIONS"}, {"GET", "HEAD", "OPTIONS"}
WRONG_METHODS = [(c[1], c[2], POST_ONLY if ":" in c[2] else GET_ONLY) for c in CASES if c[4] == 405] + [
    ("PUT", "/upload", POST_ONLY),
    ("GET", "/upload", POST_ONLY),
    ("GET", "/delete/multi", {"DELETE", "OPTIONS"}),
    ("POST", "/healthz", GET_ONLY),
    ("DELETE", "/readyz", GET_ONLY),
    ("TRACE", "/metrics", GET_ONLY),
    ("PUT", "/predict/json", POST_ONLY),
    ("TRACE", "/V1/Models/multi:PREDICT", POST_ONLY),
]


@pytest.mark.parametrize("method,path,allowed", WRONG_METHODS, ids=[f"{m} {p}" for m, p, _ in WRONG_METHODS])
def test_a_known_path_with_another_method_is_a_405_naming_its_methods(multi_server, method, path, allowed):
    response = requests.request(method, multi_server.url + path, timeout=30)
    assert response.status_code == 405, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert isinstance(response.json()["error"], str)
    assert set(response.headers["Allow"].split(", ")) == allowed


def test_options_names_the_methods_of_a_path(multi_server):
    for path, allowed in ((P, POST_ONLY), (M, GET_ONLY), ("/upload", POST_ONLY)):
        response = requests.options(multi_server.url + path, timeout=30)
        assert response.status_code == 200 and set(response.headers["Allow"].split(", ")) == allowed, path


@pytest.mark.parametrize(
    "body,key,alias,size",
    [
        (double(instances=[[1.5, 2.0, 3.0]] * 100_000), "predictions", None, 100_000),
        (
            columns(a=[[1.0, 2.0]] * 200_000, b=[1] * 200_000, s=["x"] * 200_000, flag=[True] * 200_000),
            "outputs",
            "sum",
            200_000,
        ),
        (columns(s=["é" * 2_000_000]), "outputs", "echo_bytes", 1),
    ],
    ids=["100000 rows (2 MB)", "200000 columns of four inputs (4 MB)", "a 4 MB string"],
)
def test_huge_valid_payloads_answer(multi_server, body, key, alias, size):
    response = send(multi_server, "POST", P, body)
    assert response.status_code == 200, response.text[:500]
    result = response.json()[key]
    assert len(result if alias is None else result[alias]) == size


def test_brackets_in_strings_are_not_nesting(multi_server):
    text = '[{"\\"' * 2000
    response = send(multi_server, "POST", P, columns(s=[text]))
    assert response.status_code == 200, response.text[:500]
    assert response.json()["outputs"]["upper"] == [text]


def test_content_type_is_not_checked(multi_server):
    """TF Serving reads the body whatever the Content-Type says; ``curl -d`` sends a form type."""
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "application/octet-stream"):
        response = requests.post(
            multi_server.url + P,
            data=json.dumps(double(instances=[[1, 2, 3]])),
            headers={"Content-Type": content_type},
            timeout=30,
        )
        assert (response.status_code, response.text) == (200, '{"predictions":[[2.0,4.0,6.0]]}'), content_type


def test_server_survives_the_table(multi_server):
    """Run last in this module: the same process and worker, no unhandled error, and valid requests answer."""
    assert multi_server.process.poll() is None
    log = multi_server.log()
    assert log.count("Booting worker") == 1, log[-3000:]
    assert "Unhandled error" not in log and "Traceback" not in log, log[-3000:]
    response = send(multi_server, "POST", P, row())
    assert response.status_code == 200
    assert response.content.decode() == (
        '{"predictions":[{"echo_bytes":{"b64":"eA=="},"not_flag":false,"sum":4.0,"twice":2,"upper":"X"}]}'
    )
    response = send(multi_server, "POST", C, examples({"x": 1.0, "n": 1}))
    assert (response.status_code, response.content.decode()) == (200, '{"results":[[["none",1.0],["other",2.0]]]}')
