"""FrozenGraphLoader/FrozenGraphServable on a TF1 frozen graph, and version_loader's dispatch."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.servables.tfaas_models import (
    FROZEN_LABELS,
    frozen_graph_expected,
    write_frozen_graph,
    write_row_model,
)
from tfaas.core.servable_id import ServableId
from tfaas.errors import Internal, InvalidArgument, NotFound, Unavailable
from tfaas.servables.frozen_graph import FrozenGraphLoader, FrozenGraphServable
from tfaas.servables.loaders import UnrecognizedVersionLoader, version_loader
from tfaas.servables.model_params import ModelParams
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable

ROW = [1.0, 2.0, 3.0, 4.0]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository: ``frozen`` (snake_case params), ``camel`` (camelCase params), ``row`` (SavedModel)."""
    repo = tmp_path_factory.mktemp("repo")
    write_frozen_graph(repo / "frozen" / "1")
    write_frozen_graph(repo / "camel" / "1", camel_case=True)
    write_row_model(repo / "row" / "1")
    return repo


@pytest.fixture(scope="module")
def frozen(models: Path) -> FrozenGraphServable:
    return FrozenGraphLoader(ServableId("frozen", 1), str(models / "frozen" / "1")).load()


def _copy(models: Path, name: str, tmp_path: Path) -> Path:
    """A copy of version 1 of ``name`` to change without touching the shared one."""
    return Path(shutil.copytree(models / name / "1", tmp_path / name / "1"))


def _edit_params(version: Path, **changes: object) -> None:
    params = json.loads((version / "params.json").read_text())
    params.update(changes)
    (version / "params.json").write_text(json.dumps({k: v for k, v in params.items() if v is not None}))


# --- the servable ----------------------------------------------------------------------------------


def test_signature(frozen: FrozenGraphServable) -> None:
    (signature,) = frozen.signatures.values()
    assert signature.name == "serving_default"
    assert signature.method_name == "tensorflow/serving/predict"
    (inputs,) = signature.inputs.values()
    (outputs,) = signature.outputs.values()
    assert (inputs.alias, inputs.tensor_name, inputs.dtype, inputs.shape) == (
        "inputs",
        "dense_1_input:0",
        "DT_FLOAT",
        (None, 4),
    )
    assert (outputs.alias, outputs.tensor_name, outputs.dtype, outputs.shape) == (
        "outputs",
        "output_node0:0",
        "DT_FLOAT",
        (None, 1),
    )


def test_run(frozen: FrozenGraphServable) -> None:
    rows = np.array([ROW, [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    outputs = frozen.run("serving_default", {"inputs": rows})
    assert list(outputs) == ["outputs"]
    assert outputs["outputs"].dtype == np.float32
    np.testing.assert_allclose(outputs["outputs"], np.stack([frozen_graph_expected(row) for row in rows]), rtol=1e-6)


def test_run_casts_ints_and_doubles(frozen: FrozenGraphServable) -> None:
    for rows in (np.array([[1, 2, 3, 4]]), np.array([ROW], dtype=np.float64)):
        np.testing.assert_allclose(
            frozen.run("serving_default", {"inputs": rows})["outputs"][0], frozen_graph_expected(ROW)
        )


@pytest.mark.parametrize(
    ("signature", "inputs", "message"),
    [
        ("predict", {"inputs": [ROW]}, 'Serving signature name: "predict" not found'),
        ("serving_default", {"x": [ROW]}, "input size does not match signature"),
        ("serving_default", {"inputs": [ROW], "x": [ROW]}, "Sent extra: {x}"),
        (
            "serving_default",
            {"inputs": [[1.0, 2.0, 3.0]]},
            "Input inputs has shape [1,3] but the signature expects [-1,4]",
        ),
        ("serving_default", {"inputs": ROW}, "Input inputs has shape [4] but the signature expects [-1,4]"),
        (
            "serving_default",
            {"inputs": [["a", "b", "c", "d"]]},
            "Input inputs has dtype <U1 but the signature expects DT_FLOAT",
        ),
    ],
)
def test_bad_inputs(frozen: FrozenGraphServable, signature: str, inputs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        frozen.run(signature, {alias: np.asarray(value) for alias, value in inputs.items()})
    assert message in raised.value.message


def test_params_and_labels(frozen: FrozenGraphServable) -> None:
    assert frozen.params == ModelParams(
        name="frozen",
        model="tf_model.pb",
        labels="labels.txt",
        input_node="dense_1_input",
        output_node="output_node0",
        description="frozen test graph",
    )
    assert frozen.labels == FROZEN_LABELS


def test_camel_case_params(models: Path) -> None:
    servable = FrozenGraphLoader(ServableId("camel", 1), str(models / "camel" / "1")).load()
    try:
        assert servable.params is not None and servable.params.input_node == "dense_1_input"
        np.testing.assert_allclose(
            servable.run("serving_default", {"inputs": np.array([ROW])})["outputs"][0], frozen_graph_expected(ROW)
        )
    finally:
        servable.close()


def test_signature_def_map_json(frozen: FrozenGraphServable) -> None:
    def tensor(name: str, size: str) -> dict:
        shape = {"dim": [{"size": "-1", "name": ""}, {"size": size, "name": ""}], "unknown_rank": False}
        return {"name": name, "dtype": "DT_FLOAT", "tensor_shape": shape}

    assert frozen.signature_def_map_json() == {
        "signature_def": {
            "serving_default": {
                "inputs": {"inputs": tensor("dense_1_input:0", "4")},
                "outputs": {"outputs": tensor("output_node0:0", "1")},
                "method_name": "tensorflow/serving/predict",
                "defaults": {},
            }
        }
    }


def test_concurrent_runs(frozen: FrozenGraphServable) -> None:
    rows = [np.array([[float(i), 1.0, 2.0, 3.0]], dtype=np.float32) for i in range(16)]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(20):
            results[i] = frozen.run("serving_default", {"inputs": rows[i]})["outputs"][0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, row in enumerate(rows):
        np.testing.assert_allclose(results[i], frozen_graph_expected(row[0]), rtol=1e-6)


def test_node_names_with_output_index(models: Path, tmp_path: Path) -> None:
    version = _copy(models, "frozen", tmp_path)
    _edit_params(version, input_node="dense_1_input:0", output_node="output_node0:0")
    servable = FrozenGraphLoader(ServableId("frozen", 1), str(version)).load()
    try:
        np.testing.assert_allclose(
            servable.run("serving_default", {"inputs": np.array([ROW])})["outputs"][0], frozen_graph_expected(ROW)
        )
    finally:
        servable.close()


def test_unload_closes_the_session(models: Path) -> None:
    loader = FrozenGraphLoader(ServableId("frozen", 1), str(models / "frozen" / "1"))
    servable = loader.load()
    loader.unload()
    with pytest.raises(Unavailable):
        servable.run("serving_default", {"inputs": np.array([ROW], dtype=np.float32)})


# --- load errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"input_node": None},
            InvalidArgument,
            'lacks "input_node" (or "inputNode"), which a TFaaS frozen graph needs',
        ),
        (
            {"input_node": None, "output_node": ""},
            InvalidArgument,
            'lacks "input_node" (or "inputNode"), "output_node" (or "outputNode")',
        ),
        ({"model": None}, InvalidArgument, 'lacks "model"'),
        ({"model": "other.pb"}, NotFound, 'names model file "other.pb", which is absent'),
        ({"input_node": "nope"}, InvalidArgument, 'input_node "nope" is not a tensor of the graph'),
        (
            {"output_node": "output_node0:7"},
            InvalidArgument,
            'output_node "output_node0:7" is not a tensor of the graph',
        ),
        ({"img_channels": "three"}, InvalidArgument, 'key "img_channels" must be a non-negative integer'),
    ],
)
def test_load_errors(models: Path, tmp_path: Path, changes: dict, error: type, message: str) -> None:
    version = _copy(models, "frozen", tmp_path)
    _edit_params(version, **changes)
    with pytest.raises(error) as raised:
        FrozenGraphLoader(ServableId("frozen", 1), str(version)).load()
    assert message in raised.value.message
    assert str(version) in raised.value.message


def test_load_without_params_json(models: Path, tmp_path: Path) -> None:
    version = _copy(models, "frozen", tmp_path)
    (version / "params.json").unlink()
    with pytest.raises(NotFound, match="No params.json in"):
        FrozenGraphLoader(ServableId("frozen", 1), str(version)).load()


def test_load_garbage_graph(models: Path, tmp_path: Path) -> None:
    version = _copy(models, "frozen", tmp_path)
    (version / "tf_model.pb").write_bytes(b"\xff\xff\xff not a graph")
    with pytest.raises(Internal, match="could not be read"):
        FrozenGraphLoader(ServableId("frozen", 1), str(version)).load()


# --- version_loader --------------------------------------------------------------------------------


def test_version_loader_dispatch(models: Path) -> None:
    assert isinstance(version_loader(ServableId("frozen", 1), str(models / "frozen" / "1")), FrozenGraphLoader)
    assert isinstance(version_loader(ServableId("camel", 1), str(models / "camel" / "1")), FrozenGraphLoader)
    assert isinstance(version_loader(ServableId("row", 1), str(models / "row" / "1")), SavedModelLoader)


def test_saved_model_params_and_labels(models: Path, tmp_path: Path) -> None:
    loader = version_loader(ServableId("row", 1), str(models / "row" / "1"))
    servable = loader.load()
    try:
        assert isinstance(servable, SavedModelServable)
        assert servable.params == ModelParams(name="row", model="saved_model.pb")
        assert servable.labels == []
    finally:
        loader.unload()
    version = _copy(models, "row", tmp_path)
    (version / "params.json").unlink()
    servable = SavedModelLoader(ServableId("row", 1), str(version)).load()
    assert (servable.params, servable.labels) == (None, [])
    servable.close()


def test_saved_model_with_bad_params_json_fails_to_load(models: Path, tmp_path: Path) -> None:
    version = _copy(models, "row", tmp_path)
    (version / "params.json").write_text('{"img_channels": "x"}')
    with pytest.raises(InvalidArgument, match='params.json: key "img_channels"'):
        version_loader(ServableId("row", 1), str(version)).load()


def test_version_loader_unrecognized(tmp_path: Path) -> None:
    version = tmp_path / "model" / "1"
    (version / "variables").mkdir(parents=True)
    (version / "notes.txt").write_text("hello")
    loader = version_loader(ServableId("model", 1), str(version))
    assert isinstance(loader, UnrecognizedVersionLoader)
    with pytest.raises(NotFound) as raised:
        loader.load()
    assert raised.value.message == (
        f"{version} is not a SavedModel or TFaaS frozen graph: found notes.txt, variables/ (no saved_model.pb, no params.json)"
    )
    loader.unload()  # nothing loaded, nothing to do


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"name": "model"}, NotFound, 'found params.json (params.json names no "model" file)'),
        (
            {"model": "tf_model.pb"},
            NotFound,
            'found params.json (params.json names model file "tf_model.pb", which is absent)',
        ),
        ("[]", InvalidArgument, "found params.json; Invalid "),
    ],
)
def test_version_loader_params_without_model(tmp_path: Path, params: object, error: type, message: str) -> None:
    (tmp_path / "params.json").write_text(params if isinstance(params, str) else json.dumps(params))
    with pytest.raises(error) as raised:
        version_loader(ServableId("model", 1), str(tmp_path)).load()
    assert message in raised.value.message


def test_version_loader_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="cannot be read"):
        version_loader(ServableId("model", 1), str(tmp_path / "absent")).load()


def test_unrecognized_loader_retries_once_the_model_is_there(models: Path, tmp_path: Path) -> None:
    version = tmp_path / "frozen" / "1"
    version.mkdir(parents=True)
    loader = version_loader(ServableId("frozen", 1), str(version))
    with pytest.raises(NotFound):
        loader.load()
    for entry in (models / "frozen" / "1").iterdir():
        shutil.copy(entry, version / entry.name)
    servable = loader.load()
    assert isinstance(servable, FrozenGraphServable)
    loader.unload()
    with pytest.raises(Unavailable):
        servable.run("serving_default", {"inputs": np.array([ROW], dtype=np.float32)})
