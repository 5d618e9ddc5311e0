"""Write the project's example SavedModels: ``python -m tfaas.examples OUTDIR``.

- ``OUTDIR/half_plus_two/1`` and ``/2``: ``y = 0.5 * x + 2``, input ``x`` float ``[None, 1]``,
  output ``y`` (two versions with the same math, to watch version switching).
- ``OUTDIR/dense42/1``: TFaaS's benchmark-like dense network, 42 inputs -> 128 -> 128 -> 128 -> 64
  -> 64 -> 1 (relu, sigmoid output), weights from a fixed seed; input ``inputs`` float ``[None, 42]``,
  output ``outputs`` ``[None, 1]``.

Each version is written to a temporary sibling directory with a non-numeric name and renamed into
place, so a server watching OUTDIR never sees half a model; versions that exist are left alone.
TensorFlow is imported only when a model is actually written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from typing import Any, Callable

import numpy as np

DENSE42_LAYERS = (42, 128, 128, 128, 64, 64, 1)
DENSE42_SEED = 42


def build_examples(outdir: str) -> None:
    """Write every example model version under ``outdir`` that is not there yet."""
    for version in (1, 2):
        _write_version(outdir, "half_plus_two", version, _save_half_plus_two)
    _write_version(outdir, "dense42", 1, _save_dense42)


def _write_version(outdir: str, model: str, version: int, save: Callable[[str], None]) -> None:
    """Run ``save`` into a temporary sibling of ``outdir/model/version``, then rename it into place."""
    model_dir = os.path.join(outdir, model)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        return
    os.makedirs(model_dir, exist_ok=True)
    # NOTE: a dot and letters keep the staging name non-numeric, so no version watcher picks it up.
    staging = tempfile.mkdtemp(prefix=f".staging-{version}-", dir=model_dir)
    try:
        save(staging)
        os.rename(staging, final)
    except OSError:
        if not os.path.isdir(final):  # NOTE: another writer winning the rename is fine; anything else is not.
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save_half_plus_two(path: str) -> None:
    """Save ``y = 0.5 * x + 2`` with signature ``serving_default``: ``x`` float [None, 1] -> ``y``."""
    import tensorflow as tf

    module = tf.Module()
    module.a = tf.Variable(0.5, name="a")
    module.b = tf.Variable(2.0, name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def predict(x: Any) -> dict[str, Any]:
        return {"y": module.a * x + module.b}

    module.predict = predict  # NOTE: attaching the function makes the module track (and save) it.
    tf.saved_model.save(module, path, signatures={"serving_default": predict})


def _save_dense42(path: str) -> None:
    """Save the dense42 network with signature ``serving_default``: ``inputs`` [None, 42] -> ``outputs``."""
    save_dense(path, dense42_weights())


def save_dense(path: str, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Save a dense network of ``(weights, biases)`` layers (relu between them, sigmoid output) to ``path``.

    Signature ``serving_default``: ``inputs`` float [None, fan-in of the first layer] -> ``outputs``.
    """
    import tensorflow as tf

    module = tf.Module()
    module.layers = [
        (tf.Variable(weights, name=f"w{index}"), tf.Variable(biases, name=f"b{index}"))
        for index, (weights, biases) in enumerate(layers)
    ]

    @tf.function(input_signature=[tf.TensorSpec([None, layers[0][0].shape[0]], tf.float32, name="inputs")])
    def predict(inputs: Any) -> dict[str, Any]:
        hidden = inputs
        for weights, biases in module.layers[:-1]:
            hidden = tf.nn.relu(tf.matmul(hidden, weights) + biases)
        weights, biases = module.layers[-1]
        return {"outputs": tf.sigmoid(tf.matmul(hidden, weights) + biases)}

    module.predict = predict
    tf.saved_model.save(module, path, signatures={"serving_default": predict})


def dense42_weights() -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weights, biases) of each dense42 layer: Glorot-uniform weights and small biases, seeded."""
    rng = np.random.default_rng(DENSE42_SEED)
    layers = []
    for fan_in, fan_out in zip(DENSE42_LAYERS, DENSE42_LAYERS[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        biases = rng.uniform(-0.1, 0.1, size=fan_out).astype(np.float32)
        layers.append((weights, biases))
    return layers


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m tfaas.examples OUTDIR``."""
    parser = argparse.ArgumentParser(prog="python -m tfaas.examples", description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="directory to write the models into (e.g. examples/models)")
    build_examples(parser.parse_args(argv).outdir)


if __name__ == "__main__":
    main()
