"""TF Serving's classify and regress on a servable: signature checks, the run, result checks.

Follows TF Serving's TF1 session ``classifier.cc`` / ``regressor.cc`` (signature checks, result
checks), messages included (TFSERVING.md 4.7). Results are arrays; the wire formats are the codecs'.

Method names: TF Serving checks a signature's ``method_name`` only under
``--enable_signature_method_name_check``, which is off by default (its help says to leave it off for
native TF2 models). By default any signature of the right shape serves: one input named ``inputs``
and, for classify, outputs named ``classes`` and/or ``scores``, for regress, one output named
``outputs``. So the TF2 export, whose signatures all say ``tensorflow/serving/predict``, classifies
and regresses like the TF1 one; ``check_method_name=True`` gives the flag's behaviour.

TensorFlow (for the SignatureDef text of messages) is imported inside functions only.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from tfaas.errors import InvalidArgument
from tfaas.servables.servable import Servable, SignatureInfo
from tfaas.tf_serving import CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME, shape_text

_INPUTS = "inputs"  # NOTE: the input alias classify and regress signatures must use (kClassifyInputs).
_CLASSES = "classes"
_SCORES = "scores"
_OUTPUTS = "outputs"


def classify(
    servable: Servable, signature_name: str, examples: list[bytes], *, check_method_name: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Run a classification signature on serialized tf.Examples; return its ``classes`` and ``scores``.

    Each is ``[examples, classes]``, or ``None`` where the signature has no such output. Raises
    ``InvalidArgument`` for an unknown or unfit signature and for outputs that are not classification results.
    """
    signature = _signature(servable, signature_name)
    _check_classification_signature(servable, signature, check_method_name)
    outputs = _run(servable, signature, examples)
    return _classification_outputs(signature, outputs, len(examples))


def regress(
    servable: Servable, signature_name: str, examples: list[bytes], *, check_method_name: bool = False
) -> np.ndarray:
    """Run a regression signature on serialized tf.Examples; return one float per example.

    Raises ``InvalidArgument`` for an unknown or unfit signature and for an output that is not one
    float per example (shape ``[n]`` or ``[n, 1]``).
    """
    signature = _signature(servable, signature_name)
    _check_regression_signature(servable, signature, check_method_name)
    return _regression_values(_run(servable, signature, examples)[_OUTPUTS], len(examples))


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
