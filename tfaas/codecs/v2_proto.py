"""The Open Inference Protocol's gRPC messages (KServe V2, ``inference.GRPCInferenceService``) to the inference
service's types and back.

A ``ModelInferRequest``'s inputs come either all in ``raw_input_contents`` (one entry per input, in order: the
binary tensor data of :mod:`tfaas.codecs.v2`) or each in its ``contents`` field of its datatype
(``fp32_contents`` for FP32, ``int_contents`` for INT8/16/32, …; FP16 and BF16 have none and travel raw). The
answer comes the way the request came: raw outputs in ``raw_output_contents`` for a raw request (as Triton
answers every request), typed ``contents`` for a typed one, unless an output has no typed field (then all
are raw, as the protocol allows no mix).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tfaas.codecs import v2
from tfaas.codecs.v2 import TensorHeader
from tfaas.errors import InvalidArgument
from tfaas.inference.types import PredictRequest, PredictResult, SignatureMetadata
from tfaas.protos import open_inference_grpc_pb2 as pb
from tfaas.servables.servable import SignatureInfo
from tfaas.server_core import ModelSpec

_CONTENTS: Mapping[str, tuple[str, np.dtype]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(np.object_)),
}
"""The ``InferTensorContents`` field of each datatype that has one, and the numpy dtype of its values."""


def parameters(proto: Any) -> dict[str, Any]:
    """A ``map<string, InferParameter>`` as plain values."""
    return {key: getattr(value, value.WhichOneof("parameter_choice") or "string_param") for key, value in proto.items()}


class InferProto:
    """A ``ModelInferRequest``: the service's request for it, and its answer in the form it came in."""

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self.spec: ModelSpec = v2.model_spec(proto.model_name, proto.model_version)
        self._headers = [v2.tensor_header(t.name, t.datatype, t.shape) for t in proto.inputs]
        for tensor in proto.inputs:
            v2.check_tensor_parameters(parameters(tensor.parameters), tensor.name)
        for output in proto.outputs:
            v2.check_tensor_parameters(parameters(output.parameters), output.name)
        self.raw = bool(proto.raw_input_contents)
        if self.raw and len(proto.raw_input_contents) != len(proto.inputs):
            raise InvalidArgument(
                f"raw_input_contents holds {len(proto.raw_input_contents)} tensors for {len(proto.inputs)} inputs"
            )
        if self.raw and any(t.HasField("contents") for t in proto.inputs):
            raise InvalidArgument("An input has contents while raw_input_contents is used: use one or the other")

    def request(self) -> PredictRequest:
        """The service's request: inputs decoded once the signature that runs them is known."""
        proto = self._proto
        outputs = [output.name for output in proto.outputs]
        if len(set(outputs)) != len(outputs):
            raise InvalidArgument("An output is requested more than once")
        signature_name = v2.signature_name(parameters(proto.parameters))
        return PredictRequest(self.spec, self._decode, signature_name, output_filter=outputs)

    def _decode(self, signature: SignatureInfo) -> dict[str, np.ndarray]:
        v2.check_inputs(self._headers, signature, self.spec.name)
        proto = self._proto
        if self.raw:
            return {h.name: v2.from_binary(raw, h) for h, raw in zip(self._headers, proto.raw_input_contents)}
        return {h.name: _from_contents(t.contents, h) for h, t in zip(self._headers, proto.inputs)}

    def response(self, result: PredictResult) -> Any:
        """The ``ModelInferResponse`` of ``result``: raw or typed as the request came (see the module docstring)."""
        names = v2.output_names(result.outputs, [output.name for output in self._proto.outputs])
        arrays = [result.outputs[name] for name in names]
        datatypes = [v2.datatype_of(array, name) for name, array in zip(names, arrays)]
        raw = self.raw or any(datatype not in _CONTENTS for datatype in datatypes)
        response = pb.ModelInferResponse(
            model_name=result.spec.name, model_version=str(result.spec.version), id=self._proto.id
        )
        for name, array, datatype in zip(names, arrays, datatypes):
            tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
            if raw:
                response.raw_output_contents.append(v2.to_binary(array))
            else:
                getattr(tensor.contents, _CONTENTS[datatype][0]).extend(_values(array))
        return response


def _from_contents(contents: Any, header: TensorHeader) -> np.ndarray:
    """An input's array from its typed ``contents``; ``InvalidArgument`` for a datatype that has no typed field,
    or for values out of the datatype's range."""
    field = _CONTENTS.get(header.datatype)
    if field is None:
        raise InvalidArgument(f"Input '{header.name}' is {header.datatype}, which travels in raw_input_contents only")
    values = getattr(contents, field[0])
    if header.datatype == "BYTES":
        return v2.shaped(v2.bytes_array(list(values)), header)
    wide = np.array(values, field[1])
    dtype = v2.DATATYPES[header.datatype][1]
    array = wide.astype(dtype)
    if array.dtype != wide.dtype and not np.array_equal(array, wide):
        raise InvalidArgument(f"Input '{header.name}': a value is out of the range of {header.datatype}")
    return v2.shaped(array, header)


def _values(array: np.ndarray) -> list[Any]:
    """An output's elements, flat, as a typed contents field takes them."""
    if array.dtype == np.object_:
        return [element.encode("utf-8") if isinstance(element, str) else bytes(element) for element in array.ravel()]
    return array.ravel().tolist()


def model_metadata(metadata: SignatureMetadata) -> Any:
    """The ``ModelMetadataResponse`` of a signature: its inputs and outputs, and the versions served."""
    response = pb.ModelMetadataResponse(
        name=metadata.spec.name, versions=[str(v) for v in metadata.versions], platform=v2.PLATFORM
    )
    for info in metadata.signature.inputs.values():
        name, datatype, shape = v2.tensor_metadata(info)
        response.inputs.add(name=name, datatype=datatype, shape=shape)
    for info in metadata.signature.outputs.values():
        name, datatype, shape = v2.tensor_metadata(info)
        response.outputs.add(name=name, datatype=datatype, shape=shape)
    return response


def server_metadata() -> Any:
    """The ``ServerMetadataResponse``."""
    return pb.ServerMetadataResponse(name=v2.SERVER_NAME, version=v2.SERVER_VERSION, extensions=v2.EXTENSIONS)
