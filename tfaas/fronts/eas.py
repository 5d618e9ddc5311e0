"""PAI-EAS's TensorFlow processor API over the inference service: ``/api/predict/<model>``, where EAS's
service name is the model's name (its latest available version answers).

- ``POST`` with a serialized EAS ``PredictRequest`` → a serialized ``PredictResponse``
  (``application/octet-stream``), through :mod:`tfaas.codecs.eas_proto`.
- An empty request, ``GET`` or a ``POST`` without a body → EAS's model structure JSON.

With ``--eas_token`` set, every call needs the token, raw or signed (:mod:`tfaas.fronts.eas_auth`); a 401
carries ``WWW-Authenticate: EAS``. Errors are the service's own, answered by the Flask app as
``{"error": ...}``, with the statuses EAS's SDK reads (it raises ``PredictException(status, body)`` for any
but 200): 400 for a request the model refuses, 401, 404 for an unknown model, 503 while it loads; never
a 5xx for a client's mistake, since the SDK retries those.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, request

from tfaas.codecs import eas_proto
from tfaas.errors import Unauthenticated
from tfaas.fronts.eas_auth import SCHEME, check_token
from tfaas.inference.service import InferenceService
from tfaas.server.errors import error_answer
from tfaas.server_core import ModelSpec

PREFIX = "/api/predict/"

blueprint = Blueprint("eas", __name__)


def _service() -> InferenceService:
    return current_app.extensions["tfaas.service"]


@blueprint.route(PREFIX + "<model>", methods=["GET", "POST"])
def predict(model: str) -> Response:
    """``/api/predict/<model>``: a prediction, or the model structure for an empty request."""
    data = request.get_data()  # NOTE: read first: Werkzeug's 413 is no inference request to count
    describe = request.method != "POST" or not data
    inference = _service()
    with inference.recorded("metadata" if describe else "predict", model):
        check_token(
            inference.core.settings.eas_token, request.method, PREFIX + model, request.headers, data, time.time()
        )
        spec = ModelSpec(model)
        if describe:
            return Response(eas_proto.structure_json(inference.metadata(spec)), mimetype="application/json")
        result = inference.predict(eas_proto.predict_request(spec, eas_proto.parse_request(data)))
        return Response(eas_proto.encode_response(result), mimetype="application/octet-stream")


@blueprint.errorhandler(Unauthenticated)
def _unauthenticated(error: Unauthenticated) -> Response:
    """The app's 401, with the challenge RFC 9110 asks of one."""
    status, body, headers = error_answer(error)
    return Response(body, status, headers=[*headers, ("WWW-Authenticate", SCHEME)], mimetype="application/json")
