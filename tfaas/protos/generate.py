"""Regenerates ``tfaas_pb2.py`` from ``tfaas.proto`` with grpcio-tools' bundled protoc.

Run ``python -m tfaas.protos.generate`` after editing the ``.proto`` (grpcio-tools comes with
``pip install -e '.[test]'``). The output depends only on the ``.proto`` and the grpcio-tools
version, so a test regenerates it and compares it with the committed module.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def generate(out_dir: Path) -> Path:
    """Write ``tfaas_pb2.py`` for ``tfaas.proto`` into ``out_dir``; return its path.

    NOTE: protoc runs in a child process: grpc_tools' protoc crashes in a process that has already
    loaded TensorFlow's own protobuf code.
    """
    command = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={HERE}", f"--python_out={out_dir}"]
    subprocess.run([*command, str(HERE / "tfaas.proto")], check=True)
    return out_dir / "tfaas_pb2.py"


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
