"""Simple TensorFlow Serving's inference (``POST /``) over the inference service (its ``gen_json`` and
``gen_client`` calls are in :mod:`tfaas.fronts.sts_clients`). ``GET /`` (STS's dashboard) is tfaas's
dashboard (:mod:`tfaas.fronts.dashboard`); other methods on ``/`` are a 405.

STS answers every failed inference with a 400; so does this front where the request names what is not
there (an unknown model, with STS's message, or version), or feeds what does not fit. Where STS fails with
a 500 (a TensorFlow error, an unknown version, a form with no image, a model's string outputs), the
answer is a 400 with a message of our own; a version still loading stays a 503. A JSON body as small as
those TF Serving's REST front answers on the event loop is answered there too, its model call awaited;
anything else (a large body, a form, whose files Werkzeug may spool to disk) does all its work on the
service's pool.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from tfaas.codecs import sts_json
from tfaas.codecs.sts_json import StsCall
from tfaas.errors import InvalidArgument, MethodNotAllowed, NotFound
from tfaas.fronts import LOOP_REQUEST_BYTES
from tfaas.fronts.tf_serving_rest import BodyReader, RestAnswer
from tfaas.inference.request_metrics import RequestRecord
from tfaas.inference.service import InferenceService

DASHBOARD_METHODS = ("GET", "HEAD")
"""The methods of ``/`` that are the dashboard's, not this front's."""

ALLOWED = (*DASHBOARD_METHODS, "OPTIONS", "POST")
"""The methods of ``/``, which this front names in its 405s and ``OPTIONS`` answers."""


def serves(method: str, path: str) -> bool:
    """Whether this front answers ``method path``: ``/`` (whose ``POST`` is STS's inference), but for the
    dashboard's methods."""
    return path == "/" and method not in DASHBOARD_METHODS


class StsFront:
    """``/`` over ``service``: a ``POST`` is one call, recorded in the request metrics as a predict; other
    methods are a 405 (``OPTIONS`` names the allowed ones)."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service
        self._timeout_ms = service.core.settings.rest_api_timeout_in_ms

    async def __call__(self, method: str, content_type: str | None, read_body: BodyReader) -> RestAnswer:
        """The answer to ``method /``; raises the ``TfaasError`` to answer with."""
        if method == "OPTIONS":
            return RestAnswer([], ALLOWED)
        if method != "POST":
            raise MethodNotAllowed(f"Method {method} is not allowed for /", ALLOWED)
        return RestAnswer(await self._predict(content_type, read_body))

    async def _predict(self, content_type: str | None, read_body: BodyReader) -> list[bytes]:
        """``POST /``: the answer's body in pieces."""
        async with self._service.recorded_async("predict", timeout_ms=self._timeout_ms) as record:
            data = await read_body()
            if len(data) > LOOP_REQUEST_BYTES or (content_type or "").lower().startswith("multipart/"):
                return await self._service.in_pool(self._predict_on_this_thread, data, content_type, record)
            call = _parsed(data, content_type, record)
            with self._sts_errors(call):
                return sts_json.encode_answer(await self._service.predict_async(call.request()))

    def _predict_on_this_thread(
        self, data: bytes | bytearray, content_type: str | None, record: RequestRecord
    ) -> list[bytes]:
        """All of ``POST /`` (parse, model call, encode) on the calling thread: a pool thread."""
        call = _parsed(data, content_type, record)
        with self._sts_errors(call):
            return sts_json.encode_answer(self._service.predict(call.request()))

    @contextmanager
    def _sts_errors(self, call: StsCall) -> Iterator[None]:
        """The service's errors for ``call`` as STS answers them (see :meth:`_sts_error`)."""
        try:
            yield
        except (NotFound, InvalidArgument) as error:
            raise self._sts_error(call, error) from None

    def _sts_error(self, call: StsCall, error: NotFound | InvalidArgument) -> InvalidArgument:
        """The 400 STS answers with: its messages for an unknown model or signature, else ``error``'s.

        NOTE: the service refuses an unknown signature before it decodes the inputs, and nothing else it
        refuses before then is an ``InvalidArgument``: an error with the inputs never decoded is that one.
        """
        if isinstance(error, NotFound):
            models = [listing.name for listing in self._service.list_models()]
            if call.model_name not in models:
                return sts_json.unknown_model(call.model_name, models)
        elif not call.decoded:
            return sts_json.unknown_signature(call.signature_name)
        return error if isinstance(error, InvalidArgument) else InvalidArgument(error.message)


def _parsed(data: bytes | bytearray, content_type: str | None, record: RequestRecord) -> StsCall:
    """The request, parsed; its model named in the request's metrics."""
    call = sts_json.parse_request(data, content_type)
    record.model = call.model_name
    return call
