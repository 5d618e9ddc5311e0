"""TFaaS's params.json (both key spellings) and labels files, without TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfaas.errors import InvalidArgument
from tfaas.servables.model_params import ModelParams, parse_params, read_labels, read_params

TFAAS_KEYS = [
    "name",
    "model",
    "labels",
    "op",
    "input_name",
    "output_name",
    "img_channels",
    "options",
    "input_node",
    "output_node",
    "description",
    "timestamp",
]


def _write(directory: Path, content: object) -> Path:
    text = content if isinstance(content, str) else json.dumps(content)
    (directory / "params.json").write_text(text)
    return directory


def test_no_params_json_reads_as_none(tmp_path: Path) -> None:
    assert read_params(tmp_path) is None


def test_snake_case_keys(tmp_path: Path) -> None:
    params = read_params(
        _write(
            tmp_path,
            {
                "name": "mnist",
                "model": "saved_model.pb",
                "labels": "labels.txt",
                "op": "x",
                "img_channels": 1,
                "input_name": "serving_default_input_1",
                "output_name": "StatefulPartitionedCall",
                "options": ["a", "b"],
                "input_node": "input_1",
                "output_node": "dense/Softmax:0",
                "description": "digits",
                "timestamp": "2023-03-12",
                "unknown": {"ignored": True},
            },
        )
    )
    assert params == ModelParams(
        name="mnist",
        model="saved_model.pb",
        labels="labels.txt",
        op="x",
        input_name="serving_default_input_1",
        output_name="StatefulPartitionedCall",
        img_channels=1,
        options=["a", "b"],
        input_node="input_1",
        output_node="dense/Softmax:0",
        description="digits",
        timestamp="2023-03-12",
    )


def test_old_camel_case_keys(tmp_path: Path) -> None:
    # doc/curl_client.md's example, plus the other renamed keys.
    params = read_params(
        _write(
            tmp_path,
            {
                "name": "ImageModel",
                "model": "tf_model.pb",
                "labels": "labels.txt",
                "inputNode": "dense_4_input",
                "outputNode": "output_node0",
                "imgChannels": 3,
                "inputName": "in",
                "outputName": "out",
            },
        )
    )
    assert params is not None
    assert (params.input_node, params.output_node, params.img_channels) == ("dense_4_input", "output_node0", 3)
    assert (params.input_name, params.output_name) == ("in", "out")


def test_snake_case_wins_over_camel_case() -> None:
    params = parse_params(b'{"inputNode": "old", "input_node": "new", "outputNode": "out"}', "upload")
    assert (params.input_node, params.output_node) == ("new", "out")


def test_absent_and_null_keys_read_as_zero_values() -> None:
    params = parse_params(b'{"name": "m", "labels": null, "img_channels": null, "options": null}', "upload")
    assert params == ModelParams(name="m")
    assert params.options is None


def test_to_json_dict_has_tfaas_keys_in_order() -> None:
    params = parse_params(b'{"name": "m", "inputNode": "in", "options": ["x"]}', "upload")
    document = params.to_json_dict()
    assert list(document) == TFAAS_KEYS
    assert document["input_node"] == "in"
    assert document["options"] == ["x"]
    assert ModelParams().to_json_dict() == {
        **{key: "" for key in TFAAS_KEYS},
        "img_channels": 0,
        "options": None,
    }
    assert json.loads(json.dumps(document)) == document


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"text"', "expected a JSON object, got a string"),
        ('{"name": 3}', 'key "name" must be a string, got a number'),
        ('{"input_node": ["a"]}', 'key "input_node" must be a string, got an array'),
        ('{"inputNode": true}', 'key "input_node" must be a string, got a boolean'),
        ('{"img_channels": "3"}', 'key "img_channels" must be a non-negative integer, got "3"'),
        ('{"img_channels": 1.5}', 'key "img_channels" must be a non-negative integer, got 1.5'),
        ('{"img_channels": -1}', 'key "img_channels" must be a non-negative integer, got -1'),
        ('{"img_channels": true}', 'key "img_channels" must be a non-negative integer, got true'),
        ('{"options": "a"}', 'key "options" must be a list of strings, got "a"'),
        ('{"options": [1]}', 'key "options" must be a list of strings, got [1]'),
    ],
)
def test_bad_params_json_names_file_and_key(tmp_path: Path, content: str, expected: str) -> None:
    _write(tmp_path, content)
    with pytest.raises(InvalidArgument) as raised:
        read_params(tmp_path)
    assert raised.value.message.startswith(f"Invalid {tmp_path / 'params.json'}: ")
    assert expected in raised.value.message


def test_parse_params_names_where(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^Invalid params.json of upload mnist: not JSON"):
        parse_params(b"\xff\xfe", "params.json of upload mnist")


def test_integral_float_channels_are_accepted() -> None:
    assert parse_params(b'{"img_channels": 3.0}', "upload").img_channels == 3


def test_read_labels(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_bytes(b"higgs\r\nqcd\n\nmuons\n")
    params = ModelParams(labels="labels.txt")
    # Empty lines stay: labels pair with output indices.
    assert read_labels(tmp_path, params) == ["higgs", "qcd", "", "muons"]
    (tmp_path / "labels.txt").write_bytes(b"a\nb")
    assert read_labels(tmp_path, params) == ["a", "b"]
    # A path in params.json reads the file of that name in the version directory (as TFaaS stores uploads).
    assert read_labels(tmp_path, ModelParams(labels="/elsewhere/labels.txt")) == ["a", "b"]


def test_read_labels_without_file(tmp_path: Path) -> None:
    assert read_labels(tmp_path, None) == []
    assert read_labels(tmp_path, ModelParams()) == []
    assert read_labels(tmp_path, ModelParams(labels="missing.txt")) == []
    (tmp_path / "empty.txt").write_bytes(b"")
    assert read_labels(tmp_path, ModelParams(labels="empty.txt")) == []
