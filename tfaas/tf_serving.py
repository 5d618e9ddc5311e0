"""TF Serving's names and limits, shared by every layer (servables, inference, codecs, fronts).

Facts of TF Serving's wire formats and signatures, kept in one place so that a front, a codec and the
servables cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Sequence

DEFAULT_SIGNATURE = "serving_default"
"""The signature a request that names none runs (``kDefaultServingSignatureDefKey``)."""

PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
REGRESS_METHOD_NAME = "tensorflow/serving/regress"

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")


def without_op_suffix(message: str) -> str:
    """A TensorFlow error message without the `` [Op:Name]`` eager execution appends (TF Serving's graph
    sessions never print it); the message itself where nothing would be left."""
    return _OP_SUFFIX.sub("", message).strip() or message


def shape_text(shape: Sequence[int]) -> str:
    """A concrete shape as TF Serving's messages write it: ``[2,3]`` (``TensorShape::DebugString``)."""
    return "[" + ",".join(map(str, shape)) + "]"
