"""The Open Inference Protocol's REST bodies (KServe V2), with Triton's binary tensor data extension.

An infer request is JSON: ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?,
"data"}], "outputs"?: [{"name", "parameters"?}]}``, ``data`` row-major, flat or nested. With the binary
extension the body is that JSON, ``Inference-Header-Content-Length`` bytes long, followed by the binary
data of the inputs whose ``parameters.binary_data_size`` says how many bytes they take, in the order of
``inputs``; every size is checked against the body (none may reach past it, and nothing may be left over).
An output is answered in binary when the request asks (its ``parameters.binary_data``, else the request's
``parameters.binary_data_output``): its JSON then has ``parameters.binary_data_size`` and no ``data``, its
bytes follow the JSON, and the answer carries ``Inference-Header-Content-Length``.

In JSON, a number of an FP datatype may be an integer, an integer one must be one, BOOL takes ``true`` and
``false`` and BYTES strings (their UTF-8 bytes); outputs are written the same way, flat, floats as the
shortest text that reads back as the same value; a non-finite float (which JSON cannot write) is ``null``
and a BYTES element that is not UTF-8 text has its invalid bytes replaced: ask for binary data to get them
exactly. BF16 elements are numbers in JSON (rounded to BF16 in requests, written as FP32 in answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import orjson

from tfaas import request_timing
from tfaas.codecs import v2
from tfaas.codecs.json_tensor import dense_leaves, dense_shape
from tfaas.codecs.v2 import TensorHeader
from tfaas.core.states import ManagerState, ServableState
from tfaas.errors import InvalidArgument
from tfaas.inference.types import ModelListing, PredictRequest, PredictResult, SignatureMetadata
from tfaas.servables.servable import SignatureInfo
from tfaas.server_core import ModelSpec

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_SIZE = "binary_data_size"
BINARY_OUTPUT = "binary_data"
BINARY_OUTPUTS = "binary_data_output"
BINARY_CONTENT_TYPE = "application/octet-stream"
JSON_CONTENT_TYPE = "application/json"

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_NUMBER, _INTEGER = frozenset({int, float}), frozenset({int})
_LEAF_TYPES = {"BOOL": frozenset({bool}), "BYTES": frozenset({str})}
"""The JSON types each datatype's elements may have: numbers, integers for the integer datatypes."""


@dataclass(frozen=True)
class _Input:
    """One input of an infer request: its header, and its JSON ``data`` or its binary data."""

    header: TensorHeader
    data: Any


@dataclass(frozen=True)
class Answer:
    """An infer answer: its body in pieces, its content type, and the length of its JSON part when binary
    data follows it (for ``Inference-Header-Content-Length``)."""

    parts: list[bytes]
    content_type: str = JSON_CONTENT_TYPE
    header_length: int | None = None


class InferJson:
    """A parsed infer request body (``header_length``: the request's ``Inference-Header-Content-Length``),
    parsed when this is made (timed as ``parse``); its inputs are decoded by the service for the signature
    that runs, and the answer is encoded as the request asks (timed as ``encode``)."""

    def __init__(self, data: bytes | bytearray, header_length: str | None) -> None:
        with request_timing.timed("parse"):
            self._parse(memoryview(data), header_length)

    def _parse(self, data: memoryview, header_length: str | None) -> None:
        json_part, binary = _split(data, header_length)
        body = _object(_loads(json_part), "The request body")
        self.id = body.get("id", "")
        if not isinstance(self.id, str):
            raise InvalidArgument("The request's 'id' must be a string")
        parameters = _parameters(body.get("parameters"), "The request's")
        self.signature_name = v2.signature_name(parameters)
        self._binary_outputs = parameters.get(BINARY_OUTPUTS, False)
        if not isinstance(self._binary_outputs, bool):
            raise InvalidArgument(f"The '{BINARY_OUTPUTS}' parameter must be true or false")
        self._inputs = _inputs(body.get("inputs"), binary)
        self._outputs = _outputs(body.get("outputs", []))

    def request(self, spec: ModelSpec) -> PredictRequest:
        """The service's request: its inputs decoded once the signature that runs them is known."""

        def decode(signature: SignatureInfo) -> dict[str, np.ndarray]:
            v2.check_inputs([i.header for i in self._inputs], signature, spec.name)
            return {i.header.name: _array(i) for i in self._inputs}

        return PredictRequest(spec, decode, self.signature_name, output_filter=list(self._outputs))

    def encode(self, result: PredictResult) -> Answer:
        """The answer: each output in JSON or, where the request asked, in binary after the JSON."""
        with request_timing.timed("encode"):
            return self._encode(result)

    def _encode(self, result: PredictResult) -> Answer:
        answer: dict[str, Any] = {"model_name": result.spec.name, "model_version": str(result.spec.version)}
        if self.id:
            answer["id"] = self.id
        tensors, binaries = [], []
        for name in v2.output_names(result.outputs, list(self._outputs)):
            array = result.outputs[name]
            tensor = {"name": name, "datatype": v2.datatype_of(array, name), "shape": list(array.shape)}
            binary = self._outputs.get(name)
            if binary if binary is not None else self._binary_outputs:
                binaries.append(v2.to_binary(array))
                tensor["parameters"] = {BINARY_SIZE: len(binaries[-1])}
            else:
                tensor["data"] = _jsonable(array)
            tensors.append(tensor)
        answer["outputs"] = tensors
        head = orjson.dumps(answer, option=_NUMPY)
        if not binaries:
            return Answer([head])
        return Answer([head, *binaries], BINARY_CONTENT_TYPE, len(head))


def _split(data: memoryview, header_length: str | None) -> tuple[memoryview, memoryview]:
    """The JSON part of a body and the binary data after it."""
    if header_length is None:
        return data, data[len(data) :]
    if not (header_length.isdecimal() and header_length.isascii()) or int(header_length) > len(data):
        raise InvalidArgument(
            f"{HEADER_LENGTH} must be the length of the JSON part of the body ({len(data)} bytes at most),"
            f" not {header_length!r}"
        )
    return data[: int(header_length)], data[int(header_length) :]


def _loads(data: bytes | bytearray | memoryview) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidArgument(f"The request body is not JSON: {error}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _parameters(value: Any, owner: str) -> dict[str, Any]:
    """A ``parameters`` object (absent: empty)."""
    return _object(value, f"{owner} 'parameters'") if value is not None else {}


def _inputs(value: Any, binary: memoryview) -> list[_Input]:
    """The request's inputs, the binary data of each taken from ``binary`` in order (all of it, exactly)."""
    if not isinstance(value, list):
        raise InvalidArgument("The request needs 'inputs': a list of tensors")
    inputs, offset = [], 0
    for item in value:
        item = _object(item, "Each input")
        header = v2.tensor_header(item.get("name"), item.get("datatype"), item.get("shape"))
        parameters = _parameters(item.get("parameters"), f"Input '{header.name}'")
        v2.check_tensor_parameters(parameters, header.name)
        size = parameters.get(BINARY_SIZE)
        if size is None:
            if "data" not in item:
                raise InvalidArgument(f"Input '{header.name}' has no 'data' and no '{BINARY_SIZE}'")
            inputs.append(_Input(header, item["data"]))
            continue
        if "data" in item:
            raise InvalidArgument(f"Input '{header.name}' has both 'data' and '{BINARY_SIZE}'")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary) - offset:
            raise InvalidArgument(
                f"Input '{header.name}': '{BINARY_SIZE}' {size!r} is not within the {len(binary) - offset} bytes of"
                " binary data left in the body"
            )
        inputs.append(_Input(header, binary[offset : offset + size]))
        offset += size
    if offset != len(binary):
        raise InvalidArgument(
            f"The body holds {len(binary) - offset} bytes after its JSON part and the inputs' binary data"
        )
    return inputs


def _outputs(value: Any) -> dict[str, bool | None]:
    """The outputs asked for, in order, each with whether it goes in binary (None: as the request says)."""
    if not isinstance(value, list):
        raise InvalidArgument("The request's 'outputs' must be a list")
    outputs: dict[str, bool | None] = {}
    for item in value:
        item = _object(item, "Each requested output")
        name = item.get("name")
        if not isinstance(name, str):
            raise InvalidArgument("Every requested output needs a 'name' string")
        parameters = _parameters(item.get("parameters"), f"Output '{name}'")
        v2.check_tensor_parameters(parameters, name)
        binary = parameters.get(BINARY_OUTPUT)
        if binary is not None and not isinstance(binary, bool):
            raise InvalidArgument(f"Output '{name}': '{BINARY_OUTPUT}' must be true or false")
        outputs[name] = binary
    if len(outputs) != len(value):
        raise InvalidArgument("An output is requested more than once")
    return outputs


def _array(item: _Input) -> np.ndarray:
    """An input's array, from its binary data or its JSON ``data``."""
    if isinstance(item.data, memoryview):
        return v2.from_binary(item.data, item.header)
    return v2.shaped(_from_json(item.data, item.header), item.header)


def _from_json(data: Any, header: TensorHeader) -> np.ndarray:
    """The flat elements of JSON ``data`` (nested lists of one size per level, or flat)."""
    if not isinstance(data, list):
        raise InvalidArgument(f"Input '{header.name}': 'data' must be a list of its elements")
    leaves = dense_leaves(data, dense_shape(data))
    allowed = _LEAF_TYPES.get(header.datatype, _NUMBER if header.datatype.startswith(("FP", "BF")) else _INTEGER)
    if leaves is None or not set(map(type, leaves)) <= allowed:
        kinds = "/".join(sorted(t.__name__.replace("str", "string") for t in allowed))
        raise InvalidArgument(
            f"Input '{header.name}': 'data' must be lists of one length per level holding {header.datatype}"
            f" elements ({kinds})"
        )
    if header.datatype == "BYTES":
        return v2.bytes_array([leaf.encode("utf-8") for leaf in leaves])
    dtype = v2.DATATYPES[header.datatype][1]
    try:
        with np.errstate(over="ignore"):  # NOTE: a float past FP32's range becomes infinite, as TensorFlow casts
            return np.array(leaves, np.float32 if header.datatype == "BF16" else dtype).astype(dtype, copy=False)
    except OverflowError:
        raise InvalidArgument(f"Input '{header.name}': an element is out of the range of {header.datatype}") from None


def _jsonable(array: np.ndarray) -> Any:
    """An output's elements, flat, as orjson writes them (numpy arrays as they are)."""
    if array.dtype == np.object_:
        return [_text(element) for element in array.ravel().tolist()]
    if array.dtype == v2.DATATYPES["BF16"][1]:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array).ravel()


def _text(element: Any) -> str:
    return element if isinstance(element, str) else bytes(element).decode("utf-8", errors="replace")


# ---- the other answers ------------------------------------------------------------------------------


def dumps(payload: Any) -> bytes:
    """A JSON answer's body."""
    return orjson.dumps(payload)


def server_metadata() -> bytes:
    """``GET /v2``."""
    return dumps({"name": v2.SERVER_NAME, "version": v2.SERVER_VERSION, "extensions": list(v2.EXTENSIONS)})


def model_metadata(metadata: SignatureMetadata) -> bytes:
    """``GET /v2/models/<m>[/versions/<v>]``: the signature's inputs and outputs, and the versions served."""
    signature = metadata.signature
    return dumps(
        {
            "name": metadata.spec.name,
            "versions": [str(version) for version in metadata.versions],
            "platform": v2.PLATFORM,
            "inputs": [_tensor(*v2.tensor_metadata(info)) for info in signature.inputs.values()],
            "outputs": [_tensor(*v2.tensor_metadata(info)) for info in signature.outputs.values()],
        }
    )


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def request_object(data: bytes | bytearray) -> dict[str, Any]:
    """The JSON object of a repository call's body (an empty body is ``{}``, as tritonclient sends it)."""
    return _object(_loads(data), "The request body") if data.strip() else {}


def check_load_parameters(body: Mapping[str, Any]) -> None:
    """``InvalidArgument`` for a load that sends a model config or files (Triton's ``config`` and ``file:``
    parameters): a load serves the model as configured or as the model repository holds it."""
    parameters = _parameters(body.get("parameters"), "The load's")
    if "config" in parameters or any(key.startswith("file:") for key in parameters):
        raise InvalidArgument(
            "A load serves the model as configured or as in the model repository: a config or files sent with"
            " the request are not supported"
        )


def index_ready_only(body: Mapping[str, Any]) -> bool:
    """Whether a repository index request asks for the ready models only (``{"ready": true}``)."""
    ready = body.get("ready", False)
    if not isinstance(ready, bool):
        raise InvalidArgument("'ready' must be true or false")
    return ready


def repository_index(models: Sequence[ModelListing], ready_only: bool) -> bytes:
    """``POST /v2/repository/index``: one entry per model version the server knows (one per model that has
    none), with its state (READY, LOADING, UNLOADING, UNAVAILABLE) and why it is not READY."""
    entries = [entry for model in models for entry in _index_entries(model)]
    return dumps([entry for entry in entries if entry["state"] == "READY" or not ready_only])


def _index_entries(model: ModelListing) -> list[dict[str, Any]]:
    if not model.states:
        reason = "unloaded" if model.unloaded else "no version of it has been found"
        return [{"name": model.name, "state": "UNAVAILABLE", "reason": reason}]
    return [
        {"name": model.name, "version": str(state.id.version), **_index_state(state, model.unloaded)}
        for state in model.states
    ]


def _index_state(state: ServableState, unloaded: bool) -> dict[str, str]:
    """The V2 state of a version from the server's state of it (AVAILABLE: it serves)."""
    if state.state is ManagerState.AVAILABLE:
        return {"state": "READY", "reason": ""}
    if state.state in (ManagerState.START, ManagerState.LOADING):
        return {"state": "LOADING", "reason": ""}
    if state.state is ManagerState.UNLOADING:
        return {"state": "UNLOADING", "reason": ""}
    return {"state": "UNAVAILABLE", "reason": state.error or "unloaded"}
