"""Warmup: a version's recorded requests are replayed inside its load, and their failures fail the load.

The model is built here: a TF2 SavedModel whose every signature counts its calls in a variable, so a
test can tell how many warmup requests ran. Warmup files are written with TF's TFRecordWriter.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import pytest
from prometheus_client import CollectorRegistry

from tests.test_metrics import value
from tfaas.core.servable_id import ServableId
from tfaas.errors import InvalidArgument, TfaasError, Unimplemented
from tfaas.metrics import Metrics
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable
from tfaas.servables.warmup import MAX_RECORDS, DataLoss, WarmupOptions, run_warmup, warmup_file


def write_counting_model(path: Path) -> None:
    """``serving_default``: y = number of calls so far (this one included), one per instance of ``x``.
    ``classify`` and ``regress`` take serialized tf.Examples with float feature ``x`` and count too."""
    import tensorflow as tf

    class Counting(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = tf.Variable(0.0)

        def _count(self) -> tf.Tensor:
            return self.calls.assign_add(1.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": tf.zeros_like(x) + self._count()}

        def _x(self, serialized):
            features = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
            return features["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            x = self._x(inputs) + 0.0 * self._count()
            return {"scores": tf.concat([x, 1.0 - x], axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": tf.reshape(self._x(inputs), [-1]) + 0.0 * self._count()}

    module = Counting()
    signatures = {"serving_default": module.predict, "classify": module.classify, "regress": module.regress}
    tf.saved_model.save(module, str(path), signatures=signatures)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("warmup") / "counting"
    write_counting_model(path)
    return path


@pytest.fixture
def version(model_dir: Path, tmp_path: Path) -> Path:
    """A fresh copy of the model as version 1 (its counter at 0), without warmup data yet."""
    target = tmp_path / "counting" / "1"
    shutil.copytree(model_dir, target)
    return target


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def load(version: Path, metrics: Metrics, iterations: int = 1) -> SavedModelServable:
    return SavedModelLoader(ServableId("counting", 1), str(version), warmup=WarmupOptions(iterations, metrics)).load()


def calls(servable: SavedModelServable) -> int:
    """The model's call counter, read by one more predict (which counts itself, hence the -1)."""
    return int(servable.run("serving_default", {"x": [[0.0]]})["y"][0][0]) - 1


# ---- writing warmup files ----------------------------------------------------------------------


def predict_log(signature: str = "", **inputs: Any) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ignored"
    request.model_spec.signature_name = signature
    for alias, array in (inputs or {"x": [[1.0]]}).items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(array, dtype=tf.float32))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def examples(*xs: float) -> list[Any]:
    from tensorflow.core.example import example_pb2, feature_pb2

    return [
        example_pb2.Example(
            features=feature_pb2.Features(
                feature={"x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))}
            )
        )
        for x in xs
    ]


def classify_log(*xs: float) -> Any:
    from tensorflow_serving.apis import classification_pb2, prediction_log_pb2

    request = classification_pb2.ClassificationRequest()
    request.model_spec.signature_name = "classify"
    request.input.example_list.examples.extend(examples(*xs))
    return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))


def regress_log(*xs: float) -> Any:
    from tensorflow_serving.apis import prediction_log_pb2, regression_pb2

    request = regression_pb2.RegressionRequest()
    request.model_spec.signature_name = "regress"
    context = request.input.example_list_with_context
    context.examples.extend(examples(*xs))
    context.context.CopyFrom(examples(9.0)[0])
    return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))


def multi_inference_log(*xs: float) -> Any:
    from tensorflow_serving.apis import inference_pb2, prediction_log_pb2

    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        task = request.tasks.add()
        task.model_spec.signature_name = signature
        task.method_name = method
    request.input.example_list.examples.extend(examples(*xs))
    return prediction_log_pb2.PredictionLog(multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=request))


def write_warmup(version: Path, records: Iterable[Any]) -> Path:
    import tensorflow as tf

    path = Path(warmup_file(str(version)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record if isinstance(record, bytes) else record.SerializeToString())
    return path


# ---- tests -------------------------------------------------------------------------------------


def test_no_warmup_file_is_fine(version, metrics, caplog):
    caplog.set_level(logging.INFO, "tfaas.warmup")
    servable = load(version, metrics)
    assert calls(servable) == 0
    assert f"No warmup data file found at {warmup_file(str(version))}" in caplog.text


def test_every_kind_of_record_is_replayed_inside_the_load(version, metrics, caplog):
    caplog.set_level(logging.INFO, "tfaas.warmup")
    records = [predict_log(), predict_log("serving_default", x=[[1.0], [2.0]]), classify_log(0.25, 0.5)]
    records += [regress_log(1.0), multi_inference_log(0.5), b""]  # an empty record: no log, skipped
    path = write_warmup(version, records)

    servable = load(version, metrics, iterations=2)

    assert calls(servable) == 2 * (2 + 1 + 1 + 2)  # multi-inference runs two signatures
    assert (
        f"Finished reading warmup data for model at {path}. Number of warmup records read: 6. "
        "Elapsed time (microseconds): "
    ) in caplog.text
    text = metrics.render()
    assert value(text, "tfaas_model_warmup_records_total", model="counting", status="OK") == 6
    assert value(text, ":tensorflow:serving:model_warmup_records_read_total", model_path=str(version), status="OK") == 6
    assert value(text, "tfaas_model_warmup_duration_seconds_count", model="counting", status="OK") == 1


def test_a_corrupt_file_fails_the_load(version, metrics):
    path = write_warmup(version, [predict_log()])
    path.write_bytes(b"this is not a TFRecord file at all" * 3)
    with pytest.raises(DataLoss) as raised:
        load(version, metrics)
    assert str(raised.value) == (
        f"corrupted record at 0 (Is this even a TFRecord file?) in {path}. "
        "Please verify your warmup data is in TFRecord format."
    )
    assert value(metrics.render(), "tfaas_model_warmup_records_total", model="counting", status="DATA_LOSS") == 0


def test_a_truncated_file_fails_the_load(version, metrics):
    path = write_warmup(version, [predict_log(), predict_log()])
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataLoss, match="Please verify your warmup data is in TFRecord format"):
        load(version, metrics)


def test_a_record_that_is_not_a_prediction_log_fails_the_load(version, metrics):
    path = write_warmup(version, [predict_log(), b"\xff\xff\xff not a proto"])
    with pytest.raises(InvalidArgument, match=f"Failed to parse warmup record: .* from {path}"):
        load(version, metrics)


def test_a_failing_request_fails_the_load_naming_the_record(version, metrics):
    path = write_warmup(version, [predict_log(), predict_log(z=[[1.0]])])
    with pytest.raises(InvalidArgument) as raised:
        load(version, metrics)
    assert f"Warmup record 1 (predict_log) from {path} failed: input size does not match signature" in str(raised.value)
    assert value(metrics.render(), "tfaas_model_warmup_records_total", model="counting", status="INVALID_ARGUMENT") == 1


def test_unknown_signature_and_empty_input_fail(version, metrics):
    write_warmup(version, [predict_log("nope")])
    with pytest.raises(InvalidArgument, match='Serving signature name: "nope" not found'):
        load(version, metrics)
    write_warmup(version, [classify_log()])
    with pytest.raises(InvalidArgument, match="Input is empty."):
        load(version, metrics)


def test_session_run_logs_are_unimplemented(version, metrics):
    from tensorflow_serving.apis import prediction_log_pb2

    write_warmup(version, [prediction_log_pb2.PredictionLog(session_run_log=prediction_log_pb2.SessionRunLog())])
    with pytest.raises(Unimplemented, match="Unsupported log_type for warmup: session_run_log"):
        load(version, metrics)


def test_more_than_1000_records_fail_the_load(version, metrics):
    record = predict_log().SerializeToString()
    path = write_warmup(version, [record] * (MAX_RECORDS + 1))
    with pytest.raises(InvalidArgument, match=rf"Number of warmup records exceeds the maximum \(1000\) at {path}"):
        load(version, metrics)
    text = metrics.render()
    assert value(text, "tfaas_model_warmup_records_total", model="counting", status="INVALID_ARGUMENT") == MAX_RECORDS


def test_exactly_1000_records_are_fine(version, metrics):
    write_warmup(version, [predict_log().SerializeToString()] * MAX_RECORDS)
    servable = load(version, metrics)
    assert calls(servable) == MAX_RECORDS


def test_run_warmup_against_a_loaded_servable(version, metrics):
    servable = load(version, metrics)
    write_warmup(version, [predict_log()] * 3)
    assert run_warmup(servable, "counting", str(version), WarmupOptions(iterations=0, metrics=metrics)) == 3
    assert calls(servable) == 3  # 0 iterations mean 1, as in TF Serving


def test_warmup_errors_are_tfaas_errors_with_codes():
    assert issubclass(DataLoss, TfaasError) and DataLoss.code == "DATA_LOSS"
    assert os.path.join("assets.extra", "tf_serving_warmup_requests") in warmup_file("/m/1")
