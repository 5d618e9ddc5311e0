"""The REST predict codec's life cycle of a body: parsed, decoded once for the signature, then let go."""

from __future__ import annotations

import numpy as np
import pytest

from tfaas.codecs.tf_serving_json import PredictJson
from tfaas.inference.types import PredictResult, ServedSpec
from tfaas.servables.servable import SignatureInfo, TensorInfo
from tfaas.server_core import ModelSpec

SIGNATURE = SignatureInfo("s", "tensorflow/serving/predict", {"x": TensorInfo("x", "x:0", "DT_DOUBLE", None)}, {})


@pytest.mark.parametrize(
    "text,columnar,answer",
    [
        (b'{"instances": [[1.5]], "signature_name": "s"}', False, b'{"predictions":[[3.0]]}'),
        (b'{"inputs": [[1.5]], "signature_name": "s"}', True, b'{"outputs":[[3.0]]}'),
    ],
)
def test_the_body_is_let_go_once_decoded_and_the_answer_takes_its_format(text, columnar, answer):
    data = bytearray(text)
    call = PredictJson(data)
    request = call.request(ModelSpec("m"))
    assert (request.signature_name, request.spec) == ("s", ModelSpec("m"))
    inputs = request.inputs(SIGNATURE)
    assert inputs["x"].dtype == np.float64 and inputs["x"].tolist() == [[1.5]]
    assert data == b"" and call.columnar == columnar  # NOTE: the bytearray emptied
    assert call.encode(PredictResult(ServedSpec("m", 1, "s"), {"y": 2 * inputs["x"]})) == [answer]
