"""The committed ``*_pb2.py`` modules are exactly what their ``.proto`` files generate, and speak TFaaS's,
PAI-EAS's and the Open Inference Protocol's wire formats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfaas.protos import open_inference_grpc_pb2 as v2
from tfaas.protos import tf_predict_pb2, tfaas_pb2

HERE = Path(tfaas_pb2.__file__).parent


@pytest.mark.parametrize("proto", ["tfaas.proto", "tf_predict.proto", "open_inference_grpc.proto"])
def test_generated_module_matches_the_proto(tmp_path, proto):
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with pip install -e '.[test]'")
    from tfaas.protos.generate import generate

    module = generate(tmp_path, proto)
    assert module.read_bytes() == (HERE / module.name).read_bytes()


def test_wire_format_matches_tfaas():
    # TFaaS's documented answer for one output value 0.5 is these 7 bytes.
    answer = tfaas_pb2.Predictions(prediction=[tfaas_pb2.Class(probability=0.5)])
    assert answer.SerializeToString() == bytes.fromhex("0a05150000003f")
    row = tfaas_pb2.Row(key=["attr1"], value=[1.5], model="m")
    assert tfaas_pb2.Row.FromString(row.SerializeToString()) == row
    assert [f.number for f in tfaas_pb2.Row.DESCRIPTOR.fields] == [1, 2, 3]
    assert tfaas_pb2.DESCRIPTOR.package == "tfaaspb"


def test_wire_format_matches_eas():
    # The SDK's add_feed("x", [1], DT_FLOAT, [0.5]) on signature "s", fetching "y", is these bytes:
    # signature_name (1), inputs (2: key "x", ArrayProto dtype 1, array_shape {dim: [1]} packed, float_val
    # packed), output_filter (3).
    request = tf_predict_pb2.PredictRequest(signature_name="s", output_filter=["y"])
    request.inputs["x"].dtype = tf_predict_pb2.DT_FLOAT
    request.inputs["x"].array_shape.dim.append(1)
    request.inputs["x"].float_val.append(0.5)
    assert request.SerializeToString() == bytes.fromhex("0a017312120a0178120d080112030a01011a040000003f1a0179")
    assert tf_predict_pb2.DESCRIPTOR.package == ""
    numbers = {f.name: f.number for f in tf_predict_pb2.ArrayProto.DESCRIPTOR.fields}
    assert numbers == {
        "dtype": 1,
        "array_shape": 2,
        "float_val": 3,
        "double_val": 4,
        "int_val": 5,
        "string_val": 6,
        "int64_val": 7,
        "bool_val": 8,
    }
    # NOTE: the enum's numbers are TensorFlow's DataType numbers.
    assert tf_predict_pb2.ArrayDataType.items()[-1] == ("DT_VARIANT", 21)
    assert tf_predict_pb2.ArrayDataType.Value("DT_HALF") == 19


def test_eas_messages_load_beside_tf_serving_and_another_package_less_copy(tmp_path):
    """EAS's package-less names are built in a pool of their own: a default-pool copy of the same proto (as
    EAS's own ``tf_predict_pb2`` is) and TF Serving's ``PredictRequest`` load in the same process."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with pip install -e '.[test]'")
    command = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={HERE}", f"--python_out={tmp_path}"]
    subprocess.run([*command, str(HERE / "tf_predict.proto")], check=True)
    code = (
        "import tf_predict_pb2 as theirs;"
        "from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc;"
        "from tfaas.protos import tf_predict_pb2 as ours, tfaas_pb2;"
        "r = ours.PredictRequest(signature_name='s'); r.inputs['x'].int64_val.append(7);"
        "t = theirs.PredictRequest.FromString(r.SerializeToString());"
        "print(t.signature_name, list(t.inputs['x'].int64_val), predict_pb2.PredictRequest.DESCRIPTOR.full_name)"
    )
    env_path = f"{tmp_path}:{HERE.parents[1]}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["s", "[7]", "tensorflow.serving.PredictRequest"]


def test_wire_format_matches_the_open_inference_protocol():
    """Package, service and the field numbers clients (KServe's, Triton's) put on the wire."""
    assert v2.DESCRIPTOR.package == "inference"
    service = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert [m.name for m in service.methods] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    numbers = {
        message: {f.name: f.number for f in getattr(v2, message).DESCRIPTOR.fields}
        for message in ("ModelInferRequest", "ModelInferResponse", "InferTensorContents", "InferParameter")
    }
    assert numbers["ModelInferRequest"] == {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "inputs": 5,
        "outputs": 6,
        "raw_input_contents": 7,
    }
    assert numbers["ModelInferResponse"] == {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "outputs": 5,
        "raw_output_contents": 6,
    }
    assert list(numbers["InferTensorContents"].items()) == [
        ("bool_contents", 1),
        ("int_contents", 2),
        ("int64_contents", 3),
        ("uint_contents", 4),
        ("uint64_contents", 5),
        ("fp32_contents", 6),
        ("fp64_contents", 7),
        ("bytes_contents", 8),
    ]
    assert numbers["InferParameter"] == {
        "bool_param": 1,
        "int64_param": 2,
        "string_param": 3,
        "double_param": 4,
        "uint64_param": 5,
    }
    # NOTE: model_name (1); one FP32 input "x" of shape [1] (5: name 1, datatype 2, shape 3 packed); its 4 raw
    # bytes (7).
    request = v2.ModelInferRequest(model_name="m", raw_input_contents=[bytes(4)])
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    assert request.SerializeToString() == bytes.fromhex("0a016d 2a0c 0a0178 120446503332 1a0101 3a0400000000")
