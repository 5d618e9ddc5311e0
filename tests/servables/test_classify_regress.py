"""TF Serving's classify and regress: the examples JSON, the signature checks and the results JSON.

Decoding and encoding run without a model (a fake servable); TF Serving's known answers (TFSERVING.md 4.7,
4.8) run on its test models: built here, and its own copies where ``../shared`` is present.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import orjson
import pytest

from tfaas.codecs.examples_json import classify_json, decode_examples, regress_json
from tfaas.errors import InvalidArgument
from tfaas.servables import classify_regress
from tfaas.servables.saved_model import SavedModelServable
from tfaas.servables.servable import SignatureInfo, TensorInfo


def classify(*args: Any, **kwargs: Any) -> bytes:
    """Classify, answered as the REST API answers (TF Serving's response JSON)."""
    return classify_json(*classify_regress.classify(*args, **kwargs))


def regress(*args: Any, **kwargs: Any) -> bytes:
    """Regress, answered as the REST API answers."""
    return regress_json(classify_regress.regress(*args, **kwargs))


def _features(serialized: bytes) -> dict[str, tuple[str | None, list[Any]]]:
    """A serialized tf.Example as ``{name: (kind, values)}``, kind None for a feature without values."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    result = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        result[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return result


def _decode_one(example: Any) -> dict[str, tuple[str | None, list[Any]]]:
    (serialized,) = decode_examples({"examples": [example]}, "classify")
    return _features(serialized)


def _examples(*xs: float) -> list[bytes]:
    """Serialized tf.Examples with float feature ``x``, decoded from JSON as the routes do."""
    return decode_examples({"examples": [{"x": x} for x in xs]}, "regress")


# --- decoding: feature typing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "features"),
    [
        ({"x": 2.0}, {"x": ("float_list", [2.0])}),
        ({"x": 1e-3}, {"x": ("float_list", [pytest.approx(1e-3)])}),
        ({"x": [1.5, 2e3]}, {"x": ("float_list", [1.5, 2000.0])}),
        ({"x": 2}, {"x": ("int64_list", [2])}),
        ({"x": [True, False, 7]}, {"x": ("int64_list", [1, 0, 7])}),
        ({"x": -(2**63)}, {"x": ("int64_list", [-(2**63)])}),
        ({"x": 2**64}, {"x": ("float_list", [float(2**64)])}),  # rapidjson: beyond uint64 is a double
        ({"x": 1e300}, {"x": ("float_list", [float("inf")])}),  # float32
        ({"s": "héllo"}, {"s": ("bytes_list", ["héllo".encode()])}),
        ({"s": {"b64": "aGVsbG8="}}, {"s": ("bytes_list", [b"hello"])}),
        ({"s": ["a", {"b64": "Yg"}]}, {"s": ("bytes_list", [b"a", b"b"])}),
        ({"x": []}, {"x": (None, [])}),
        ({}, {}),
        (
            {"a": 1, "b": 2.0, "c": "z"},
            {"a": ("int64_list", [1]), "b": ("float_list", [2.0]), "c": ("bytes_list", [b"z"])},
        ),
    ],
)
def test_feature_typing(example: dict, features: dict) -> None:
    assert _decode_one(example) == features


def test_one_serialized_example_per_entry() -> None:
    serialized = decode_examples({"examples": [{"x": 1.0}, {"x": 2.0}, {}]}, "classify")
    assert [_features(item) for item in serialized] == [{"x": ("float_list", [1.0])}, {"x": ("float_list", [2.0])}, {}]


def test_context_is_merged_into_every_example() -> None:
    body = {"context": {"c": 1, "x": 5.0}, "examples": [{"x": 2.0}, {"y": "a"}]}
    first, second = decode_examples(body, "regress")
    # The example's own feature wins: TF Serving prepends the serialized context to each example.
    assert _features(first) == {"c": ("int64_list", [1]), "x": ("float_list", [2.0])}
    assert _features(second) == {"c": ("int64_list", [1]), "x": ("float_list", [5.0]), "y": ("bytes_list", [b"a"])}
    (context,) = decode_examples({"examples": [body["context"]]}, "regress")
    (example,) = decode_examples({"examples": [{"x": 2.0}]}, "regress")
    assert first == context + example


# --- decoding: errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "JSON Value: {} When method is classify, key 'examples' is expected and was not found"),
        ({"examples": 1}, "JSON Value: {\"examples\":1} Expecting 'examples' value to be an list/array"),
        ({"examples": {}}, "JSON Value: {\"examples\":{}} Expecting 'examples' value to be an list/array"),
        ({"examples": []}, "JSON Value: {\"examples\":[]} 'examples' value is an empty array"),
        ({"examples": [[1]]}, "Example must be JSON object but got JSON Array"),
        ({"examples": [{}, 1]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [None]}, "Example must be JSON object but got JSON Null"),
        ({"context": [], "examples": [{}]}, "Example must be JSON object but got JSON Array"),
        ({"context": 1}, "Example must be JSON object but got JSON Number"),  # context is read first
        ({"context": {"c": None}, "examples": []}, "Feature: c has element with unexpected JSON type: Null"),
    ],
)
def test_request_errors(body: dict, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_examples(body, "classify")
    assert raised.value.message == message


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_missing_examples_says_classify_for_both_methods(method: str) -> None:
    with pytest.raises(InvalidArgument, match="When method is classify, key 'examples'"):
        decode_examples({"signature_name": "s"}, method)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([10, 10.0], "Unexpected element type in feature: x expecting type: int64"),
        ([10.0, 10], "Unexpected element type in feature: x expecting type: float"),
        ([True, 1.0], "Unexpected element type in feature: x expecting type: int64"),
        (["a", 1], "Unexpected element type in feature: x expecting type: bytes"),
        ([{"b64": "YQ=="}, 1.0], "Unexpected element type in feature: x expecting type: bytes"),
        ([1.0, 2**63], "Unexpected element type in feature: x expecting type: float"),  # kind before range
        (None, "Feature: x has element with unexpected JSON type: Null"),
        ([1, None], "Feature: x has element with unexpected JSON type: Null"),
        ([[1]], "Feature: x has element with unexpected JSON type: Array"),
        ({"a": 1}, "Feature: x has element with unexpected JSON type: Object"),
        ({"b64": 1}, "Feature: x has element with unexpected JSON type: Object"),
        ({"b64": "YQ==", "c": "d"}, "Feature: x has element with unexpected JSON type: Object"),
        (2**63, "Feature: x has uint64_t element. Only int64_t is supported."),
        ([1, 2**64 - 1], "Feature: x has uint64_t element. Only int64_t is supported."),
        ({"b64": "!!"}, "Unable to base64 decode"),
    ],
)
def test_feature_errors(value: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        _decode_one({"x": value})
    assert raised.value.message == message


def test_first_bad_feature_is_reported() -> None:
    with pytest.raises(InvalidArgument, match="feature: b expecting"):
        _decode_one({"a": 1.0, "b": [1, "x"], "c": None})


# --- results JSON and output checks, on a fake servable -------------------------------------------


class _FakeServable:
    """One signature ``s`` with input ``inputs`` and the given outputs, which ``run`` returns as they are."""

    def __init__(self, outputs: Mapping[str, np.ndarray], method_name: str = "tensorflow/serving/classify") -> None:
        info = TensorInfo("inputs", "in:0", "DT_STRING", (None,))
        output_infos = {alias: TensorInfo(alias, f"{alias}:0", "DT_FLOAT", None) for alias in outputs}
        self.signatures = {"s": SignatureInfo("s", method_name, {"inputs": info}, output_infos)}
        self.outputs = dict(outputs)
        self.fed: list[Mapping[str, np.ndarray]] = []

    def signature_def_map_json(self) -> dict[str, Any]:
        return {"signature_def": {"s": {"method_name": self.signatures["s"].method_name}}}

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.fed.append(inputs)
        return self.outputs


def _strings(rows: list[list[str]]) -> np.ndarray:
    return np.array([[label.encode() for label in row] for row in rows], dtype=object)


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (
            {
                "classes": _strings([["car", "bike"], ["bus", "car"]]),
                "scores": np.array([[0.2, 0.7], [0.7, 0.1]], np.float32),
            },
            b'{"results":[[["car",0.2],["bike",0.7]],[["bus",0.7],["car",0.1]]]}',
        ),
        ({"scores": np.array([[3.0], [1.5]], np.float32)}, b'{"results":[[["",3.0]],[["",1.5]]]}'),
        ({"classes": _strings([["a"], ["b"]])}, b'{"results":[[["a",0.0]],[["b",0.0]]]}'),
        (
            {"scores": np.array([[np.nan, np.inf], [-np.inf, 0.5]], np.float32)},
            b'{"results":[[["",NaN],["",Infinity]],[["",-Infinity],["",0.5]]]}',
        ),
        ({"scores": np.zeros((2, 0), np.float32)}, b'{"results":[[],[]]}'),
        (
            {"classes": np.array([[b"\xff"], [b"\xc3\xa9"]], dtype=object)},
            '{"results":[[["\ufffd",0.0]],[["é",0.0]]]}'.encode(),
        ),
    ],
)
def test_classification_results(outputs: dict, expected: bytes) -> None:
    servable = _FakeServable(outputs)
    assert classify(servable, "s", [b"", b""]) == expected
    (fed,) = servable.fed
    assert fed["inputs"].dtype == object and fed["inputs"].tolist() == [b"", b""]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"scores": np.zeros(2, np.float32)}, "Expected Tensor shape: [batch_size num_classes] but got [2]"),
        ({"classes": _strings([["a"]])}, "Expected classes output batch size of 2. Got: 1"),
        ({"classes": np.zeros((2, 1), np.float32)}, "Expected classes Tensor of DT_STRING. Got: DT_FLOAT"),
        ({"scores": np.zeros((2, 1), np.float64)}, "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE"),
        (
            {"classes": _strings([["a"], ["b"]]), "scores": np.zeros((2, 2), np.float32)},
            "Tensors class and score should match in dim_size(1). Got 1 vs. 2",
        ),
    ],
)
def test_classification_output_errors(outputs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        classify(_FakeServable(outputs), "s", [b"", b""])
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (np.array([0.2, 0.9, 1.0], np.float32), b'{"results":[0.2,0.9,1.0]}'),
        (np.array([[3.0], [42.0], [1e7]], np.float32), b'{"results":[3.0,42.0,1e+07]}'),
        (np.array([np.inf, -np.inf, np.nan], np.float32), b'{"results":[Infinity,-Infinity,NaN]}'),
    ],
)
def test_regression_results(output: np.ndarray, expected: bytes) -> None:
    assert regress(_FakeServable({"outputs": output}), "s", [b""] * 3) == expected


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            np.zeros((3, 2), np.float32),
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [3,2]",
        ),
        (np.float32(1.0), "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got []"),
        (np.zeros(2, np.float32), "Input batch size did not match output batch size: 3 vs. 2"),
        (np.zeros(3, np.float64), "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE"),
        (np.zeros(3, np.int64), "Expected output Tensor of DT_FLOAT.  Got: DT_INT64"),
    ],
)
def test_regression_output_errors(output: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        regress(_FakeServable({"outputs": output}), "s", [b""] * 3)
    assert raised.value.message == message


def test_method_name_is_checked_only_when_asked() -> None:
    servable = _FakeServable({"outputs": np.zeros(1, np.float32)}, method_name="tensorflow/serving/predict")
    assert regress(servable, "s", [b""]) == b'{"results":[0.0]}'
    with pytest.raises(InvalidArgument) as raised:
        regress(servable, "s", [b""], check_method_name=True)
    expected = (
        "Expected regression signature method_name to be tensorflow/serving/regress. Was: tensorflow/serving/predict"
    )
    assert raised.value.message == expected


# --- TF Serving's known answers on its test models ------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "xs", "expected"),
    [
        ("classify_x_to_y", [2.0], b'{"results":[[["",3.0]]]}'),
        ("classify_x_to_y", [20.0], b'{"results":[[["",12.0]]]}'),
        ("classify_x_to_y", [10.0, 1.0], b'{"results":[[["",7.0]],[["",2.5]]]}'),
    ],
)
def test_classify_half_plus_two(half_plus_two: SavedModelServable, signature: str, xs: list, expected: bytes) -> None:
    assert classify(half_plus_two, signature, _examples(*xs)) == expected


@pytest.mark.parametrize(
    ("signature", "xs", "expected"),
    [
        ("regress_x_to_y", [2.0], b'{"results":[3.0]}'),
        ("regress_x_to_y", [80.0], b'{"results":[42.0]}'),
        ("regress_x_to_y2", [2.0, 4.0], b'{"results":[4.0,5.0]}'),
    ],
)
def test_regress_half_plus_two(half_plus_two: SavedModelServable, signature: str, xs: list, expected: bytes) -> None:
    assert regress(half_plus_two, signature, _examples(*xs)) == expected


def test_regress_half_plus_three_whose_example_input_is_declared_float(half_plus_three: SavedModelServable) -> None:
    assert regress(half_plus_three, "tensorflow/serving/regress", _examples(1.0, 2.0)) == b'{"results":[3.5,4.0]}'


def test_context_reaches_the_model(half_plus_two: SavedModelServable) -> None:
    examples = decode_examples({"context": {"x": 6.0}, "examples": [{}, {"x": 2.0}]}, "regress")
    assert regress(half_plus_two, "regress_x_to_y", examples) == b'{"results":[5.0,3.0]}'


def test_tf2_predict_method_signatures_classify_and_regress(half_plus_two_tf2: SavedModelServable) -> None:
    # TF Serving checks method names only with --enable_signature_method_name_check (off by default).
    assert classify(half_plus_two_tf2, "classify_x_to_y", _examples(2.0)) == b'{"results":[[["",3.0]]]}'
    assert regress(half_plus_two_tf2, "regress_x_to_y", _examples(2.0, 4.0)) == b'{"results":[3.0,4.0]}'
    with pytest.raises(InvalidArgument) as raised:
        classify(half_plus_two_tf2, "classify_x_to_y", _examples(2.0), check_method_name=True)
    expected = "Expected classification signature method_name to be tensorflow/serving/classify. Was: tensorflow/serving/predict"
    assert raised.value.message == expected


@pytest.mark.parametrize("run", [classify, regress])
def test_unknown_signature(half_plus_two: SavedModelServable, run: Any) -> None:
    with pytest.raises(InvalidArgument) as raised:
        run(half_plus_two, "foo", _examples(1.0))
    assert raised.value.message == "No signature was found with the name: foo"


def test_signature_of_the_wrong_form(half_plus_two: SavedModelServable) -> None:
    with pytest.raises(InvalidArgument) as raised:
        classify(half_plus_two, "serving_default", _examples(1.0))
    message = raised.value.message
    assert message.startswith('No classification inputs found in SignatureDef: inputs {\n  key: "x"\n')
    assert message.endswith('method_name: "tensorflow/serving/predict"\n')
    with pytest.raises(InvalidArgument, match=r"^No regression outputs found in SignatureDef: inputs \{"):
        regress(half_plus_two, "classify_x_to_y", _examples(1.0))
    with pytest.raises(
        InvalidArgument,
        match='^Expected classification signature outputs to contain at least one of "classes" or "scores". Signature was: inputs',
    ):
        classify(half_plus_two, "regress_x_to_y", _examples(1.0))


def test_int_feature_for_a_float_input_fails_in_the_graph(half_plus_two: SavedModelServable) -> None:
    # TFSERVING.md 4.7: clients must send 2.0; 2 makes an int64 feature the model's parser refuses.
    with pytest.raises(InvalidArgument, match="Data types don't match. Data type: int64 but expected type: float"):
        regress(half_plus_two, "regress_x_to_y", decode_examples({"examples": [{"x": 2}]}, "regress"))


def test_float_input_signature_cannot_take_examples(half_plus_two: SavedModelServable) -> None:
    # TF Serving feeds the serialized examples to x2:0 anyway, and its session refuses the string tensor.
    with pytest.raises(InvalidArgument, match="Input inputs has dtype object but the signature expects DT_FLOAT"):
        regress(half_plus_two, "regress_x2_to_y3", _examples(1.0))


def test_responses_are_json(half_plus_two: SavedModelServable) -> None:
    assert orjson.loads(regress(half_plus_two, "regress_x_to_y", _examples(2.0))) == {"results": [3.0]}
