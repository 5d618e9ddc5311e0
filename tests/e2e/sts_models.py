"""Models shaped like Simple TensorFlow Serving's examples, built with TensorFlow for the STS tests.

- ``write_template_model``: the signature of STS's ``tensorflow_template_application_model``: ``keys``
  int32 [-1, 1] and ``features`` float [-1, 9] to ``keys`` (the same keys), ``softmax`` float [-1, 2]
  (the softmax of ``features @ TEMPLATE_WEIGHTS + TEMPLATE_BIAS``) and ``prediction`` int64 [-1] (its
  argmax); ``template_expected`` computes the answers.
- ``write_image_model``: the signature of STS's ``deep_image_model``: ``images`` string [-1], each a URL-safe
  base64 image (decoded in the graph), to ``color`` float [-1, 3] (the mean red, green and blue) and
  ``height`` int32 [-1].
- ``write_op_library_model``: ``x`` float [-1] to ``y`` (``2 * x``) through ``TfaasTimesTwo``, an op that
  only the op library of ``tests/e2e/ops/times_two.cc`` registers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEMPLATE_WEIGHTS = np.linspace(-0.4, 0.4, 18, dtype=np.float32).reshape(9, 2)
TEMPLATE_BIAS = np.array([0.25, -0.5], dtype=np.float32)


def template_expected(keys: list[list[int]], features: list[list[float]]) -> dict[str, list]:
    """The template model's answer, as STS writes it (``tolist()`` of each output)."""
    logits = np.asarray(features, dtype=np.float32) @ TEMPLATE_WEIGHTS + TEMPLATE_BIAS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return {"keys": keys, "prediction": softmax.argmax(axis=1).tolist(), "softmax": softmax.tolist()}


def write_template_model(version_dir: Path) -> None:
    import tensorflow as tf

    class Template(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable(TEMPLATE_WEIGHTS)
            self.bias = tf.Variable(TEMPLATE_BIAS)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 1], tf.int32, name="keys"),
                tf.TensorSpec([None, 9], tf.float32, name="features"),
            ]
        )
        def serve(self, keys: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
            softmax = tf.nn.softmax(tf.matmul(features, self.weights) + self.bias)
            return {"keys": tf.identity(keys), "softmax": softmax, "prediction": tf.argmax(softmax, axis=1)}

    module = Template()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})


def write_image_model(version_dir: Path) -> None:
    import tensorflow as tf

    def mean_color(encoded: tf.Tensor) -> tf.Tensor:
        pixels = tf.io.decode_image(tf.io.decode_base64(encoded), channels=3, expand_animations=False)
        return tf.reduce_mean(tf.cast(pixels, tf.float32), axis=[0, 1])

    def height(encoded: tf.Tensor) -> tf.Tensor:
        return tf.shape(tf.io.decode_image(tf.io.decode_base64(encoded), expand_animations=False))[0]

    class Images(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return {
                "color": tf.map_fn(mean_color, images, fn_output_signature=tf.float32),
                "height": tf.map_fn(height, images, fn_output_signature=tf.int32),
            }

    module = Images()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})


def write_op_library_model(version_dir: Path, library: Path) -> None:
    """``x`` float [-1] to ``y`` through ``TfaasTimesTwo``, the op of ``library`` (``tests/e2e/ops``, built
    by the tests), which this process loads to write the model, as a server must to load it."""
    import tensorflow as tf

    ops = tf.load_op_library(str(library))

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": ops.tfaas_times_two(x)}

    module = Doubler()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.serve})
