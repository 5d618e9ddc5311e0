"""Model warmup: replay a version's recorded requests while it loads, before it is AVAILABLE.

As TF Serving does (TFSERVING.md section 6): the file is ``<version>/assets.extra/tf_serving_warmup_requests``,
a TFRecord file of ``tensorflow.serving.PredictionLog``; each record's request is run directly against the
loaded servable, ``num_request_iterations_for_warmup`` times, and its response is ignored. ``predict_log``,
``classify_log``, ``regress_log`` and ``multi_inference_log`` are replayed, ``session_run_log`` and
``predict_streamed_log`` are Unimplemented, and an empty record (no log at all) is skipped. A missing
file is fine. A file that is not TFRecord, a record that does not parse, a request that fails and more
than 1000 records each fail the load with TF Serving's message, so the manager reports END with that
error and retries, and the version that was serving keeps serving.

Differences from TF Serving: a 1001st record is refused before it runs (TF Serving runs it, then fails);
failed warmups are also counted in the metrics (TF Serving records only those that reach the end of the
file). The model spec in a record (name, version) is ignored, as in TF Serving.

TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from tfaas.codecs.examples_proto import examples
from tfaas.errors import Internal, InvalidArgument, TfaasError, Unimplemented
from tfaas.servables.servable import Servable
from tfaas.tf_serving import CLASSIFY_METHOD_NAME, DEFAULT_SIGNATURE, REGRESS_METHOD_NAME

if TYPE_CHECKING:
    from tfaas.metrics import Metrics

log = logging.getLogger("tfaas.warmup")

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # NOTE: TF Serving's WarmupConsts::kMaxNumRecords
_OP_NOISE = re.compile(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\](?:\s*name:.*)?$", re.DOTALL)


class DataLoss(Internal):
    """The warmup file is not a readable TFRecord file."""

    code = "DATA_LOSS"


@dataclass(frozen=True)
class WarmupOptions:
    """How versions warm up: ``iterations`` replays per record (``< 1`` means 1), recorded in ``metrics``
    (``None``: the process's default metrics); ``first_call``: a version without a warmup file gets a
    first call on zeros instead (``tfaas.servables.first_call``)."""

    iterations: int = 1
    metrics: Metrics | None = None
    first_call: bool = True


_options = WarmupOptions()
_options_lock = threading.Lock()


def configure(options: WarmupOptions) -> None:
    """Set the process-wide options every ``SavedModelLoader`` given none uses (the worker's ServerCore
    sets them from its settings; there is one ServerCore per worker process)."""
    global _options
    with _options_lock:
        _options = options


def current_options() -> WarmupOptions:
    """The process-wide options set by :func:`configure`."""
    return _options


def warmup_file(version_path: str) -> str:
    """Where the warmup requests of the version at ``version_path`` are."""
    return os.path.join(version_path, WARMUP_FILE)


def run_warmup(servable: Servable, model: str, version_path: str, options: WarmupOptions | None = None) -> int:
    """Replay the warmup file of ``version_path`` against ``servable``; return the number of records read.

    Raises ``TfaasError`` (``DataLoss``, ``InvalidArgument``, ``Unimplemented``, or the failing request's
    error) when the warmup fails; the caller fails the load with it.
    """
    options = options or current_options()
    path = warmup_file(version_path)
    if not os.path.isfile(path):
        log.info("No warmup data file found at %s", path)
        return 0
    iterations = max(1, options.iterations)
    log.info("Starting to read warmup data for model at %s (%d iterations per record)", path, iterations)
    started = time.monotonic()
    records, status = 0, "UNKNOWN"
    try:
        for record in _read_records(path):
            if records == MAX_RECORDS:
                raise InvalidArgument(f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
            prediction_log = _parse(record, path)
            for _ in range(iterations):
                _replay(servable, prediction_log, records, path)
            records += 1
        status = "OK"
    except TfaasError as error:
        status = error.code
        raise
    finally:
        elapsed = time.monotonic() - started
        _metrics(options).observe_warmup(
            model=model, model_path=version_path, status=status, records=records, seconds=elapsed
        )
    log.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        path,
        records,
        int(elapsed * 1e6),
    )
    return records


def _metrics(options: WarmupOptions) -> Metrics:
    if options.metrics is not None:
        return options.metrics
    from tfaas.metrics import default_metrics

    return default_metrics()


def _read_records(path: str) -> Iterator[bytes]:
    """The records of the TFRecord file at ``path``; ``DataLoss`` when it is not one (or is truncated)."""
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path):
            yield record.numpy()
    except tf.errors.DataLossError as error:
        message = _op_message(error.message)
        raise DataLoss(f"{message} in {path}. Please verify your warmup data is in TFRecord format.") from error
    except tf.errors.OpError as error:
        raise Internal(f"Reading warmup data at {path} failed: {_op_message(error.message)}") from error


def _op_message(message: str) -> str:
    """A TensorFlow op error's own words, without the function and op names eager mode wraps them in."""
    return _OP_NOISE.sub("", message).strip()


def _parse(record: bytes, path: str) -> Any:
    from google.protobuf import message
    from tensorflow_serving.apis import prediction_log_pb2

    try:
        return prediction_log_pb2.PredictionLog.FromString(record)
    except message.DecodeError:
        shown = record[:100] + (b"..." if len(record) > 100 else b"")
        raise InvalidArgument(f"Failed to parse warmup record: {shown!r} from {path}") from None


def _replay(servable: Servable, prediction_log: Any, index: int, path: str) -> None:
    """Run one record's request; its errors name the record and the file."""
    kind = prediction_log.WhichOneof("log_type")
    try:
        if kind == "predict_log":
            _predict(servable, prediction_log.predict_log.request)
        elif kind == "classify_log":
            request = prediction_log.classify_log.request
            _infer(servable, CLASSIFY_METHOD_NAME, request.model_spec.signature_name, examples(request.input))
        elif kind == "regress_log":
            request = prediction_log.regress_log.request
            _infer(servable, REGRESS_METHOD_NAME, request.model_spec.signature_name, examples(request.input))
        elif kind == "multi_inference_log":
            request = prediction_log.multi_inference_log.request
            serialized = examples(request.input)
            for task in request.tasks:
                _infer(servable, task.method_name, task.model_spec.signature_name, serialized)
        elif kind is not None:
            raise Unimplemented(f"Unsupported log_type for warmup: {kind}")
    except TfaasError as error:
        raise _with_message(error, f"Warmup record {index} ({kind}) from {path} failed: {error.message}") from error
    except Exception as error:  # NOTE: a TensorFlow error, or a TensorProto make_ndarray cannot convert
        raise InvalidArgument(
            f"Warmup record {index} ({kind}) from {path} failed: {type(error).__name__}: {error}"
        ) from error


def _with_message(error: TfaasError, message: str) -> TfaasError:
    """An error of the same kind (same code and HTTP status) as ``error``, with ``message``."""
    try:
        return type(error)(message)
    except TypeError:  # NOTE: a subclass with another constructor
        return InvalidArgument(message)


def _predict(servable: Servable, request: Any) -> None:
    import tensorflow as tf

    inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
    servable.run(request.model_spec.signature_name or DEFAULT_SIGNATURE, inputs)


def _infer(servable: Servable, method: str, signature_name: str, serialized: list[bytes]) -> None:
    from tfaas.servables.classify_regress import classify, regress

    signature_name = signature_name or DEFAULT_SIGNATURE
    if method == CLASSIFY_METHOD_NAME:
        classify(servable, signature_name, serialized)
    elif method == REGRESS_METHOD_NAME:
        regress(servable, signature_name, serialized)
    else:
        raise Unimplemented(f"Unsupported signature method_name: {method}")
