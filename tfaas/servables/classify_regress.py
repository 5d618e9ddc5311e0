"""TF Serving's REST classify and regress: ``examples`` JSON to tf.Examples, and their results to JSON.

Follows TF Serving's ``util/json_tensor.cc`` (request and response JSON) and its TF1 session
``classifier.cc`` / ``regressor.cc`` (signature checks, result checks), messages included
(TFSERVING.md 4.7).

Method names: TF Serving checks a signature's ``method_name`` only under
``--enable_signature_method_name_check``, which is off by default (its help says to leave it off for
native TF2 models). By default any signature of the right shape serves: one input named ``inputs``
and, for classify, outputs named ``classes`` and/or ``scores``, for regress, one output named
``outputs``. So the TF2 export, whose signatures all say ``tensorflow/serving/predict``, classifies
and regresses like the TF1 one; ``check_method_name=True`` gives the flag's behaviour.

TensorFlow (for the tf.Example protos) is imported inside functions only.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import orjson

from tfaas.errors import InvalidArgument
from tfaas.servables.json_tensor import b64decode, floats_json, is_b64, json_text, json_type, shape_text
from tfaas.servables.servable import Servable, SignatureInfo

CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
REGRESS_METHOD_NAME = "tensorflow/serving/regress"

_INPUTS = "inputs"  # NOTE: the input alias classify and regress signatures must use (kClassifyInputs).
_CLASSES = "classes"
_SCORES = "scores"
_OUTPUTS = "outputs"
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_BYTES, _FLOAT, _INT64 = "bytes", "float", "int64"  # NOTE: Feature kinds, as TF Serving's messages name them.


def decode_examples(body: Mapping[str, Any], method: str) -> list[bytes]:
    """Turn a classify or regress body into one serialized ``tf.Example`` per entry of ``examples``.

    The optional ``context`` object's features go into every example: as in TF Serving, its serialized
    bytes are prepended to each example's, so an example's own feature wins over a context one of the
    same name. Raises ``InvalidArgument`` with TF Serving's message for anything malformed.

    ``method`` (``classify`` or ``regress``) is accepted for symmetry but changes nothing: TF Serving's
    message for a missing ``examples`` says "When method is classify" for both methods.
    """
    del method  # NOTE: TF Serving hard-codes "classify" in that message, regress included.
    context = _example_bytes(body["context"]) if "context" in body else b""
    return [context + _example_bytes(example) for example in _example_list(body)]


def classify(
    servable: Servable, signature_name: str, examples: list[bytes], *, check_method_name: bool = False
) -> bytes:
    """Run a classification signature on serialized tf.Examples; return TF Serving's response JSON.

    ``{"results": [[[label, score], ...] per example]}``: the label is ``""`` where the signature has no
    ``classes`` output, the score ``0.0`` where it has no ``scores``. Raises ``InvalidArgument`` for an
    unknown or unfit signature and for outputs that are not classification results.
    """
    signature = _signature(servable, signature_name)
    _check_classification_signature(servable, signature, check_method_name)
    outputs = _run(servable, signature, examples)
    classes, scores = _classification_outputs(signature, outputs, len(examples))
    return b'{"results":' + _classifications_json(classes, scores) + b"}"


def regress(
    servable: Servable, signature_name: str, examples: list[bytes], *, check_method_name: bool = False
) -> bytes:
    """Run a regression signature on serialized tf.Examples; return ``{"results": [value per example]}``.

    Raises ``InvalidArgument`` for an unknown or unfit signature and for an output that is not one
    float per example (shape ``[n]`` or ``[n, 1]``).
    """
    signature = _signature(servable, signature_name)
    _check_regression_signature(servable, signature, check_method_name)
    values = _regression_values(_run(servable, signature, examples)[_OUTPUTS], len(examples))
    return b'{"results":' + floats_json(values) + b"}"


# --- request: JSON to tf.Example ------------------------------------------------------------------


def _example_list(body: Mapping[str, Any]) -> list[Any]:
    """The ``examples`` array, checked as TF Serving checks it (its messages quote the whole body)."""
    if "examples" not in body:
        raise _body_error(body, "When method is classify, key 'examples' is expected and was not found")
    examples = body["examples"]
    if not isinstance(examples, list):
        raise _body_error(body, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _body_error(body, "'examples' value is an empty array")
    return examples


def _body_error(body: Mapping[str, Any], message: str) -> InvalidArgument:
    return InvalidArgument(f"JSON Value: {json_text(body)} {message}")


def _example_bytes(value: Any) -> bytes:
    """One JSON object of features as a serialized ``tf.Example``."""
    from tensorflow.core.example import example_pb2

    if not isinstance(value, dict):
        raise InvalidArgument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, content in value.items():
        _fill_feature(features[name], name, content if isinstance(content, list) else [content])
    return example.SerializeToString()


def _fill_feature(feature: Any, name: str, values: Sequence[Any]) -> None:
    """Put ``values`` into ``feature``, all of the kind the first one has (an empty list: no kind)."""
    kind = None
    converted = []
    for value in values:
        value_kind = _value_kind(name, value)
        if kind is None:
            kind = value_kind
        elif value_kind != kind:
            raise InvalidArgument(f"Unexpected element type in feature: {name} expecting type: {kind}")
        converted.append(_converted(name, kind, value))
    if kind == _BYTES:
        feature.bytes_list.value.extend(converted)
    elif kind == _FLOAT:
        feature.float_list.value.extend(converted)  # NOTE: stored as float32; beyond its range, +-inf.
    elif kind == _INT64:
        feature.int64_list.value.extend(converted)


def _value_kind(name: str, value: Any) -> str:
    """The Feature kind a JSON value belongs to, as rapidjson types it; null, arrays and objects fail."""
    if isinstance(value, bool):  # NOTE: before int, which bool subclasses.
        return _INT64
    if isinstance(value, int):
        # NOTE: rapidjson reads an integer beyond [int64 min, uint64 max] as a double (orjson as a float).
        return _INT64 if _INT64_MIN <= value <= _UINT64_MAX else _FLOAT
    if isinstance(value, float):
        return _FLOAT
    if isinstance(value, str) or is_b64(value):
        return _BYTES
    raise InvalidArgument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")


def _converted(name: str, kind: str, value: Any) -> Any:
    """``value`` as an element of a ``kind`` list; checked only once its kind matched the feature's."""
    if kind == _BYTES:
        return value.encode("utf-8") if isinstance(value, str) else b64decode(value["b64"])
    if kind == _FLOAT:
        return _as_double(value)
    if value > _INT64_MAX:
        raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
    return int(value)  # NOTE: True and False become 1 and 0.


def _as_double(value: float | int) -> float:
    """A JSON number as the double rapidjson reads it: integers beyond float64's range become +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


# --- signatures -----------------------------------------------------------------------------------


def _signature(servable: Servable, signature_name: str) -> SignatureInfo:
    """The named signature; TF Serving's classify/regress message (not predict's) when there is none."""
    signature = servable.signatures.get(signature_name)
    if signature is None:
        raise InvalidArgument(f"No signature was found with the name: {signature_name}")
    return signature


def _check_classification_signature(servable: Servable, signature: SignatureInfo, check_method_name: bool) -> None:
    """TF Serving's ``PreProcessClassification``: one input ``inputs``, outputs ``classes``/``scores``."""
    _check_method_name(signature, CLASSIFY_METHOD_NAME, "classification", check_method_name)
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise InvalidArgument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if _INPUTS not in signature.inputs:
        raise InvalidArgument(f"No classification inputs found in SignatureDef: {_debug_string(servable, signature)}")
    if _CLASSES not in signature.outputs and _SCORES not in signature.outputs:
        raise InvalidArgument(
            f'Expected classification signature outputs to contain at least one of "{_CLASSES}" or '
            f'"{_SCORES}". Signature was: {_debug_string(servable, signature)}'
        )


def _check_regression_signature(servable: Servable, signature: SignatureInfo, check_method_name: bool) -> None:
    """TF Serving's ``PreProcessRegression``: one input ``inputs``, one output ``outputs``."""
    _check_method_name(signature, REGRESS_METHOD_NAME, "regression", check_method_name)
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise InvalidArgument("Expected one output Tensor.")
    if _INPUTS not in signature.inputs:
        raise InvalidArgument(f"No regression inputs found in SignatureDef: {_debug_string(servable, signature)}")
    if _OUTPUTS not in signature.outputs:
        raise InvalidArgument(f"No regression outputs found in SignatureDef: {_debug_string(servable, signature)}")


def _check_method_name(signature: SignatureInfo, expected: str, kind: str, check_method_name: bool) -> None:
    """``--enable_signature_method_name_check``: the signature must declare ``expected``."""
    if check_method_name and signature.method_name != expected:
        raise InvalidArgument(f"Expected {kind} signature method_name to be {expected}. Was: {signature.method_name}")


def _debug_string(servable: Servable, signature: SignatureInfo) -> str:
    """The SignatureDef in protobuf text format, as TF Serving's messages quote it (``DebugString``)."""
    from google.protobuf import json_format, text_format
    from tensorflow.core.protobuf import meta_graph_pb2

    as_json = servable.signature_def_map_json()["signature_def"][signature.name]
    return text_format.MessageToString(json_format.ParseDict(as_json, meta_graph_pb2.SignatureDef()))


def _run(servable: Servable, signature: SignatureInfo, examples: list[bytes]) -> dict[str, np.ndarray]:
    """Feed the serialized examples, a DT_STRING vector, to the signature's input and run it."""
    batch = np.empty(len(examples), dtype=object)
    batch[:] = examples  # NOTE: slice assignment keeps each bytes object whole.
    return servable.run(signature.name, {_INPUTS: batch})


# --- response -------------------------------------------------------------------------------------


def _classification_outputs(
    signature: SignatureInfo, outputs: Mapping[str, np.ndarray], num_examples: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ``classes`` and ``scores`` outputs the signature has, checked as TF Serving checks them."""
    classes = scores = None
    if _CLASSES in signature.outputs:
        classes = _classification_output(outputs[_CLASSES], _CLASSES, "DT_STRING", num_examples)
    if _SCORES in signature.outputs:
        scores = _classification_output(outputs[_SCORES], _SCORES, "DT_FLOAT", num_examples)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidArgument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    return classes, scores


def _classification_output(output: np.ndarray, alias: str, dtype: str, num_examples: int) -> np.ndarray:
    """``classes`` (DT_STRING) or ``scores`` (DT_FLOAT), which must have shape ``[num_examples, num_classes]``."""
    array = np.asarray(output)
    if array.ndim != 2:
        raise InvalidArgument(f"Expected Tensor shape: [batch_size num_classes] but got {shape_text(array.shape)}")
    if _dtype_name(array) != dtype:
        raise InvalidArgument(f"Expected {alias} Tensor of {dtype}. Got: {_dtype_name(array)}")
    if array.shape[0] != num_examples:
        raise InvalidArgument(f"Expected {alias} output batch size of {num_examples}. Got: {array.shape[0]}")
    return array


def _classifications_json(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """``[[[label, score], ...] per example]``, the scores in the predict codec's float format."""
    num_examples, num_classes = (classes if classes is not None else scores).shape
    cells = num_examples * num_classes
    labels = [_label_json(label) for label in classes.ravel().tolist()] if classes is not None else [b'""'] * cells
    pairs = [b"[" + label + b"," + score + b"]" for label, score in zip(labels, _scores_json(scores, cells))]
    rows = (b"[" + b",".join(pairs[row * num_classes : (row + 1) * num_classes]) + b"]" for row in range(num_examples))
    return b"[" + b",".join(rows) + b"]"


def _scores_json(scores: np.ndarray | None, cells: int) -> list[bytes]:
    """The JSON text of each score in row-major order; ``0.0`` each without scores (the unset proto value)."""
    if not cells:
        return []
    flat = scores.ravel() if scores is not None else np.zeros(cells, dtype=np.float32)
    # NOTE: numbers hold no commas, so the flat list's commas separate exactly one score from the next.
    return floats_json(flat)[1:-1].split(b",")


def _label_json(label: Any) -> bytes:
    """A class label as a JSON string (invalid UTF-8 replaced: JSON text cannot carry raw bytes)."""
    text = label.decode("utf-8", errors="replace") if isinstance(label, bytes) else str(label)
    return orjson.dumps(text)


def _regression_values(output: np.ndarray, num_examples: int) -> np.ndarray:
    """The ``outputs`` tensor as one float per example, checked as TF Serving's ``PostProcessRegressionResult``."""
    array = np.asarray(output)
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise InvalidArgument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            + shape_text(array.shape)
        )
    if array.shape[0] != num_examples:
        raise InvalidArgument(f"Input batch size did not match output batch size: {num_examples} vs. {array.shape[0]}")
    if _dtype_name(array) != "DT_FLOAT":
        raise InvalidArgument(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(array)}")
    return array.ravel()


def _dtype_name(array: np.ndarray) -> str:
    """TF's DataType name for a numpy output (``DT_STRING`` for bytes and str arrays)."""
    if array.dtype.kind in "OSU":
        return "DT_STRING"
    if array.dtype == np.float32:
        return "DT_FLOAT"  # NOTE: the one numeric dtype results take, named without importing TensorFlow.
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(tf.dtypes.as_dtype(array.dtype).as_datatype_enum)
