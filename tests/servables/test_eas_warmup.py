"""PAI-EAS's warm-up file: ``assets.extra/warm_up.bin``, one serialized EAS PredictRequest as EAS's SDKs
write it, replayed inside the version's load; a broken one fails the load, naming the file.

The model is ``test_warmup``'s counting model: every predict call adds one to a variable, so a test can
tell how many times the warm-up request ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.servables.test_warmup import calls, predict_log, write_counting_model, write_warmup
from tfaas.core.servable_id import ServableId
from tfaas.errors import InvalidArgument
from tfaas.metrics import Metrics
from tfaas.protos import tf_predict_pb2 as eas
from tfaas.servables.eas_warmup import EAS_WARMUP_FILE
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable
from tfaas.servables.warmup import WarmupOptions


@pytest.fixture(scope="module")
def counting_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eas_warmup") / "counting"
    write_counting_model(path)
    return path


@pytest.fixture
def version(counting_model: Path, tmp_path: Path) -> Path:
    """A fresh copy of the counting model as version 1 (its counter at 0)."""
    return Path(shutil.copytree(counting_model, tmp_path / "counting" / "1"))


def load(version: Path, iterations: int = 1) -> SavedModelServable:
    options = WarmupOptions(iterations, Metrics(CollectorRegistry()))
    return SavedModelLoader(ServableId("counting", 1), str(version), warmup=options).load()


def eas_request(rows: int = 2, values: int | None = None, **fields) -> eas.PredictRequest:
    """What ``TFRequest(signature).add_feed("x", [rows, 1], DT_FLOAT, [1.0] * rows)`` builds."""
    request = eas.PredictRequest(**fields)
    request.inputs["x"].dtype = eas.DT_FLOAT
    request.inputs["x"].array_shape.dim.extend([rows, 1])
    request.inputs["x"].float_val.extend([1.0] * (rows if values is None else values))
    return request


def write_eas_warmup(version: Path, data: bytes) -> Path:
    path = version / EAS_WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_warm_up_request_is_replayed_inside_the_load(version):
    write_eas_warmup(version, eas_request(signature_name="serving_default", output_filter=["y"]).SerializeToString())
    assert calls(load(version, iterations=3)) == 3


def test_an_empty_signature_name_runs_the_default_signature(version):
    write_eas_warmup(version, eas_request().SerializeToString())
    assert calls(load(version)) == 1


def test_beside_tf_servings_warmup_file_both_are_replayed(version):
    write_warmup(version, [predict_log(), predict_log()])
    write_eas_warmup(version, eas_request().SerializeToString())
    assert calls(load(version, iterations=2)) == 2 * 2 + 2


@pytest.mark.parametrize(
    "data,message",
    [
        (b"\xff\xff\xff", "The body is not a serialized EAS PredictRequest"),
        (
            eas_request(rows=2, values=3).SerializeToString(),
            "Input x: array_shape [2,1] holds 2 values, but 3 were sent",
        ),
        (eas_request(signature_name="nope").SerializeToString(), 'Serving signature name: "nope" not found'),
        (eas_request(output_filter=["z"]).SerializeToString(), "output_filter names z, not outputs of serving_default"),
        (eas.PredictRequest().SerializeToString(), "input size does not match signature: 0!=1"),
    ],
    ids=["not a PredictRequest", "bad shape", "unknown signature", "unknown output", "no inputs"],
)
def test_a_broken_warm_up_file_fails_the_load_naming_it(version, data, message):
    path = write_eas_warmup(version, data)
    with pytest.raises(InvalidArgument) as raised:
        load(version)
    assert raised.value.message.startswith(f"EAS warm-up request {path} failed: ")
    assert message in raised.value.message
