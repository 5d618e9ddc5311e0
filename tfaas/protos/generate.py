"""Regenerates the ``*_pb2.py`` modules from their ``.proto`` files with grpcio-tools' bundled protoc.

Run ``python -m tfaas.protos.generate`` after editing a ``.proto`` (grpcio-tools comes with
``pip install -e '.[test]'``). The output depends only on the ``.proto`` and the grpcio-tools
version, so a test regenerates each module and compares it with the committed one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROTOS = ("tfaas.proto", "tf_predict.proto", "open_inference_grpc.proto")
"""TFaaS's wire format, PAI-EAS's TensorFlow processor's, and the Open Inference Protocol's gRPC API."""

OWN_POOL = ("tf_predict.proto",)
"""Protos whose module builds its messages in a descriptor pool of its own instead of protobuf's default one.

NOTE: EAS's messages have no package, so in the default pool their names (``PredictRequest``,
``ArrayProto``, ``ArrayDataType``...) are global: another package-less proto defining them (EAS's own
``tf_predict_pb2``, another SDK's copy) would fail to load beside ours, or ours beside it. The wire
format does not depend on the pool.
"""

_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out_dir: Path, proto: str = "tfaas.proto") -> Path:
    """Write the ``_pb2.py`` module of ``proto`` (a file name in this directory) into ``out_dir``; return its path.

    NOTE: protoc runs in a child process: grpc_tools' protoc crashes in a process that has already
    loaded TensorFlow's own protobuf code.
    """
    command = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={HERE}", f"--python_out={out_dir}"]
    subprocess.run([*command, str(HERE / proto)], check=True)
    module = out_dir / proto.replace(".proto", "_pb2.py")
    if proto in OWN_POOL:
        text = module.read_text()
        if text.count(_DEFAULT_POOL) != 1:
            raise RuntimeError(f"protoc's {module.name} no longer adds its file to the default pool as expected")
        module.write_text(text.replace(_DEFAULT_POOL, _PRIVATE_POOL))
    return module


if __name__ == "__main__":
    for name in PROTOS:
        print(generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE, name))
