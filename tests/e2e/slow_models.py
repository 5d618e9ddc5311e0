"""SavedModels that take their time, for the shutdown, reload and readiness tests.

Both sleep inside TensorFlow's runtime (a ``tf.data`` sleep, a real kernel that survives export), so
the time passes in the server's own TensorFlow, without burning a CPU and without any mock (TensorFlow
runs these sleeps one at a time: concurrent slow requests queue inside the worker):

- :func:`write_sleepy_model`: ``serving_default`` takes ``x`` float [None] and answers ``y = x`` after
  sleeping ``max(x)`` seconds (a slow request).
- :func:`write_slow_loading_model`: ``serving_default`` is ``y = 0.5 * x + bias`` (``x`` float [None, 1]);
  loading it takes ``seconds`` more, because it holds a resource whose initializer sleeps, and
  ``tf.saved_model.load`` runs resource initializers (as it fills a lookup table from a vocabulary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _sleep(tf: Any, microseconds: Any) -> Any:
    """A tensor computed after sleeping ``microseconds`` (an int64 tensor or int)."""
    from tensorflow.python.data.experimental.ops import testing

    # NOTE: the sleep dataset sleeps before each element it is asked for, end of data included: twice here.
    half = tf.cast(microseconds, tf.int64) // 2
    dataset = tf.data.Dataset.from_tensors(tf.constant(0.0)).apply(testing.sleep(half))
    return dataset.reduce(tf.constant(0.0), lambda total, value: total + value)


def write_sleepy_model(path: Path) -> None:
    """Write the sleepy model (``y = x`` after ``max(x)`` seconds) to ``path``."""
    import tensorflow as tf

    class Sleepy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            slept = _sleep(tf, tf.cast(tf.reduce_max(x) * 1e6, tf.int64))
            return {"y": x + slept}

    module = Sleepy()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def write_slow_loading_model(path: Path, seconds: float, bias: float = 2.0) -> None:
    """Write ``y = 0.5 * x + bias`` to ``path``, as a SavedModel whose load takes ``seconds`` longer."""
    import tensorflow as tf

    class SlowToInitialize(tf.saved_model.experimental.TrackableResource):
        """A scalar variable resource whose initializer, run at load time, sleeps first."""

        def _create_resource(self) -> tf.Tensor:
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self) -> tf.Operation:
            value = _sleep(tf, int(seconds * 1e6)) + bias
            return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=value)

    class HalfPlus(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = SlowToInitialize()

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            bias = tf.raw_ops.ReadVariableOp(resource=self.bias.resource_handle, dtype=tf.float32)
            return {"y": 0.5 * x + bias}

    module = HalfPlus()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
