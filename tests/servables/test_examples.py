"""The example models ``python -m tfaas.examples OUTDIR`` writes, served by SavedModelLoader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfaas.core.servable_id import ServableId
from tfaas.examples import build_examples, dense42_weights
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("examples")
    build_examples(str(path))
    return path


def _load(outdir: Path, model: str, version: int) -> SavedModelServable:
    return SavedModelLoader(ServableId(model, version), str(outdir / model / str(version))).load()


def test_layout(outdir: Path) -> None:
    assert sorted(entry.name for entry in outdir.iterdir()) == ["dense42", "half_plus_two"]
    # No staging directory is left behind next to the versions.
    assert sorted(entry.name for entry in (outdir / "half_plus_two").iterdir()) == ["1", "2"]
    assert sorted(entry.name for entry in (outdir / "dense42").iterdir()) == ["1"]


@pytest.mark.parametrize("version", [1, 2])
def test_half_plus_two(outdir: Path, version: int) -> None:
    servable = _load(outdir, "half_plus_two", version)
    signature = servable.signatures["serving_default"]
    assert (signature.inputs["x"].dtype, signature.inputs["x"].shape) == ("DT_FLOAT", (None, 1))
    assert list(signature.outputs) == ["y"]
    assert servable.run("serving_default", {"x": np.array([[2.0]], dtype=np.float32)})["y"].tolist() == [[3.0]]


def test_dense42(outdir: Path) -> None:
    servable = _load(outdir, "dense42", 1)
    signature = servable.signatures["serving_default"]
    assert (signature.inputs["inputs"].dtype, signature.inputs["inputs"].shape) == ("DT_FLOAT", (None, 42))
    assert signature.outputs["outputs"].shape == (None, 1)
    rows = np.random.default_rng(0).random((1, 42), dtype=np.float32)
    outputs = servable.run("serving_default", {"inputs": rows})["outputs"]
    assert outputs.shape == (1, 1)
    assert 0.0 < float(outputs[0, 0]) < 1.0
    np.testing.assert_allclose(outputs, dense42_in_numpy(rows), rtol=1e-5)


def dense42_in_numpy(rows: np.ndarray) -> np.ndarray:
    """The network the model should hold: relu hidden layers, a sigmoid output, the seeded weights."""
    *hidden_layers, (weights, biases) = dense42_weights()
    for hidden_weights, hidden_biases in hidden_layers:
        rows = np.maximum(rows @ hidden_weights + hidden_biases, 0.0)
    return 1.0 / (1.0 + np.exp(-(rows @ weights + biases)))


def test_existing_versions_are_kept(outdir: Path) -> None:
    saved_model = outdir / "dense42" / "1" / "saved_model.pb"
    before = saved_model.stat().st_mtime_ns
    build_examples(str(outdir))
    assert saved_model.stat().st_mtime_ns == before
