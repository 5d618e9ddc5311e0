"""tfaas as KServe runs it: the image's entrypoint (``docker/entrypoint.sh``) run outside Docker with exactly the
arguments of the ``ServingRuntime`` in ``deploy/kserve/servingruntime.yaml`` (KServe's arguments for TF
Serving's runtime) and its environment, serving the model on 8080 (REST: TF Serving's ``/v1`` and the Open
Inference Protocol's ``/v2``) and 9000 (gRPC: TF Serving's services and ``inference.GRPCInferenceService``).

The ports are KServe's, so they are fixed: the test takes a lock that every run of it on this machine takes
(two runs wait for each other), and checks that nothing else listens on 8080 or 9000 before it starts the
server (tfaas's master would refuse to start on a taken port; the check says which port, and why it
matters). Both are bound on 127.0.0.1 only (the test launcher's ``TFAAS_HOST``; KServe gives no host).
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.e2e.conftest import install_version
from tests.e2e.server import REPO, Launcher, ServerProcess, wait_for
from tfaas.protos import open_inference_grpc_pb2 as v2
from tfaas.server.listeners import check_port_free

pytestmark = pytest.mark.e2e

RUNTIME = REPO / "deploy" / "kserve" / "servingruntime.yaml"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
MODEL = "flowers"
"""The InferenceService's name, which KServe puts in ``{{.Name}}``."""
REST_PORT, GRPC_PORT = 8080, 9000
PORTS_LOCK = Path(tempfile.gettempdir()) / "tfaas-tests-kserve-ports.lock"
PORTS_WAIT_SECONDS = 60


def runtime_container() -> dict[str, Any]:
    (container,) = yaml.safe_load(RUNTIME.read_text())["spec"]["containers"]
    return container


def kserve_arguments(model_dir: Path) -> list[str]:
    """The runtime's arguments as KServe gives them: ``{{.Name}}`` the InferenceService's name, the storage
    initializer's ``/mnt/models`` here ``model_dir``."""
    return [
        arg.replace("{{.Name}}", MODEL).replace("/mnt/models", str(model_dir)) for arg in runtime_container()["args"]
    ]


def ports_free() -> bool:
    try:
        for port in (REST_PORT, GRPC_PORT):
            check_port_free("127.0.0.1", port)
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="module")
def kserve_ports() -> Iterator[None]:
    """8080 and 9000, free, for this test alone on this machine."""
    with open(PORTS_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            wait_for(ports_free, PORTS_WAIT_SECONDS, interval=0.5)
        except AssertionError:
            raise AssertionError(
                f"Port {REST_PORT} or {GRPC_PORT} has been taken for {PORTS_WAIT_SECONDS} s by a process other than"
                " this test: KServe's arguments fix them, so this test needs them free (`ss -ltnp` names the holder)"
            ) from None
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory, half_plus, kserve_ports) -> Iterator[ServerProcess]:
    model_dir = tmp_path_factory.mktemp("mnt") / "models"
    install_version(half_plus(2), model_dir, 1)
    env = {item["name"]: item["value"] for item in runtime_container().get("env", [])}
    env |= {
        # NOTE: the image has tfaas on PATH; here, the one installed beside this interpreter, running this
        # checkout's code.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
    }
    launcher = Launcher(tmp_path_factory)
    try:
        server = launcher.start(
            *kserve_arguments(model_dir), command=[str(ENTRYPOINT)], env=env, ports=(REST_PORT, GRPC_PORT)
        )
        server.wait_available(MODEL, 1)
        yield server
    finally:
        launcher.close()


def test_the_runtime_passes_exactly_kserves_arguments_for_tf_serving(tmp_path):
    assert kserve_arguments(tmp_path) == [
        f"--model_name={MODEL}",
        "--port=9000",
        "--rest_api_port=8080",
        f"--model_base_path={tmp_path}",
        "--rest_api_timeout_in_ms=60000",
    ]


def test_rest_on_8080_serves_tf_servings_api_and_the_open_inference_protocol(server):
    assert server.url == "http://127.0.0.1:8080"
    assert server.get("/readyz").status_code == 200 and server.get("/v2/health/ready").json() == {"ready": True}
    assert server.post(f"/v1/models/{MODEL}:predict", json={"instances": [[1.0]]}).json() == {"predictions": [[2.5]]}
    assert server.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    answer = server.post(f"/v2/models/{MODEL}/infer", json=body).json()
    assert answer["model_version"] == "1" and answer["outputs"][0]["data"] == [2.5]


def test_grpc_on_9000_serves_tf_servings_api_and_the_open_inference_protocol(server):
    x = np.array([[1.0]], np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    infer = v2.ModelInferRequest(model_name=MODEL, raw_input_contents=[x.tobytes()])
    infer.inputs.add(name="x", datatype="FP32", shape=[1, 1])
    with grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}") as channel:
        predicted = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        model_infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=v2.ModelInferRequest.SerializeToString,
            response_deserializer=v2.ModelInferResponse.FromString,
        )
        inferred = model_infer(infer, timeout=30)
    assert tf.make_ndarray(predicted.outputs["y"]).tolist() == [[2.5]]
    assert np.frombuffer(inferred.raw_output_contents[0], "<f4").tolist() == [2.5]


def test_the_repository_refuses_loads_and_unloads_without_model_management(server):
    for call in ("load", "unload"):
        response = server.post(f"/v2/repository/models/{MODEL}/{call}")
        assert response.status_code == 403 and "--enable_model_management" in response.json()["error"]
    index = server.post("/v2/repository/index").json()
    assert index == [{"name": MODEL, "version": "1", "state": "READY", "reason": ""}]
