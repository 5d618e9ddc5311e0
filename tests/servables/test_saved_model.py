"""SavedModelLoader and SavedModelServable against TF Serving's test models (built, and its own where present)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.servables.conftest import load_model, model_path
from tests.tfserving_models import TfServingTestdata
from tfaas.core.servable_id import ServableId
from tfaas.errors import Internal, InvalidArgument, NotFound, Unavailable
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable, read_signatures


def _floats(*values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


# --- answers ---------------------------------------------------------------------------------------


def test_half_plus_two_tf1(half_plus_two: SavedModelServable) -> None:
    outputs = half_plus_two.run("serving_default", {"x": _floats([2.0])})
    assert outputs["y"].tolist() == [[3.0]]
    assert outputs["y"].dtype == np.float32


def test_tf1_inputs_take_any_shape_like_tf_serving(half_plus_two: SavedModelServable) -> None:
    # TF Serving's documented example feeds [3] to x declared [-1,1] and answers [3.0, 3.5, 4.0].
    assert half_plus_two.run("serving_default", {"x": _floats(2.0, 3.0, 4.0)})["y"].tolist() == [
        3.0,
        3.5,
        4.0,
    ]


def test_half_plus_two_tf2(half_plus_two_tf2: SavedModelServable) -> None:
    assert half_plus_two_tf2.run("serving_default", {"x": _floats(2.0)})["y"].tolist() == [3.0]


def test_half_plus_three(half_plus_three: SavedModelServable) -> None:
    outputs = half_plus_three.run("serving_default", {"x": _floats(1.0, 2.0, 5.0)})
    assert outputs["y"].tolist() == [3.5, 4.0, 5.5]


def test_regress_x2_to_y3(half_plus_two: SavedModelServable) -> None:
    assert half_plus_two.run("regress_x2_to_y3", {"inputs": _floats([1.0])})["outputs"].tolist() == [[3.5]]


def _examples(*xs: float) -> np.ndarray:
    """Serialized ``tf.Example`` protos with float feature ``x``, as the classify/regress signatures take."""
    from tensorflow.core.example import example_pb2

    serialized = []
    for x in xs:
        example = example_pb2.Example()
        example.features.feature["x"].float_list.value.append(x)
        serialized.append(example.SerializeToString())
    return np.array(serialized, dtype=object)


def test_string_input_takes_serialized_examples(half_plus_two: SavedModelServable) -> None:
    assert half_plus_two.run("regress_x_to_y", {"inputs": _examples(2.0)})["outputs"].tolist() == [[3.0]]


def test_mistyped_input_is_fed_as_its_placeholder(half_plus_three: SavedModelServable) -> None:
    # Declared DT_FLOAT, but tf_example:0 is a DT_STRING Placeholder: TF Serving feeds by tensor name.
    assert half_plus_three.signatures["tensorflow/serving/regress"].inputs["inputs"].dtype == "DT_FLOAT"
    outputs = half_plus_three.run("tensorflow/serving/regress", {"inputs": _examples(1.0, 2.0)})
    assert outputs["outputs"].tolist() == [[3.5], [4.0]]
    with pytest.raises(InvalidArgument, match="Input inputs has dtype float32 but the signature expects DT_STRING"):
        half_plus_three.run("tensorflow/serving/regress", {"inputs": _floats(1.0)})


def test_inputs_are_cast_to_the_signature_dtype(half_plus_two: SavedModelServable) -> None:
    assert half_plus_two.run("serving_default", {"x": np.array([[2]], dtype=np.int64)})["y"].tolist() == [[3.0]]


def test_counter_keeps_state_across_calls(counter: SavedModelServable) -> None:
    def value(signature: str, **inputs: np.ndarray) -> float:
        output = counter.run(signature, inputs)["output"]
        assert isinstance(output, np.ndarray) and output.shape == ()
        return float(output)

    assert value("reset_counter") == 0.0
    assert value("incr_counter") == 1.0
    assert value("incr_counter") == 2.0
    assert value("incr_counter_by", delta=np.array(3.0)) == 5.0
    assert value("get_counter") == 5.0
    assert value("reset_counter") == 0.0


def test_concurrent_runs(half_plus_two: SavedModelServable) -> None:
    failures: list[str] = []

    def worker(seed: int) -> None:
        for step in range(50):
            x = float(seed * 100 + step)
            y = half_plus_two.run("serving_default", {"x": _floats([x])})["y"]
            if y.tolist() != [[0.5 * x + 2.0]]:
                failures.append(f"{x} -> {y}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- signatures ------------------------------------------------------------------------------------


def test_tf1_signatures(half_plus_two: SavedModelServable) -> None:
    signatures = half_plus_two.signatures
    assert sorted(signatures) == [
        "classify_x_to_y",
        "regress_x2_to_y3",
        "regress_x_to_y",
        "regress_x_to_y2",
        "serving_default",
    ]
    default = signatures["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    x, y = default.inputs["x"], default.outputs["y"]
    assert (x.tensor_name, x.dtype, x.shape) == ("x:0", "DT_FLOAT", (None, 1))
    assert (y.tensor_name, y.dtype, y.shape) == ("y:0", "DT_FLOAT", (None, 1))
    classify = signatures["classify_x_to_y"]
    assert classify.method_name == "tensorflow/serving/classify"
    assert (classify.inputs["inputs"].dtype, classify.inputs["inputs"].shape) == ("DT_STRING", None)
    assert list(classify.outputs) == ["scores"]
    assert signatures["regress_x_to_y"].method_name == "tensorflow/serving/regress"


def test_tf2_signatures_skip_internal_keys(half_plus_two_tf2: SavedModelServable) -> None:
    signatures = half_plus_two_tf2.signatures
    assert "__saved_model_init_op" not in signatures
    assert {signature.method_name for signature in signatures.values()} == {"tensorflow/serving/predict"}
    x = signatures["serving_default"].inputs["x"]
    assert (x.tensor_name, x.dtype, x.shape) == ("serving_default_x:0", "DT_FLOAT", (1,))
    assert signatures["classify_x_to_y"].inputs["inputs"].shape == (None,)


def test_legacy_signatures_are_reported_as_declared(
    half_plus_three: SavedModelServable, counter: SavedModelServable
) -> None:
    assert half_plus_three.signatures["serving_default"].inputs["x"].shape is None
    assert counter.signatures["incr_counter"].outputs["output"].dtype == "DT_FLOAT_REF"
    assert counter.signatures["incr_counter_by"].inputs["delta"].dtype == "DT_FLOAT"


def test_read_signatures_without_loading(tfserving_testdata: TfServingTestdata) -> None:
    path = model_path(tfserving_testdata, "saved_model_half_plus_two_cpu")
    assert read_signatures(str(path))["serving_default"].inputs["x"].shape == (None, 1)


def test_id_and_path(half_plus_two: SavedModelServable, tfserving_testdata: TfServingTestdata) -> None:
    assert half_plus_two.id == ServableId("saved_model_half_plus_two_cpu", 123)
    assert half_plus_two.path == str(model_path(tfserving_testdata, "saved_model_half_plus_two_cpu"))


# --- request errors --------------------------------------------------------------------------------


def test_unknown_signature(half_plus_two: SavedModelServable) -> None:
    with pytest.raises(InvalidArgument) as raised:
        half_plus_two.run("foo", {"x": _floats([1.0])})
    assert raised.value.message == 'Serving signature name: "foo" not found in signature def'


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "Missing but required: {x}."),
        ({"x": _floats([1.0]), "z": _floats([1.0])}, "Sent extra: {z}."),
        ({"z": _floats([1.0])}, "len({z}) != len({x}). Sent extra: {z}. Missing but required: {x}."),
    ],
)
def test_input_aliases_must_match(half_plus_two: SavedModelServable, inputs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match="input size does not match signature") as raised:
        half_plus_two.run("serving_default", inputs)
    assert message in raised.value.message


@pytest.mark.parametrize(
    "value", [np.array([["a"]]), np.array([[1.5]], dtype=object), np.array([[1.5]], dtype=np.complex64)]
)
def test_input_of_the_wrong_kind(half_plus_two: SavedModelServable, value: np.ndarray) -> None:
    with pytest.raises(InvalidArgument, match="Input x has dtype .* but the signature expects DT_FLOAT"):
        half_plus_two.run("serving_default", {"x": value})


def test_numbers_for_a_string_input(half_plus_two: SavedModelServable) -> None:
    with pytest.raises(InvalidArgument, match="signature expects DT_STRING"):
        half_plus_two.run("classify_x_to_y", {"inputs": _floats(1.0)})


def test_runtime_errors_caused_by_inputs(counter: SavedModelServable, half_plus_two: SavedModelServable) -> None:
    with pytest.raises(InvalidArgument) as raised:
        counter.run("incr_counter_by", {"delta": _floats(1.0, 2.0)})
    assert raised.value.message.startswith("Parameters and update must be the same size")
    assert "Detected at node" not in raised.value.message and "[Op:" not in raised.value.message
    with pytest.raises(InvalidArgument, match="Could not parse example input"):
        half_plus_two.run("classify_x_to_y", {"inputs": np.array([b"garbage"], dtype=object)})


def test_tf2_inputs_must_fit_the_declared_shape(half_plus_two_tf2: SavedModelServable) -> None:
    with pytest.raises(InvalidArgument) as raised:
        half_plus_two_tf2.run("serving_default", {"x": _floats(2.0, 3.0)})
    assert raised.value.message == "Input x has shape [2] but the signature expects [1]"
    with pytest.raises(InvalidArgument, match=r"Input x has shape \[1,1\] but the signature expects \[1\]"):
        half_plus_two_tf2.run("serving_default", {"x": _floats([2.0])})
    # Unknown dims take any size.
    outputs = half_plus_two_tf2.run("regress_x_to_y", {"inputs": _examples(2.0, 4.0)})
    assert outputs["outputs"].tolist() == [[3.0], [4.0]]


# --- load errors and lifecycle --------------------------------------------------------------------


def test_bad_half_plus_two_is_not_a_saved_model(tfserving_testdata: TfServingTestdata) -> None:
    path = model_path(tfserving_testdata, "bad_half_plus_two")
    with pytest.raises(NotFound, match=f"No saved_model.pb or saved_model.pbtxt in {path}"):
        load_model(path)


def test_garbage_saved_model_pb(tmp_path: Path) -> None:
    version = tmp_path / "1"
    version.mkdir()
    (version / "saved_model.pb").write_bytes(np.random.default_rng(7).bytes(256))
    with pytest.raises(Internal, match=f"SavedModel at {version} could not be read"):
        load_model(version)


def test_wrong_tags(tfserving_testdata: TfServingTestdata) -> None:
    path = model_path(tfserving_testdata, "saved_model_half_plus_two_cpu")
    loader = SavedModelLoader(ServableId("m", 123), str(path), tags=("serve", "gpu"))
    expected = r"matching supplied tags: \{ gpu serve \}.*Available tag sets: \[\{ serve \}\]"
    with pytest.raises(NotFound, match=expected):
        loader.load()


def test_saved_model_pbtxt(tmp_path: Path, tfserving_testdata: TfServingTestdata) -> None:
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    tf2 = model_path(tfserving_testdata, "saved_model_half_plus_two_tf2_cpu")
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((tf2 / "saved_model.pb").read_bytes())
    version = tmp_path / "7"
    version.mkdir()
    (version / "saved_model.pbtxt").write_text(text_format.MessageToString(saved_model))
    os.symlink(tf2 / "variables", version / "variables")
    assert load_model(version).run("serving_default", {"x": _floats(4.0)})["y"].tolist() == [4.0]


def test_unload_releases_the_servable(tfserving_testdata: TfServingTestdata) -> None:
    loader = SavedModelLoader(
        ServableId("m", 123), str(model_path(tfserving_testdata, "saved_model_half_plus_two_tf2_cpu"))
    )
    servable = loader.load()
    loader.unload()
    with pytest.raises(Unavailable, match="has been unloaded"):
        servable.run("serving_default", {"x": _floats(1.0)})


def test_importing_does_not_import_tensorflow() -> None:
    code = "import sys, tfaas.servables.saved_model; sys.exit('tensorflow' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
