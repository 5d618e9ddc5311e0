"""The ``multi`` test model: one TF2 SavedModel whose signatures exercise every REST JSON rule.

Built with TensorFlow once per session (see the ``multi_model`` and ``multi_server`` fixtures in
``conftest.py``). Its signatures:

- ``serving_default``: ``a`` float [-1,2], ``b`` int64 [-1], ``s`` string [-1], ``flag`` bool [-1] to
  ``sum`` float (row sum of ``a`` plus ``b``), ``twice`` int64 (``2 * b``), ``echo_bytes`` string (``s``
  unchanged, written as base64 because of its ``_bytes`` suffix), ``upper`` string (``s`` uppercased, written
  raw) and ``not_flag`` bool.
- ``double``: one input, one output: ``x`` double [-1,3] to ``y`` double (``2 * x``).
- ``dtypes``: one [-1] input per JSON-expressible dtype, each returned unchanged under the same alias,
  the string also as ``s_bytes``.
- ``nonfinite``: ``x`` float [-1,2] to ``log`` (``log(x)``) and ``inv`` (``1 / x``): NaN and infinities.
- ``total``: ``x`` float [-1] to the scalar ``total`` (no batch dimension, so no row format).
- ``repeat``: ``x`` float [-1] to ``x2`` (``x`` twice over, batch ``2n``) and ``y`` (batch ``n``).
- ``half``: ``x`` half [-1], a dtype JSON cannot feed (501).
- ``classify``: serialized tf.Examples ``inputs`` with features ``x`` float, ``tag`` bytes (default
  ``"none"``) and ``n`` int64 (default 0) to ``classes`` ``[tag, "other"]`` and ``scores`` ``[x * n, x + n]``.
- ``classify_scores``: the same examples to ``scores`` only (labels are ``""``).
- ``regress``: the same examples to ``outputs`` ``2 * x + n``.
"""

from __future__ import annotations

from pathlib import Path

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def write_multi_model(path: Path) -> None:
    """Write the ``multi`` SavedModel (a TF2 export) to ``path``."""
    import tensorflow as tf

    def spec(shape: list[int | None], dtype: tf.DType, name: str) -> tf.TensorSpec:
        return tf.TensorSpec(shape, dtype, name=name)

    examples = spec([None], tf.string, "inputs")
    features = {
        "x": tf.io.FixedLenFeature([], tf.float32),
        "tag": tf.io.FixedLenFeature([], tf.string, default_value="none"),
        "n": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }
    dtype_specs = [spec([None], getattr(tf, name), name) for name in INT_DTYPES]
    dtype_specs += [
        spec([None], tf.float32, "f32"),
        spec([None], tf.float64, "f64"),
        spec([None], tf.bool, "t"),
        spec([None], tf.string, "s"),
    ]

    class Multi(tf.Module):
        @tf.function(
            input_signature=[
                spec([None, 2], tf.float32, "a"),
                spec([None], tf.int64, "b"),
                spec([None], tf.string, "s"),
                spec([None], tf.bool, "flag"),
            ]
        )
        def serve(self, a, b, s, flag):
            return {
                "sum": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
                "twice": b * 2,
                "echo_bytes": tf.identity(s),
                "upper": tf.strings.upper(s),
                "not_flag": tf.logical_not(flag),
            }

        @tf.function(input_signature=[spec([None, 3], tf.float64, "x")])
        def double(self, x):
            return {"y": x * 2.0}

        @tf.function(input_signature=dtype_specs)
        def dtypes(self, int8, int16, int32, int64, uint8, uint16, uint32, uint64, f32, f64, t, s):
            values = {
                "int8": int8,
                "int16": int16,
                "int32": int32,
                "int64": int64,
                "uint8": uint8,
                "uint16": uint16,
                "uint32": uint32,
                "uint64": uint64,
                "f32": f32,
                "f64": f64,
                "t": t,
                "s": s,
            }
            outputs = {alias: tf.identity(value) for alias, value in values.items()}
            outputs["s_bytes"] = tf.identity(s)
            return outputs

        @tf.function(input_signature=[spec([None, 2], tf.float32, "x")])
        def nonfinite(self, x):
            return {"log": tf.math.log(x), "inv": 1.0 / x}

        @tf.function(input_signature=[spec([None], tf.float32, "x")])
        def total(self, x):
            return {"total": tf.reduce_sum(x)}

        @tf.function(input_signature=[spec([None], tf.float32, "x")])
        def repeat(self, x):
            return {"x2": tf.concat([x, x], axis=0), "y": tf.identity(x)}

        @tf.function(input_signature=[spec([None], tf.float16, "x")])
        def half(self, x):
            return {"y": tf.cast(x, tf.float32)}

        def _parse(self, inputs):
            parsed = tf.io.parse_example(inputs, features)
            return parsed["x"], parsed["tag"], tf.cast(parsed["n"], tf.float32)

        @tf.function(input_signature=[examples])
        def classify(self, inputs):
            x, tag, n = self._parse(inputs)
            return {
                "classes": tf.stack([tag, tf.fill(tf.shape(tag), "other")], axis=1),
                "scores": tf.stack([x * n, x + n], axis=1),
            }

        @tf.function(input_signature=[examples])
        def classify_scores(self, inputs):
            x, _, n = self._parse(inputs)
            return {"scores": tf.stack([x * n, x + n], axis=1)}

        @tf.function(input_signature=[examples])
        def regress(self, inputs):
            x, _, n = self._parse(inputs)
            return {"outputs": 2.0 * x + n}

    module = Multi()
    signatures = {
        "serving_default": module.serve,
        "double": module.double,
        "dtypes": module.dtypes,
        "nonfinite": module.nonfinite,
        "total": module.total,
        "repeat": module.repeat,
        "half": module.half,
        "classify": module.classify,
        "classify_scores": module.classify_scores,
        "regress": module.regress,
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
