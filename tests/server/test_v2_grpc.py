"""The Open Inference Protocol's gRPC API (``inference.GRPCInferenceService``) on a real ``grpc.aio`` server in
this process, over a real ServerCore whose loader is the small fake of ``test_v2_rest.py`` (no TensorFlow),
called with the protocol's own messages. tritonclient drives the real server in ``tests/e2e/test_v2_api.py``."""

from __future__ import annotations

import asyncio
import struct
import threading
from typing import Any, Iterator

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.server.test_v2_rest import TimesVersionLoader, write_model
from tfaas.config import ModelConfig, Settings
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.fronts import v2_grpc
from tfaas.inference.service import InferenceService
from tfaas.metrics import Metrics
from tfaas.protos import open_inference_grpc_pb2 as pb
from tfaas.server_core import ServerCore

RPCS = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


class Client:
    """Calls the service's RPCs by name, as a generated stub would."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel

    def __call__(self, rpc: str, **fields: Any) -> Any:
        request_type, response_type = RPCS[rpc]
        call = self._channel.unary_unary(
            f"/inference.GRPCInferenceService/{rpc}",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        return call(request_type(**fields), timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, ServerCore, grpc.Channel]]:
    """The service on a gRPC server of its own loop's thread: ``m`` versions 1 and 2 (label ``stable``)."""
    base = write_model(tmp_path_factory.mktemp("models") / "m", 1, 2)
    model = ModelConfig(
        name="m", base_path=str(base), version_policy=ServableVersionPolicy("all"), version_labels={"stable": 1}
    )
    settings = Settings(
        models=(model,), enable_batching=False, version_settle_seconds=0, file_system_poll_wait_seconds=-1
    )
    core = ServerCore(settings, loader_factory=TimesVersionLoader, metrics=Metrics(CollectorRegistry()))
    core.start()
    assert core.wait_until(lambda: core.available_versions("m") == [2, 1], 5)
    service = InferenceService(core, threads=2)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        v2_grpc.add_to_server(server, service)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Client(channel), core, channel
    asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    service.close()
    core.stop()


@pytest.fixture
def call(served) -> Client:
    return served[0]


def infer_request(raw: bool = True, **fields: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", id="7", **fields)
    x = request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    s = request.inputs.add(name="s", datatype="BYTES", shape=[2])
    if raw:
        request.raw_input_contents.extend(
            [np.array([1.5, -2], "<f4").tobytes(), struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)]
        )
    else:
        x.contents.fp32_contents.extend([1.5, -2])
        s.contents.bytes_contents.extend([b"ab", b""])
    return request


def infer(call: Client, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    return call("ModelInfer", **{f.name: v for f, v in request.ListFields()})


def test_health_and_server_metadata(call):
    assert call("ServerLive").live and call("ServerReady").ready
    metadata = call("ServerMetadata")
    assert (metadata.name, metadata.version) == ("tfaas", "0.1.0")
    assert list(metadata.extensions) == ["binary_tensor_data", "model_repository"]


def test_model_readiness_is_an_answer_not_an_error(call):
    assert call("ModelReady", name="m").ready and call("ModelReady", name="m", version="stable").ready
    assert not call("ModelReady", name="m", version="3").ready
    assert not call("ModelReady", name="nope").ready


def test_model_metadata(call):
    metadata = call("ModelMetadata", name="m", version="1")
    assert (metadata.name, list(metadata.versions), metadata.platform) == ("m", ["2", "1"], "tensorflow_savedmodel")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("s", "BYTES", [-1]),
        ("x", "FP32", [-1, 2]),
    ]
    assert [(t.name, t.datatype) for t in metadata.outputs] == [("upper", "BYTES"), ("y", "FP32")]
    with pytest.raises(grpc.RpcError) as error:
        call("ModelMetadata", name="nope")
    assert error.value.code() is grpc.StatusCode.NOT_FOUND


def test_infer_raw_in_raw_out(call):
    response = infer(call, infer_request())
    assert (response.model_name, response.model_version, response.id) == ("m", "2", "7")
    assert [(t.name, t.datatype, list(t.shape)) for t in response.outputs] == [
        ("upper", "BYTES", [2]),
        ("y", "FP32", [1, 2]),
    ]
    assert not response.outputs[0].HasField("contents")
    assert response.raw_output_contents[0] == struct.pack("<I", 2) + b"AB" + struct.pack("<I", 0)
    assert np.frombuffer(response.raw_output_contents[1], "<f4").tolist() == [3.0, -4.0]


def test_infer_typed_in_typed_out_and_requested_outputs(call):
    request = infer_request(raw=False, model_version="stable")
    request.outputs.add(name="y")
    response = infer(call, request)
    assert response.model_version == "1" and [t.name for t in response.outputs] == ["y"]
    assert list(response.outputs[0].contents.fp32_contents) == [1.5, -2.0] and not response.raw_output_contents


@pytest.mark.parametrize(
    "change,code,message",
    [
        (
            lambda r: r.inputs[0].shape.__setitem__(1, 3),
            "INVALID_ARGUMENT",
            "has shape [-1, 2]; the request sends [1, 3]",
        ),
        (lambda r: setattr(r.inputs[0], "datatype", "FP64"), "INVALID_ARGUMENT", "is FP32; the request sends FP64"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"x"), "INVALID_ARGUMENT", "has 1 bytes of data"),
        (lambda r: r.raw_input_contents.pop(), "INVALID_ARGUMENT", "raw_input_contents holds 1 tensors for 2 inputs"),
        (lambda r: setattr(r, "model_name", "nope"), "NOT_FOUND", "Servable not found for request: Latest(nope)"),
        (lambda r: setattr(r, "model_version", "9"), "NOT_FOUND", "Specific(m, 9)"),
        (lambda r: r.outputs.add(name="z"), "INVALID_ARGUMENT", "output tensor alias not found in signature: z"),
        (
            lambda r: r.parameters["signature_name"].CopyFrom(pb.InferParameter(string_param="x")),
            "INVALID_ARGUMENT",
            '"x" not found',
        ),
        (
            lambda r: r.inputs[0].parameters["shared_memory_region"].CopyFrom(pb.InferParameter(string_param="r")),
            "INVALID_ARGUMENT",
            "shared memory is not supported",
        ),
    ],
)
def test_errors_are_the_hierarchys_status_codes(call, change, code, message):
    request = infer_request()
    change(request)
    with pytest.raises(grpc.RpcError) as error:
        infer(call, request)
    assert error.value.code() is grpc.StatusCode[code] and message in error.value.details()


def test_typed_values_out_of_their_datatypes_range_are_refused(served):
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1, 2])
    request.inputs.add(name="s", datatype="BYTES", shape=[3]).contents.bytes_contents.extend([b"a"])
    with pytest.raises(grpc.RpcError) as error:
        infer(served[0], request)
    assert "Input 's' has 1 elements, but its shape [3] holds 3" in error.value.details()


def test_other_methods_of_the_service_are_unimplemented(served):
    _, _, channel = served
    load = channel.unary_unary("/inference.GRPCInferenceService/RepositoryModelLoad")
    with pytest.raises(grpc.RpcError) as error:
        load(b"", timeout=10)
    assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED and "POST /v2/repository" in error.value.details()


def test_calls_are_counted_with_the_v2_entrypoint(served):
    call, core, _ = served
    infer(call, infer_request())
    text = core.metrics.render().decode()
    assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="V2",model_name="m"}' in text
    assert ':tensorflow:serving:request_latency_count{API="health",entrypoint="V2",model_name=""}' in text
