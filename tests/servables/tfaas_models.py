"""Tiny TFaaS-style models and images built with TensorFlow, for the servable and the HTTP tests.

Each ``write_*`` function fills one version directory (``<repo>/<name>/<version>/``) and returns it:

- ``write_frozen_graph``: a TF1 frozen GraphDef ``tf_model.pb`` (placeholder ``dense_1_input`` [None, 4]
  -> dense -> sigmoid ``output_node0`` [None, 1]), ``params.json`` and ``labels.txt``; ``frozen_graph_expected``
  computes its answers.
- ``write_image_model``: a SavedModel whose ``serving_default`` takes ``inputs`` float [1, None, None, 3]
  (raw 0..255 pixels) and returns ``probabilities`` [1, 3], the softmax of the mean red, green and blue
  (scaled by 10/255), with ``labels.txt`` ``red``, ``green``, ``blue`` and ``params.json``.
- ``write_row_model``: a SavedModel like the frozen graph (``x`` float [None, 4] -> ``y`` [None, 1]).

Images: ``png_bytes``, ``jpeg_bytes``, ``gif_bytes``, ``bmp_bytes`` (solid colour), ``NOT_AN_IMAGE``.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FROZEN_WEIGHTS = np.array([[0.5], [-0.25], [1.0], [0.125]], dtype=np.float32)
FROZEN_BIAS = np.array([-0.5], dtype=np.float32)
FROZEN_LABELS = ["signal"]
IMAGE_LABELS = ["red", "green", "blue"]
NOT_AN_IMAGE = b"this is not an image\n"
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


def frozen_graph_expected(values: Sequence[float]) -> np.ndarray:
    """What the frozen graph (and the row model) answer for one row: ``sigmoid(values @ W + b)``, 1-D."""
    logits = np.asarray(values, dtype=np.float32) @ FROZEN_WEIGHTS + FROZEN_BIAS
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def write_frozen_graph(
    directory: str | os.PathLike[str],
    camel_case: bool = False,
    *,
    name: str | None = None,
    model_file: str = "tf_model.pb",
    params: dict[str, Any] | None = None,
) -> Path:
    """Write the TF1 frozen graph into ``directory`` (created), with params.json and labels.txt.

    ``params.json`` uses the old camelCase keys (``inputNode``, ``outputNode``) when ``camel_case``, the
    current snake_case ones otherwise; its ``name`` is ``name`` or the parent directory's name (the model
    name in ``<repo>/<name>/<version>``). ``params`` replaces params.json's content altogether.
    """
    import tensorflow as tf

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 4], name="dense_1_input")
        weights = tf.compat.v1.Variable(FROZEN_WEIGHTS, name="dense_1/kernel")
        bias = tf.compat.v1.Variable(FROZEN_BIAS, name="dense_1/bias")
        logits = tf.nn.bias_add(tf.matmul(inputs, weights), bias, name="dense_1/BiasAdd")
        tf.sigmoid(logits, name="output_node0")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), ["output_node0"]
            )
    (path / model_file).write_bytes(frozen.SerializeToString())
    model_name = name if name is not None else path.parent.name
    if params is None:
        if camel_case:
            params = {"name": model_name, "model": model_file, "labels": "labels.txt"}
            params.update(inputNode="dense_1_input", outputNode="output_node0")
        else:
            params = {"name": model_name, "model": model_file, "labels": "labels.txt"}
            params.update(input_node="dense_1_input", output_node="output_node0", description="frozen test graph")
    (path / "params.json").write_text(json.dumps(params))
    (path / "labels.txt").write_text("\n".join(FROZEN_LABELS) + "\n")
    return path


def write_image_model(directory: str | os.PathLike[str], *, name: str | None = None, img_channels: int = 3) -> Path:
    """Write the colour classifier SavedModel into ``directory`` with labels.txt and params.json.

    The directory also gets an empty ``assets/``, as TFaaS needs to tell a SavedModel bundle.
    """
    import tensorflow as tf

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)

    class ColourModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="inputs")])
        def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            means = tf.reduce_mean(inputs, axis=[1, 2])
            return {"probabilities": tf.nn.softmax(means * (10.0 / 255.0))}

    module = ColourModel()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.classify})
    (path / "assets").mkdir(exist_ok=True)
    (path / "labels.txt").write_text("\n".join(IMAGE_LABELS) + "\n")
    params = {
        "name": name if name is not None else path.parent.name,
        "model": "saved_model.pb",
        "labels": "labels.txt",
        "img_channels": img_channels,
        "input_name": "serving_default_inputs",
        "output_name": "PartitionedCall",
    }
    (path / "params.json").write_text(json.dumps(params))
    return path


def write_row_model(directory: str | os.PathLike[str], *, name: str | None = None) -> Path:
    """Write a SavedModel computing what the frozen graph does (``x`` [None, 4] -> ``y`` [None, 1]).

    It has params.json (``name`` only and ``model``) but no labels file.
    """
    import tensorflow as tf

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)

    class RowModel(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable(FROZEN_WEIGHTS)
            self.bias = tf.Variable(FROZEN_BIAS)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.sigmoid(tf.matmul(x, self.weights) + self.bias)}

    module = RowModel()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    params = {"name": name if name is not None else path.parent.name, "model": "saved_model.pb"}
    (path / "params.json").write_text(json.dumps(params))
    return path


def _solid(color: Sequence[int], size: tuple[int, int], channels: int) -> np.ndarray:
    """A ``size`` (height, width) image of one colour, uint8 [H, W, channels] (grey: the first component)."""
    pixel = list(color)[:channels] if channels != 1 else [color[0]]
    return np.tile(np.array(pixel, dtype=np.uint8), (*size, 1))


def png_bytes(color: Sequence[int] = RED, size: tuple[int, int] = (8, 8), channels: int = 3) -> bytes:
    """A solid-colour PNG (``channels`` 1, 3 or 4; for 4 give an RGBA ``color``)."""
    import tensorflow as tf

    return tf.io.encode_png(_solid(color, size, channels)).numpy()


def jpeg_bytes(color: Sequence[int] = RED, size: tuple[int, int] = (8, 8)) -> bytes:
    """A solid-colour RGB JPEG at quality 100 (decodes to within a few levels of ``color``)."""
    import tensorflow as tf

    return tf.io.encode_jpeg(_solid(color, size, 3), quality=100).numpy()


def gif_bytes(color: Sequence[int] = RED) -> bytes:
    """A 1x1 GIF89a of ``color`` (written by hand: TensorFlow has no GIF encoder)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)  # 1x1, a 2-entry global colour table
    palette = bytes(color[:3]) + bytes(3)
    image = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
    pixels = bytes([2, 2, 0x44, 0x01, 0])  # LZW code size 2: clear, index 0, end; then the block terminator
    return header + palette + image + pixels + b";"


def bmp_bytes(color: Sequence[int] = RED, size: tuple[int, int] = (2, 3)) -> bytes:
    """A solid-colour 24-bit BMP of ``size`` (height, width) (written by hand: TensorFlow has no BMP encoder)."""
    height, width = size
    row = bytes([color[2], color[1], color[0]]) * width
    row += bytes(-len(row) % 4)  # rows are padded to 4 bytes
    pixels = row * height
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels
