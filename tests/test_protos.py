"""The committed ``tfaas_pb2.py`` is exactly what ``tfaas.proto`` generates, and speaks TFaaS's wire format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfaas.protos import tfaas_pb2

HERE = Path(tfaas_pb2.__file__).parent


def test_generated_module_matches_the_proto(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with pip install -e '.[test]'")
    from tfaas.protos.generate import generate

    assert generate(tmp_path).read_bytes() == (HERE / "tfaas_pb2.py").read_bytes()


def test_wire_format_matches_tfaas():
    # TFaaS's documented answer for one output value 0.5 is these 7 bytes.
    answer = tfaas_pb2.Predictions(prediction=[tfaas_pb2.Class(probability=0.5)])
    assert answer.SerializeToString() == bytes.fromhex("0a05150000003f")
    row = tfaas_pb2.Row(key=["attr1"], value=[1.5], model="m")
    assert tfaas_pb2.Row.FromString(row.SerializeToString()) == row
    assert [f.number for f in tfaas_pb2.Row.DESCRIPTOR.fields] == [1, 2, 3]
    assert tfaas_pb2.DESCRIPTOR.package == "tfaaspb"
