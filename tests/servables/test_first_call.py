"""First-call warm-up on a real SavedModel: signatures without side effects run once on zeros, others never."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tfaas.core.servable_id import ServableId
from tfaas.servables.first_call import side_effect_free, zero_inputs
from tfaas.servables.saved_model import SavedModelLoader
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.servables.warmup import WarmupOptions


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """``read`` (x * v), ``bump`` (v += 1, returns v) and ``echo`` (a string input) over one variable."""
    import tensorflow as tf

    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.v = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def read(self, x):
            return {"y": x * self.v}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def bump(self, x):
            self.v.assign_add(1.0)
            return {"v": tf.fill(tf.shape(x), self.v.read_value())}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def echo(self, s):
            return {"s": tf.strings.upper(s)}

    model = Model()
    path = tmp_path_factory.mktemp("first_call") / "1"
    signatures = {"read": model.read, "bump": model.bump, "echo": model.echo}
    tf.saved_model.save(model, str(path), signatures={k: f.get_concrete_function() for k, f in signatures.items()})
    return path


def load(path: Path, first_call: bool):
    return SavedModelLoader(ServableId("m", 1), str(path), warmup=WarmupOptions(first_call=first_call)).load()


def warmed(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {r.args[0] for r in caplog.records if r.name == "tfaas.warmup" and r.msg.startswith("Warmed signature")}


def test_only_the_side_effect_free_numeric_signature_is_called(model_dir: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tfaas.warmup"):
        servable = load(model_dir, first_call=True)
    assert warmed(caplog) == {"read"}
    bumped = servable.run("bump", {"x": np.zeros(1, np.float32)})["v"]
    assert bumped.tolist() == [2.0], "bump ran once, by this call: the warm-up never touched the variable"
    assert servable.run("read", {"x": np.ones((1, 2), np.float32)})["y"].tolist() == [[2.0, 2.0]]


def test_turned_off_no_signature_is_called(model_dir: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tfaas.warmup"):
        load(model_dir, first_call=False)
    assert warmed(caplog) == set()


def test_side_effects_are_found_in_called_functions() -> None:
    import tensorflow as tf

    v = tf.Variable(0.0)
    inner = tf.function(lambda: v.assign_add(1.0))
    outer = tf.function(lambda x: x + inner())
    pure = tf.function(lambda x: x * v)
    spec = tf.TensorSpec([None], tf.float32)
    assert not side_effect_free(outer.get_concrete_function(spec))
    assert side_effect_free(pure.get_concrete_function(spec))


def test_zeros_take_each_inputs_dtype_and_shape_with_one_for_unknown_dims() -> None:
    def info(*inputs: TensorInfo) -> SignatureInfo:
        return SignatureInfo("s", "tensorflow/serving/predict", {t.alias: t for t in inputs}, {})

    zeros = zero_inputs(info(TensorInfo("a", "a:0", "DT_INT64", (None, 3)), TensorInfo("b", "b:0", "DT_BOOL", ())))
    assert {k: (v.dtype.name, v.shape) for k, v in zeros.items()} == {"a": ("int64", (1, 3)), "b": ("bool", ())}
    assert zero_inputs(info(TensorInfo("s", "s:0", "DT_STRING", (None,)))) is None
    assert zero_inputs(info(TensorInfo("x", "x:0", "DT_FLOAT", None))) is None, "unknown rank"
    assert zero_inputs(info(TensorInfo("x", "x:0", "DT_NOT_A_TYPE", (1,)))) is None
