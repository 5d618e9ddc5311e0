"""Export the example models in TF1 format for Simple TensorFlow Serving: ``python perf/peers/export_tf1.py DIR``.

STS 0.8.2 answers 500 for SavedModels written by TF2's ``tf.saved_model.save``, so the same models are
built here as TF1 graphs and saved with ``tf.compat.v1.saved_model.Builder``, with the signature
``serving_default`` and the input and output names of ``tfaas.examples``:

- ``DIR/dense42/1``: the weights of ``tfaas.examples.dense42_weights()``, ``inputs`` [None, 42] -> ``outputs``;
- ``DIR/half_plus_two/1``: ``y = 0.5 * x + 2``, ``x`` [None, 1] -> ``y``.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable

import tensorflow as tf

from tfaas.examples import DENSE42_LAYERS, dense42_weights

v1 = tf.compat.v1


def build_dense42() -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """The dense42 graph in the default graph: (inputs, outputs) by alias."""
    inputs = v1.placeholder(tf.float32, [None, DENSE42_LAYERS[0]], name="inputs")
    hidden = inputs
    layers = dense42_weights()
    for index, (weights, biases) in enumerate(layers):
        w = v1.Variable(weights, name=f"w{index}")
        b = v1.Variable(biases, name=f"b{index}")
        hidden = tf.matmul(hidden, w) + b
        hidden = tf.nn.relu(hidden) if index < len(layers) - 1 else tf.sigmoid(hidden, name="outputs")
    return {"inputs": inputs}, {"outputs": hidden}


def build_half_plus_two() -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """The half_plus_two graph in the default graph: (inputs, outputs) by alias."""
    x = v1.placeholder(tf.float32, [None, 1], name="x")
    a = v1.Variable(0.5, name="a")
    b = v1.Variable(2.0, name="b")
    return {"x": x}, {"y": tf.add(a * x, b, name="y")}


def export(path: str, build: Callable[[], tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]]) -> None:
    """Build one graph, initialise its variables and save it as a TF1 SavedModel at ``path``."""
    with tf.Graph().as_default(), v1.Session() as session:
        inputs, outputs = build()
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(path)
        signature = v1.saved_model.predict_signature_def(inputs=inputs, outputs=outputs)
        builder.add_meta_graph_and_variables(
            session, [v1.saved_model.tag_constants.SERVING], signature_def_map={"serving_default": signature}
        )
        builder.save()


def main() -> None:
    """Command line: ``python perf/peers/export_tf1.py DIR``; versions that exist are left alone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    outdir = parser.parse_args().outdir
    for name, build in (("dense42", build_dense42), ("half_plus_two", build_half_plus_two)):
        path = os.path.join(outdir, name, "1")
        if not os.path.exists(path):
            export(path, build)


if __name__ == "__main__":
    main()
