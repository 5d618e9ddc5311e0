"""TF Serving's test models, rebuilt with TensorFlow, and the folder that holds them.

TF Serving tests its server with a folder of models and files (``tensorflow_serving/servables/tensorflow/
testdata``): TF1 graph exports with classify and regress signatures, a TF2 export, a stateful counter,
a legacy export that is no SavedModel, a half-copied version, and text configs. The tests need models
like these, so the builders below make them with the APIs their authors used (``tf.compat.v1`` graphs
and ``tf.compat.v1.saved_model.Builder`` for TF1, ``tf.saved_model.save`` for TF2), under the same folder
and tensor names, so a test can run unchanged on the built folder and on TF Serving's own copy.

Math, as in TF Serving's models: ``y = 0.5 * x + 2``, ``y2 = 0.5 * x + 3``, ``y3 = 0.5 * x2 + 3`` (half_plus_two);
``y = 0.5 * x + 3`` (half_plus_three). ``x`` and ``x2`` come from float features of serialized tf.Examples.

``TfServingTestdata`` is such a folder: ``TfServingTestdata.build(root)`` builds each entry on first use;
``TfServingTestdata(path)`` wraps TF Serving's own copy (``../shared/testdata/tfserving``, where present).
The session fixtures in ``tests/conftest.py`` hand them to the tests.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

SERVE = "serve"
TFSERVING_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "tfserving"
"""TF Serving's own copy, beside the checkout (CI has it; a clean clone does not)."""
SOURCES = ("built", "tfserving") if TFSERVING_TESTDATA.is_dir() else ("built",)
"""Where the testdata folder comes from: ``built`` here, always; ``tfserving``, TF Serving's own copy, a
conformance layer that runs the same tests where it is present (absent, those tests are not collected)."""

GOOD_MODEL_CONFIG = """\
model_config_list: {
  config: {
    name: "half_plus_two",
    base_path: "${TEST_HALF_PLUS_TWO_DIR}",
    model_platform: "tensorflow"
  },
  config: {
    name: "half_plus_three",
    base_path: "${TEST_HALF_PLUS_THREE_DIR}",
    model_platform: "tensorflow"
  }
}
"""
"""A ``model_config_list`` naming two models, its base paths placeholders (TF Serving's good_model_config.txt)."""

BAD_MODEL_CONFIG = "improperly formatted file"
"""Not text format at all (TF Serving's bad_model_config.txt)."""

BATCHING_CONFIG = """\
max_batch_size { value: 128 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 1000000 }
num_batch_threads { value: 8 }
"""
"""TF Serving's batching parameters in text format (its batching_config.txt)."""


# --- TF1 exports ----------------------------------------------------------------------------------


def _save_tf1(version_dir: Path, graph: Any, signatures: dict[str, Any], assets: list[Any] | None = None) -> None:
    """Initialize ``graph``'s variables and export it with ``signatures`` under the ``serve`` tag."""
    import tensorflow as tf

    with tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(version_dir))
        builder.add_meta_graph_and_variables(
            session, [SERVE], signature_def_map=signatures, assets_collection=assets, strip_default_attrs=True
        )
        builder.save()


def _signature(method: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
    """A SignatureDef of ``tensorflow/serving/<method>`` over graph tensors, keyed by alias."""
    import tensorflow as tf

    info = tf.compat.v1.saved_model.utils.build_tensor_info
    return tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        {alias: info(tensor) for alias, tensor in inputs.items()},
        {alias: info(tensor) for alias, tensor in outputs.items()},
        f"tensorflow/serving/{method}",
    )


def _parsed_feature(tf: Any, serialized: Any, name: str, default: float | None = None) -> Any:
    """Float feature ``name`` of the serialized tf.Examples as a [batch, 1] tensor named ``name``."""
    feature = tf.compat.v1.FixedLenFeature([1], tf.float32, default_value=None if default is None else [default])
    parsed = tf.compat.v1.parse_example(serialized, {name: feature})[name]
    parsed.set_shape([None, 1])
    return tf.identity(parsed, name=name)


def write_half_plus_two_tf1(version_dir: Path, *, classify_x2_to_y3: bool = False) -> None:
    """TF Serving's ``saved_model_half_plus_two_cpu`` as a TF1 graph export (with ``classify_x2_to_y3``:
    its ``saved_model_half_plus_two_2_versions``).

    ``tf_example`` (string, any shape) holds serialized tf.Examples; ``x`` and ``x2`` are their float
    features (``x2`` defaults to 0). Signatures: ``serving_default`` (predict x -> y), ``classify_x_to_y``
    (tf_example -> scores y), ``regress_x_to_y``/``regress_x_to_y2`` (tf_example -> outputs y/y2),
    ``regress_x2_to_y3`` (float x2 -> outputs y3), and ``classify_x2_to_y3`` (x2 -> scores y3) when asked.
    ``x`` and ``x2`` can be fed directly: a TF1 session feeds any tensor. An asset ``foo.txt`` as theirs.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), tempfile.TemporaryDirectory() as scratch:
        a, b, c = (v1.Variable(value, name=name) for name, value in (("a", 0.5), ("b", 2.0), ("c", 3.0)))
        serialized = v1.placeholder(tf.string, name="tf_example")
        x = _parsed_feature(tf, serialized, "x")
        x2 = _parsed_feature(tf, serialized, "x2", default=0.0)
        y = tf.add(a * x, b, name="y")
        y2 = tf.add(a * x, c, name="y2")
        y3 = tf.add(a * x2, c, name="y3")
        asset = Path(scratch) / "foo.txt"
        asset.write_text("asset-file-contents")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(str(asset), name="asset_filepath"))
        signatures = {
            "serving_default": _signature("predict", {"x": x}, {"y": y}),
            "classify_x_to_y": _signature("classify", {"inputs": serialized}, {"scores": y}),
            "regress_x_to_y": _signature("regress", {"inputs": serialized}, {"outputs": y}),
            "regress_x_to_y2": _signature("regress", {"inputs": serialized}, {"outputs": y2}),
            "regress_x2_to_y3": _signature("regress", {"inputs": x2}, {"outputs": y3}),
        }
        if classify_x2_to_y3:
            signatures["classify_x2_to_y3"] = _signature("classify", {"inputs": x2}, {"scores": y3})
        _save_tf1(version_dir, graph, signatures, v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS))


def write_half_plus_three(version_dir: Path) -> None:
    """TF Serving's ``saved_model_half_plus_three``: y = 0.5x + 3, with SignatureDefs written by hand as
    early TF1 exports were: no shapes at all, and ``tensorflow/serving/regress`` declares its input
    ``tf_example:0`` (a string placeholder of serialized tf.Examples) as DT_FLOAT."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    v1 = tf.compat.v1

    def signature(method: str, inputs: dict[str, str], outputs: dict[str, str]) -> Any:
        tensor = meta_graph_pb2.TensorInfo
        return meta_graph_pb2.SignatureDef(
            inputs={alias: tensor(name=name, dtype=types_pb2.DT_FLOAT) for alias, name in inputs.items()},
            outputs={alias: tensor(name=name, dtype=types_pb2.DT_FLOAT) for alias, name in outputs.items()},
            method_name=f"tensorflow/serving/{method}",
        )

    graph = tf.Graph()
    with graph.as_default():
        a, b = v1.Variable(0.5, name="a"), v1.Variable(3.0, name="b")
        serialized = v1.placeholder(tf.string, name="tf_example")
        y = tf.add(a * _parsed_feature(tf, serialized, "x"), b, name="y")
        regressed = tf.identity(y)
        signatures = {
            "serving_default": signature("predict", {"x": "x:0"}, {"y": y.name}),
            "tensorflow/serving/regress": signature(
                "regress", {"inputs": serialized.name}, {"outputs": regressed.name}
            ),
        }
        _save_tf1(version_dir, graph, signatures)


def write_counter(version_dir: Path) -> None:
    """TF Serving's ``saved_model_counter``: a float counter in a reference (TF1) variable.

    Signatures (all predict, output ``output``, typed DT_FLOAT_REF as reference tensors are):
    ``get_counter``, ``incr_counter`` (+1), ``incr_counter_by`` (+ input ``delta``, float, any shape),
    ``reset_counter`` (= 0). Each returns the counter's value after its change.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        counter = v1.Variable(0.0, name="counter", use_resource=False)
        delta = v1.placeholder(tf.float32, name="delta")
        with tf.name_scope("incr_counter_op"):
            incremented = v1.assign_add(counter, 1.0)
        with tf.name_scope("incr_counter_by_op"):
            incremented_by = v1.assign_add(counter, delta)
        with tf.name_scope("reset_counter_op"):
            reset = v1.assign(counter, 0.0)
        signatures = {
            "get_counter": _signature("predict", {}, {"output": counter}),
            "incr_counter": _signature("predict", {}, {"output": incremented}),
            "incr_counter_by": _signature("predict", {"delta": delta}, {"output": incremented_by}),
            "reset_counter": _signature("predict", {}, {"output": reset}),
        }
        _save_tf1(version_dir, graph, signatures)


def write_legacy_export(version_dir: Path) -> None:
    """TF Serving's ``bad_half_plus_two``: an old export made with a ``Saver`` (``checkpoint``, ``export``
    and ``export.meta``), not a SavedModel, which must fail to load."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saver_pb2

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        a, b = v1.Variable(0.5, name="a"), v1.Variable(2.0, name="b")
        x = v1.placeholder(tf.float32, name="x")
        tf.add(a * x, b, name="y")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            version_dir.mkdir(parents=True)
            saver = v1.train.Saver(write_version=saver_pb2.SaverDef.V1)
            saver.save(session, str(version_dir / "export"))


def write_half_copied(version_dir: Path) -> None:
    """TF Serving's ``tf_text_regression/01``: a TF2 export whose copy stopped before ``saved_model.pb``."""
    write_half_plus_tf2(version_dir)
    (version_dir / "saved_model.pb").unlink()


# --- TF2 exports ----------------------------------------------------------------------------------


def write_half_plus_tf2(version_dir: Path, bias: float = 2.0, *, tf_serving_signatures: bool = False) -> None:
    """A TF2 ``tf.saved_model.save`` export of ``y = 0.5 * x + bias``: ``serving_default`` takes ``x``
    float [None, 1].

    With ``tf_serving_signatures``, TF Serving's ``saved_model_half_plus_two_tf2_cpu`` instead (bias 2):
    ``serving_default`` takes ``x`` float [1] (default [0.0]), and beside it ``classify_x_to_y``,
    ``regress_x_to_y`` and ``regress_x_to_y2`` take serialized tf.Examples [None] and give [None, 1], and
    ``classify_x2_to_y3`` and ``regress_x2_to_y3`` take float ``inputs`` [1]; a TF2 export writes method
    ``tensorflow/serving/predict`` for every signature.
    """
    import tensorflow as tf

    class HalfPlus(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(float(bias))
            self.c = tf.Variable(3.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="x")])
        def serve_one(self, x: tf.Tensor = tf.constant([0.0])) -> dict[str, tf.Tensor]:  # noqa: B008
            # NOTE: the default becomes the SignatureDef's ``defaults``, as in TF Serving's export.
            return {"y": self.a * x + self.b}

        def _x(self, serialized: tf.Tensor) -> tf.Tensor:
            return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def classify_x_to_y(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def regress_x_to_y(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def regress_x_to_y2(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * self._x(inputs) + self.c}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
        def classify_x2_to_y3(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": self.a * inputs + self.c}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
        def regress_x2_to_y3(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * inputs + self.c}

    module = HalfPlus()
    signatures: dict[str, Any] = {"serving_default": module.serve}
    if tf_serving_signatures:
        signatures = {"serving_default": module.serve_one}
        for name in ("classify_x_to_y", "regress_x_to_y", "regress_x_to_y2", "classify_x2_to_y3", "regress_x2_to_y3"):
            signatures[name] = getattr(module, name)
    tf.saved_model.save(module, str(version_dir), signatures=signatures)


# --- what TF Serving's metadata call prints for them ---------------------------------------------


def tensor_json(name: str, dtype: str = "DT_FLOAT", dims: tuple[int, ...] | None = (-1, 1)) -> dict[str, Any]:
    """A TensorInfo as TF Serving prints it: protobuf JSON, sizes as strings (``dims`` None: unknown rank)."""
    dim = [{"size": str(size), "name": ""} for size in dims or ()]
    return {"dtype": dtype, "tensor_shape": {"dim": dim, "unknown_rank": dims is None}, "name": name}


def signature_json(method: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """A SignatureDef as TF Serving prints it (``defaults`` empty)."""
    return {"inputs": inputs, "outputs": outputs, "method_name": method, "defaults": {}}


def _half_plus_two_tf1_json(*, classify_x2_to_y3: bool = False) -> dict[str, Any]:
    examples = {"inputs": tensor_json("tf_example:0", "DT_STRING", None)}
    x2 = {"inputs": tensor_json("x2:0")}
    signatures = {
        "serving_default": signature_json(
            "tensorflow/serving/predict", {"x": tensor_json("x:0")}, {"y": tensor_json("y:0")}
        ),
        "classify_x_to_y": signature_json("tensorflow/serving/classify", examples, {"scores": tensor_json("y:0")}),
        "regress_x_to_y": signature_json("tensorflow/serving/regress", examples, {"outputs": tensor_json("y:0")}),
        "regress_x_to_y2": signature_json("tensorflow/serving/regress", examples, {"outputs": tensor_json("y2:0")}),
        "regress_x2_to_y3": signature_json("tensorflow/serving/regress", x2, {"outputs": tensor_json("y3:0")}),
    }
    if classify_x2_to_y3:
        signatures["classify_x2_to_y3"] = signature_json(
            "tensorflow/serving/classify", x2, {"scores": tensor_json("y3:0")}
        )
    return signatures


def _half_plus_two_tf2_json() -> dict[str, Any]:
    """NOTE: ``tf.saved_model.save`` names the outputs ``StatefulPartitionedCall_<n>`` in signature key order."""
    predict = "tensorflow/serving/predict"
    signatures = {}
    for n, (key, output, dims) in enumerate(
        (
            ("classify_x2_to_y3", "scores", (1,)),
            ("classify_x_to_y", "scores", (-1, 1)),
            ("regress_x2_to_y3", "outputs", (1,)),
            ("regress_x_to_y", "outputs", (-1, 1)),
            ("regress_x_to_y2", "outputs", (-1, 1)),
        )
    ):
        inputs = tensor_json(f"{key}_inputs:0", *(("DT_FLOAT", (1,)) if "x2" in key else ("DT_STRING", (-1,))))
        outputs = {output: tensor_json(f"StatefulPartitionedCall{f'_{n}' if n else ''}:0", dims=dims)}
        signatures[key] = signature_json(predict, {"inputs": inputs}, outputs)
    x, y = tensor_json("serving_default_x:0", dims=(1,)), tensor_json("StatefulPartitionedCall_5:0", dims=(1,))
    signatures["serving_default"] = signature_json(predict, {"x": x}, {"y": y})
    init_op = {"__saved_model_init_op": tensor_json("NoOp", "DT_INVALID", None)}
    signatures["__saved_model_init_op"] = signature_json("", {}, init_op)
    return signatures


SIGNATURE_DEFS_JSON: dict[str, dict[str, Any]] = {
    "saved_model_half_plus_two_cpu": _half_plus_two_tf1_json(),
    "saved_model_half_plus_two_2_versions": _half_plus_two_tf1_json(classify_x2_to_y3=True),
    "saved_model_half_plus_two_tf2_cpu": _half_plus_two_tf2_json(),
}
"""``metadata.signature_def.signature_def`` of TF Serving's metadata call, written out by hand, for these
models (theirs and ours: same names, shapes and methods). The TF2 one leaves out ``serving_default``'s
``defaults`` (x: [0.0], a TensorProto)."""


# --- the folder -----------------------------------------------------------------------------------


def _versions(builder: Callable[[Path], None], *versions: str) -> Callable[[Path], None]:
    """A base-path builder: ``builder`` makes the first version, the others are copies of it."""

    def build(base: Path) -> None:
        first, *others = versions
        builder(base / first)
        for version in others:
            shutil.copytree(base / first, base / version)

    return build


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "saved_model_half_plus_two_cpu": _versions(write_half_plus_two_tf1, "00000123"),
    "saved_model_half_plus_two_2_versions": _versions(
        lambda path: write_half_plus_two_tf1(path, classify_x2_to_y3=True), "00000123", "00000124"
    ),
    "saved_model_half_plus_three": _versions(write_half_plus_three, "00000123"),
    "saved_model_half_plus_two_tf2_cpu": _versions(
        lambda path: write_half_plus_tf2(path, tf_serving_signatures=True), "00000123"
    ),
    "saved_model_counter": _versions(write_counter, "00000123"),
    "bad_half_plus_two": _versions(write_legacy_export, "00000123"),
    "tf_text_regression": _versions(write_half_copied, "01"),
    "good_model_config.txt": _text(GOOD_MODEL_CONFIG),
    "bad_model_config.txt": _text(BAD_MODEL_CONFIG),
    "batching_config.txt": _text(BATCHING_CONFIG),
}
"""How each entry of TF Serving's testdata folder is made, by its name there."""


class TfServingTestdata:
    """TF Serving's testdata folder: its own copy, or one whose entries are built on first use."""

    def __init__(self, root: Path, *, built: bool = False) -> None:
        self.root = root
        self.built = built
        """Whether the entries are ours (built here) rather than TF Serving's own files."""

    @property
    def source(self) -> str:
        """``built`` or ``tfserving`` (see ``SOURCES``)."""
        return "built" if self.built else "tfserving"

    @classmethod
    def build(cls, root: Path) -> TfServingTestdata:
        """An empty folder at ``root`` whose entries ``path`` builds when first asked for."""
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, built=True)

    def path(self, name: str) -> Path:
        """The path of entry ``name`` (a model's base path or a file), built first if need be."""
        path = self.root / name
        if self.built and not path.exists():
            BUILDERS[name](path)
        return path
