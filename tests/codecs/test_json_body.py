"""Reading a request body as TF Serving reads it: NaN and Infinity tokens, and nesting that must not crash."""

from __future__ import annotations

import math
import time

import pytest

from tfaas.codecs.tf_serving_json import parse_json_body
from tfaas.errors import InvalidArgument


def parse(data: bytes):
    return parse_json_body(data)


def test_nan_and_infinity_tokens_are_numbers():
    body = parse(b'{"inputs": [NaN, Infinity, -Infinity, 1.5, 2, 18446744073709551616], "s": "NaN"}')
    nan, inf, ninf, *rest = body["inputs"]
    assert math.isnan(nan) and inf == math.inf and ninf == -math.inf
    assert rest == [1.5, 2, 1.8446744073709552e19] and type(rest[2]) is float  # beyond uint64: a float, as orjson
    assert body["s"] == "NaN"


@pytest.mark.parametrize(
    "data",
    [
        b'{"inputs": [NaN, 1e400]}',  # beyond float64's range, as orjson refuses it
        b'{"inputs": [NaN, 1' + b"0" * 400 + b"]}",
        b'{"inputs": [NaN], "s": "\\ud800"}',  # a lone surrogate, as orjson refuses it
        b'{"inputs": [nan]}',
        b'{"inputs": [NaN], "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"inputs": [NaN]',
    ],
)
def test_what_orjson_refuses_stays_refused_beside_nan(data):
    with pytest.raises(InvalidArgument, match="JSON Parse error"):
        parse(data)


@pytest.mark.parametrize("opener", [b"[", b'{"a": '])
def test_deep_nesting_is_a_400_not_a_crash(opener):
    closer = b"]" if opener == b"[" else b"}"
    with pytest.raises(InvalidArgument, match="JSON Parse error: depth limit exceeded"):
        parse(b'{"inputs": ' + opener * 100_000 + b"1" + closer * 100_000 + b"}")


@pytest.mark.parametrize("depth", [1, 60, 254])
def test_nan_bodies_parse_to_a_fixed_depth_on_every_python(depth):
    body = parse(b'{"inputs": [NaN], "x": ' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}")
    assert math.isnan(body["inputs"][0])


@pytest.mark.parametrize("depth", [255, 1000, 1025])
def test_nan_bodies_nested_past_the_limit_are_refused_the_same_everywhere(depth):
    with pytest.raises(InvalidArgument, match="JSON Parse error: depth limit exceeded"):
        parse(b'{"inputs": [NaN], "x": ' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}")


def test_brackets_inside_strings_do_not_count_as_nesting():
    body = parse(b'{"inputs": [NaN], "s": "' + b"[{" * 1000 + b'\\"]"}')
    assert body["s"] == "[{" * 1000 + '"]'


def test_an_unterminated_string_of_escaped_quotes_is_refused_quickly():
    started = time.monotonic()
    with pytest.raises(InvalidArgument, match="JSON Parse error"):
        parse(b'{"inputs": [NaN], "s": "' + b'\\"' * 500_000)
    assert time.monotonic() - started < 5
