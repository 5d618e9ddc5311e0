"""TFaaS's ``params.json``: what a TFaaS model directory says about its model, and its labels file.

TensorFlow-free. TFaaS (the Go service) reads ``params.json`` into its ``TFParams`` struct, whose JSON keys
have been snake_case since 2023 (``input_node``); every document written before then uses camelCase
(``inputNode``), which current TFaaS silently ignores. Both are read here, the snake_case key winning
where a file has both, so models uploaded to either TFaaS generation load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

from tfaas.errors import InvalidArgument

PARAMS_JSON = "params.json"

_STRING_KEYS = ("name", "model", "labels", "op", "input_name", "output_name", "input_node", "output_node")
_TEXT_KEYS = ("description", "timestamp")
_CAMEL_CASE = {
    "inputName": "input_name",
    "outputName": "output_name",
    "imgChannels": "img_channels",
    "inputNode": "input_node",
    "outputNode": "output_node",
}


@dataclass(frozen=True)
class ModelParams:
    """One model's ``params.json``, every key of TFaaS's ``TFParams`` (absent keys read as Go's zero values).

    ``model`` and ``labels`` are file names inside the model's (version) directory; ``input_node`` and
    ``output_node`` name the TF1 graph's input and output tensors (``op`` or ``op:N``); ``input_name`` and
    ``output_name`` are TFaaS's TF2 graph op names (not used here: SavedModels run their ``serving_default``
    signature); ``img_channels`` is the channel count images are decoded to (0: unset); ``op`` and
    ``options`` are stored and echoed only. NOTE: ``options`` is a list, so instances are not hashable.
    """

    name: str = ""
    model: str = ""
    labels: str = ""
    op: str = ""
    input_name: str = ""
    output_name: str = ""
    img_channels: int = 0
    options: list[str] | None = None
    input_node: str = ""
    output_node: str = ""
    description: str = ""
    timestamp: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        """All 12 keys in TFaaS's order and spelling, as its ``GET /models`` lists each model."""
        return {
            "name": self.name,
            "model": self.model,
            "labels": self.labels,
            "op": self.op,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "img_channels": self.img_channels,
            "options": None if self.options is None else list(self.options),
            "input_node": self.input_node,
            "output_node": self.output_node,
            "description": self.description,
            "timestamp": self.timestamp,
        }


def read_params(version_dir: str | os.PathLike[str]) -> ModelParams | None:
    """The ``params.json`` of ``version_dir``, or None when it has none.

    Raises ``InvalidArgument`` naming the file (and the key) when it is unreadable, not a JSON object, or
    holds a key of the wrong type.
    """
    path = os.path.join(os.fspath(version_dir), PARAMS_JSON)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InvalidArgument(f"Invalid {path}: cannot be read: {error.strerror or error}") from error
    return parse_params(data, path)


def parse_params(data: bytes, where: str) -> ModelParams:
    """Parse ``params.json`` content (an upload's, say); ``where`` names it in error messages.

    Same rules as ``read_params``: camelCase and snake_case keys, snake_case winning; unknown keys ignored,
    as TFaaS's decoder ignores them; ``null`` reads as the key's zero value, as in Go.
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidArgument(f"Invalid {where}: not JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidArgument(f"Invalid {where}: expected a JSON object, got {_json_type(document)}")
    values = _snake_case(document)
    fields: dict[str, Any] = {}
    for key in (*_STRING_KEYS, *_TEXT_KEYS):
        value = values.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidArgument(f'Invalid {where}: key "{key}" must be a string, got {_json_type(value)}')
            fields[key] = value
    channels = values.get("img_channels")
    if channels is not None:
        if isinstance(channels, float) and channels.is_integer():
            channels = int(channels)
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 0:
            raise InvalidArgument(
                f'Invalid {where}: key "img_channels" must be a non-negative integer, got {json.dumps(channels)}'
            )
        fields["img_channels"] = channels
    options = values.get("options")
    if options is not None:
        if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
            raise InvalidArgument(
                f'Invalid {where}: key "options" must be a list of strings, got {json.dumps(options)}'
            )
        fields["options"] = list(options)
    return ModelParams(**fields)


def _snake_case(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with its camelCase keys renamed; a snake_case key present in it wins over its camelCase twin."""
    values = dict(document)
    for camel, snake in _CAMEL_CASE.items():
        if camel in document and snake not in document:
            values[snake] = document[camel]
    return values


def _json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def read_labels(version_dir: str | os.PathLike[str], params: ModelParams | None) -> list[str]:
    """The labels file ``params.labels`` names in ``version_dir``, one label per line; [] when there is none.

    Lines split as TFaaS's Go scanner splits them: on ``\\n``, a trailing ``\\r`` dropped, empty lines kept
    (labels pair with output indices), no empty label after a final newline. Only the file name of
    ``params.labels`` is used (as TFaaS stores uploads), so it never points outside ``version_dir``.
    """
    if params is None or not params.labels:
        return []
    path = os.path.join(os.fspath(version_dir), stored_file_name(params.labels))
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def model_file(version_dir: str | os.PathLike[str], params: ModelParams) -> str:
    """The path of the file ``params.model`` names in ``version_dir`` (its file name only, as for labels)."""
    return os.path.join(os.fspath(version_dir), stored_file_name(params.model))


def stored_file_name(reference: str) -> str:
    """The file a ``model`` or ``labels`` reference of params.json names: its file name only, as TFaaS
    stores uploads, so that it never points outside the version directory."""
    return os.path.basename(reference.replace("\\", "/"))
