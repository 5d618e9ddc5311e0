"""The PAI-EAS tests' models: seed 004's ``mnist_saved_model_example``, rebuilt with TensorFlow, and one of
every dtype EAS carries.

EAS's TensorFlow processor document calls a SavedModel exported by TF Serving's ``mnist_saved_model.py``
(a TF1 graph export): ``predict_images`` (``images`` float [-1,784] → ``scores`` float [-1,10]) and a default
signature that classifies serialized tf.Examples. Here its weights are fixed instead of trained:
``scores = softmax(images @ W)`` with ``W[i, j] = 0.01`` where ``i % 10 == j`` (else 0), so a test can compute
the answer.

The dtypes model's ``serving_default`` returns each of its inputs unchanged, one input per dtype EAS's SDK
sends (``upper`` also uppercases ``s``); ``halves`` does the same for the 16-bit floats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.tfserving_models import _save_tf1, _signature

ECHO_DTYPES = {
    "f32": "float32",
    "f64": "float64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "u16": "uint16",
    "b": "bool",
    "s": "string",
    "q8": "qint8",
}
"""The inputs (and outputs) of the dtypes model's ``serving_default``, by alias: TensorFlow's dtype names,
one per dtype EAS's SDK sends."""

HALVES_DTYPES = {"h": "float16", "bf": "bfloat16"}
"""The inputs (and outputs) of ``halves``: the 16-bit floats, which EAS's SDK cannot send."""


def weights() -> np.ndarray:
    return np.array([[0.01 if i % 10 == j else 0.0 for j in range(10)] for i in range(784)], np.float32)


def scores(images: np.ndarray) -> np.ndarray:
    """What ``predict_images`` answers for ``images`` [n, 784]."""
    logits = np.asarray(images, np.float32) @ weights()
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def write_mnist_like(version_dir: Path) -> None:
    """Write the mnist model (a TF1 export, as TF Serving's mnist example writes it) to ``version_dir``."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        w = v1.Variable(weights(), name="w")
        images = v1.placeholder(tf.float32, [None, 784], name="x")
        y = tf.nn.softmax(tf.matmul(images, w), name="y")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = v1.parse_example(serialized, {"x": v1.FixedLenFeature([784], tf.float32)})["x"]
        example_scores = tf.nn.softmax(tf.matmul(parsed, w))
        classes = tf.tile(tf.constant([[str(i) for i in range(10)]]), [tf.shape(parsed)[0], 1])
        signatures = {
            "predict_images": _signature("predict", {"images": images}, {"scores": y}),
            "serving_default": _signature(
                "classify", {"inputs": serialized}, {"classes": classes, "scores": example_scores}
            ),
        }
        _save_tf1(version_dir, graph, signatures)


def write_dtypes_model(version_dir: Path) -> None:
    """Write the dtypes model (a TF1 export) to ``version_dir``."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.Variable(0, name="version")  # NOTE: a SavedModel without variables looks half-copied to the source
        echo, halves = (
            {alias: v1.placeholder(getattr(tf, dtype), [None], name=alias) for alias, dtype in dtypes.items()}
            for dtypes in (ECHO_DTYPES, HALVES_DTYPES)
        )
        echoed = {alias: tf.identity(tensor) for alias, tensor in echo.items()}
        echoed["upper"] = tf.strings.upper(echo["s"])
        signatures = {
            "serving_default": _signature("predict", echo, echoed),
            "halves": _signature("predict", halves, {alias: tf.identity(tensor) for alias, tensor in halves.items()}),
        }
        _save_tf1(version_dir, graph, signatures)
