"""The Open Inference Protocol (KServe V2) facts its REST and gRPC codecs share: datatypes, shapes, tensor
data in binary form, model specs from names and version strings, and how a request's tensors must fit the
signature they feed.

The wire facts, as the protocol (``inference_rest.md``, ``open_inference_grpc.proto``) and Triton's binary
tensor data extension state them:

- a datatype is one of BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64, BYTES (and Triton's BF16); each is
  one TensorFlow dtype here, so a request's datatype must be exactly its input's (no coercion);
- a shape lists non-negative dimensions; metadata writes a variable one as -1;
- binary tensor data (``raw_input_contents`` in gRPC, the binary extension in REST) is the tensor's elements,
  flattened in row-major order, little-endian, with no padding; a BYTES element is its length as 4
  little-endian bytes, then its bytes.

A V2 version is a string: a decimal one names a version, any other one a version label (tfaas's labels,
TF Serving's ``version_labels``). The signature a call runs is ``serving_default`` unless the request's
``signature_name`` parameter names another (a tfaas parameter; the protocol has no signatures). No
transport and no TensorFlow here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import ml_dtypes
import numpy as np

from tfaas import __version__
from tfaas.errors import InvalidArgument, Unimplemented
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import DEFAULT_SIGNATURE, INT64_MAX

SERVER_NAME = "tfaas"
SERVER_VERSION = __version__
EXTENSIONS = ("binary_tensor_data", "model_repository")
"""The protocol extensions served: Triton's binary tensor data (REST) and the model repository (REST)."""
PLATFORM = "tensorflow_savedmodel"
SIGNATURE_PARAMETER = "signature_name"
"""The request parameter that names the signature to run (a string)."""

DATATYPES: Mapping[str, tuple[str, np.dtype]] = {
    "BOOL": ("DT_BOOL", np.dtype(np.bool_)),
    "UINT8": ("DT_UINT8", np.dtype("<u1")),
    "UINT16": ("DT_UINT16", np.dtype("<u2")),
    "UINT32": ("DT_UINT32", np.dtype("<u4")),
    "UINT64": ("DT_UINT64", np.dtype("<u8")),
    "INT8": ("DT_INT8", np.dtype("<i1")),
    "INT16": ("DT_INT16", np.dtype("<i2")),
    "INT32": ("DT_INT32", np.dtype("<i4")),
    "INT64": ("DT_INT64", np.dtype("<i8")),
    "FP16": ("DT_HALF", np.dtype("<f2")),
    "FP32": ("DT_FLOAT", np.dtype("<f4")),
    "FP64": ("DT_DOUBLE", np.dtype("<f8")),
    "BF16": ("DT_BFLOAT16", np.dtype(ml_dtypes.bfloat16)),
    "BYTES": ("DT_STRING", np.dtype(np.object_)),
}
"""Each V2 datatype: the TensorFlow dtype it is, and the numpy dtype of its elements (BYTES: ``bytes`` objects)."""

_BY_TF = {tf_dtype: datatype for datatype, (tf_dtype, _) in DATATYPES.items()}
_BY_NUMPY = {dtype.newbyteorder("="): datatype for datatype, (_, dtype) in DATATYPES.items()}
_LENGTH_BYTES = 4


@dataclass(frozen=True)
class TensorHeader:
    """What a request says of one input tensor: its name, datatype and shape (checked)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def count(self) -> int:
        """The number of elements its shape holds."""
        return math.prod(self.shape)


def tensor_header(name: Any, datatype: Any, shape: Any) -> TensorHeader:
    """An input's header, or ``InvalidArgument`` naming what is wrong with it (a JSON body may hold anything)."""
    if not isinstance(name, str):
        raise InvalidArgument("Every input needs a 'name' string")
    if datatype not in DATATYPES:
        raise InvalidArgument(f"Input '{name}' has an unknown datatype {datatype!r}: one of {', '.join(DATATYPES)}")
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise InvalidArgument(f"Input '{name}' needs a 'shape': a list of dimensions")
    if not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape):
        raise InvalidArgument(f"Input '{name}' has shape {list(shape)}: dimensions are integers of 0 or more")
    return TensorHeader(name, datatype, tuple(shape))


def model_spec(name: str, version: str) -> ModelSpec:
    """The model spec of a V2 model name and version string: the latest for ``""``, a decimal one as a
    version, any other as a version label."""
    if not version:
        return ModelSpec(name)
    if version.isdecimal() and version.isascii():
        if int(version) > INT64_MAX:
            raise InvalidArgument(f"Version {version} of model {name} is beyond the largest version number")
        return ModelSpec(name, version=int(version))
    return ModelSpec(name, label=version)


def signature_name(parameters: Mapping[str, Any]) -> str:
    """The signature a request's parameters name (``serving_default`` when they name none)."""
    name = parameters.get(SIGNATURE_PARAMETER, DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise InvalidArgument(f"The '{SIGNATURE_PARAMETER}' parameter must be a string")
    return name


def check_tensor_parameters(parameters: Mapping[str, Any], tensor: str) -> None:
    """``InvalidArgument`` for the parameters of Triton's extensions tfaas does not serve, on an input or a
    requested output (anything else is ignored, as the protocol lets a server do).

    NOTE: a 400, not a 501: the client chose to send them, and no client input gets a 5xx."""
    if any(key.startswith("shared_memory_") for key in parameters):
        raise InvalidArgument(f"Tensor '{tensor}': shared memory is not supported; send the data in the request")
    if "classification" in parameters:
        raise InvalidArgument(f"Output '{tensor}': the classification extension is not supported")


# ---- datatypes and shapes ---------------------------------------------------------------------------


def datatype_of_tf(tf_dtype: str) -> str:
    """The V2 datatype of a TensorFlow dtype (``DT_FLOAT`` is FP32); a dtype V2 has none for keeps its own
    name without ``DT_`` (``COMPLEX64``), which no request can match."""
    return _BY_TF.get(tf_dtype) or tf_dtype.removeprefix("DT_")


def datatype_of(array: np.ndarray, name: str) -> str:
    """The V2 datatype of an output array; ``Unimplemented`` for one V2 has none for (complex numbers)."""
    datatype = _BY_NUMPY.get(array.dtype.newbyteorder("="))
    if datatype is None:
        raise Unimplemented(f"Output '{name}' has type {array.dtype}, which the Open Inference Protocol cannot express")
    return datatype


def metadata_shape(shape: tuple[int | None, ...] | None) -> list[int]:
    """A signature's shape as V2 metadata writes it: -1 for a variable dimension; ``[-1]`` for an unknown rank."""
    if shape is None:
        return [-1]
    return [-1 if dim is None else dim for dim in shape]


def tensor_metadata(info: TensorInfo) -> tuple[str, str, list[int]]:
    """Name, datatype and shape of one input or output of a signature, for model metadata."""
    return info.alias, datatype_of_tf(info.dtype), metadata_shape(info.shape)


def check_inputs(headers: Sequence[TensorHeader], signature: SignatureInfo, model: str) -> None:
    """``InvalidArgument`` unless ``headers`` name each input of ``signature`` once, each with its datatype and
    a shape that fits its shape (its rank, and the size of each fixed dimension)."""
    names = [header.name for header in headers]
    for header in headers:
        if names.count(header.name) > 1:
            raise InvalidArgument(f"Input '{header.name}' is given more than once")
        info = signature.inputs.get(header.name)
        if info is None:
            expected = ", ".join(signature.inputs)
            raise InvalidArgument(f"Unexpected input '{header.name}' for model '{model}': its inputs are {expected}")
        datatype = datatype_of_tf(info.dtype)
        if header.datatype != datatype:
            raise InvalidArgument(
                f"Input '{header.name}' of model '{model}' is {datatype}; the request sends {header.datatype}"
            )
        if info.shape is not None and not _fits(header.shape, info.shape):
            raise InvalidArgument(
                f"Input '{header.name}' of model '{model}' has shape {metadata_shape(info.shape)}; the request"
                f" sends {list(header.shape)}"
            )
    missing = [name for name in signature.inputs if name not in names]
    if missing:
        raise InvalidArgument(f"Model '{model}' needs the inputs {', '.join(missing)}, which the request lacks")


def _fits(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(want is None or want == dim for dim, want in zip(shape, expected))


def output_names(outputs: Mapping[str, np.ndarray], requested: Sequence[str]) -> list[str]:
    """The order the answer lists outputs in: as requested, else by name."""
    return list(requested) if requested else sorted(outputs)


def shaped(array: np.ndarray, header: TensorHeader) -> np.ndarray:
    """``array``'s elements (row-major) in ``header``'s shape; ``InvalidArgument`` when their number differs."""
    if array.size != header.count:
        raise InvalidArgument(
            f"Input '{header.name}' has {array.size} elements, but its shape {list(header.shape)} holds {header.count}"
        )
    try:
        return array.reshape(header.shape)
    except ValueError as error:  # NOTE: more dimensions than numpy holds
        raise InvalidArgument(f"Input '{header.name}': {error}") from None


# ---- binary tensor data -----------------------------------------------------------------------------


def from_binary(data: bytes | bytearray | memoryview, header: TensorHeader) -> np.ndarray:
    """The tensor ``header`` describes, from its binary data (fixed-size elements are not copied);
    ``InvalidArgument`` when the data does not hold exactly its elements."""
    if header.datatype == "BYTES":
        return shaped(_bytes_elements(memoryview(data), header), header)
    dtype = DATATYPES[header.datatype][1]
    if len(data) != header.count * dtype.itemsize:
        raise InvalidArgument(
            f"Input '{header.name}' has {len(data)} bytes of data, but {header.datatype} elements of shape"
            f" {list(header.shape)} take {header.count * dtype.itemsize}"
        )
    return shaped(np.frombuffer(data, dtype), header)


def _bytes_elements(data: memoryview, header: TensorHeader) -> np.ndarray:
    """The length-prefixed elements of a BYTES tensor's binary data, checked against its size and shape."""
    elements: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end and len(elements) < header.count:
        if end - offset < _LENGTH_BYTES:
            break
        size = int.from_bytes(data[offset : offset + _LENGTH_BYTES], "little")
        offset += _LENGTH_BYTES
        if size > end - offset:
            raise InvalidArgument(
                f"Input '{header.name}': element {len(elements)} is {size} bytes long, past the end of its data"
            )
        elements.append(bytes(data[offset : offset + size]))
        offset += size
    if offset != end or len(elements) != header.count:
        raise InvalidArgument(
            f"Input '{header.name}': its BYTES data must be exactly {header.count} elements, each a 4-byte"
            " little-endian length and that many bytes"
        )
    return bytes_array(elements)


def bytes_array(elements: Sequence[bytes]) -> np.ndarray:
    """A flat object array of ``bytes`` (``np.array`` would make fixed-width strings of them)."""
    array = np.empty(len(elements), np.object_)
    array[:] = elements
    return array


def to_binary(array: np.ndarray) -> bytes:
    """An output's binary data: its elements little-endian, or a BYTES tensor's length-prefixed elements."""
    if array.dtype == np.object_:
        elements = [_as_bytes(element) for element in array.ravel().tolist()]
        return b"".join(len(element).to_bytes(_LENGTH_BYTES, "little") + element for element in elements)
    return np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def _as_bytes(element: Any) -> bytes:
    return element.encode("utf-8") if isinstance(element, str) else bytes(element)
