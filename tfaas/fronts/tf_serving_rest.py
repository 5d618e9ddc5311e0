"""TF Serving's REST API under ``/v1`` over the inference service: predict, classify, regress, metadata,
status, and a model list (TF Serving has no such call; its users have asked since 2018, TF Serving #795).

Paths are matched with TF Serving's own (case-insensitive) patterns, so the same URLs match and the same
URLs are refused: a model name cannot contain ``/`` or ``:``, a version is decimal, and anything else under
``/v1`` is a 400 "Malformed request" — but for Simple TensorFlow Serving's ``/v1/models/<name>/gen_json``
and ``gen_client``, paths TF Serving does not have (:mod:`tfaas.fronts.sts_clients` answers them). A known
path asked with another method is a 405 whose ``Allow`` names the path's methods; ``OPTIONS`` answers with
them.

A small predict body (up to :data:`~tfaas.fronts.LOOP_REQUEST_BYTES`) is parsed and its answer encoded on
the event loop, the model call awaited (:meth:`InferenceService.predict_async`); a larger one does all its
work on the service's pool, as every other call does. Errors leave as the ``TfaasError`` TF Serving answers with; the
transport writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import parse_qs

from tfaas.codecs import tf_serving_json as codec
from tfaas.errors import InvalidArgument, MethodNotAllowed
from tfaas.fronts import LOOP_REQUEST_BYTES, sts_clients
from tfaas.inference.service import InferenceService
from tfaas.server_core import ModelSpec
from tfaas.tf_serving import INT64_MAX

BodyReader = Callable[[], Awaitable[bytes | bytearray]]

_SPEC = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_POST_PATH = re.compile(_SPEC + r":(?P<verb>predict|classify|regress)", re.IGNORECASE)
_GET_PATH = re.compile(_SPEC + r"(?P<metadata>/metadata)?", re.IGNORECASE)
_LIST_PATH = re.compile(r"/v1/models/?", re.IGNORECASE)
_STS_PATH = re.compile(r"/v1/models/(?P<name>[^/:]+)/(?P<call>gen_json|gen_client)")  # NOTE: as STS's, case-sensitive
_POST_METHODS = ("OPTIONS", "POST")
_GET_METHODS = ("GET", "HEAD", "OPTIONS")


def serves(path: str) -> bool:
    """Whether ``path`` is under ``/v1`` (in any case), where this front answers every request."""
    return path[:4].lower() == "/v1/" or path.lower() == "/v1"


@dataclass
class RestAnswer:
    """A response: its body in pieces (see ``json_tensor.encode_predict_parts``), its content type and any
    other ``headers``; ``allowed`` is set for an ``OPTIONS`` answer, with no body and no type."""

    parts: list[bytes]
    allowed: tuple[str, ...] = field(default=())
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Route:
    """What a ``/v1`` request asks: the API (its metrics label) and the model spec of its path; ``allowed``
    are a path's methods, for an ``OPTIONS`` request."""

    api: str
    spec: ModelSpec | None = None
    allowed: tuple[str, ...] = ()


class TfServingRest:
    """The ``/v1`` front over ``service``: one call per request, recorded in the request metrics."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service
        self._timeout_ms = service.core.settings.rest_api_timeout_in_ms

    async def __call__(
        self, method: str, path: str, read_body: BodyReader, query: str = "", origin: Callable[[], str] = lambda: ""
    ) -> RestAnswer:
        """The answer to ``method path``, whose body ``read_body`` reads; raises what TF Serving answers with.

        ``query`` (the query string) and ``origin`` (which tells ``http://host:port`` as the client reached
        the server) matter to ``gen_client`` only.
        """
        async with self._service.recorded_async("other", timeout_ms=self._timeout_ms) as record:
            route = resolve(method, path)
            record.api, record.model = route.api, route.spec.name if route.spec is not None else ""
            if route.allowed:
                return RestAnswer([], route.allowed)
            if route.api == "gen_client":
                language = parse_qs(query).get("language", [""])[0]
                source = await self._service.in_pool(
                    sts_clients.gen_client, self._service, route.spec, language, origin()
                )
                return RestAnswer([source], content_type="text/plain; charset=utf-8")
            data = await read_body() if method == "POST" else b""
            if route.api == "predict":
                return RestAnswer(await self._predict(route.spec, data))
            return RestAnswer([await self._service.in_pool(_CALLS[route.api], self._service, route.spec, data)])

    async def _predict(self, spec: ModelSpec, data: bytes | bytearray) -> list[bytes]:
        """``POST …:predict`` in the row (``instances``) or columnar (``inputs``) format."""
        if len(data) > LOOP_REQUEST_BYTES:
            return await self._service.in_pool(_predict_on_this_thread, self._service, spec, data)
        call = codec.PredictJson(data)
        return call.encode(await self._service.predict_async(call.request(spec)))


def resolve(method: str, path: str) -> Route:
    """What the ``/v1`` request ``method path`` asks, or the 400/405 TF Serving answers."""
    if post := _POST_PATH.fullmatch(path):
        if method == "POST":
            return Route(post.group("verb").lower(), model_spec(post))
        allowed = _POST_METHODS
    elif get := _GET_PATH.fullmatch(path):
        if method in ("GET", "HEAD"):
            return Route("metadata" if get.group("metadata") else "status", model_spec(get))
        allowed = _GET_METHODS
    elif _LIST_PATH.fullmatch(path):
        if method in ("GET", "HEAD"):
            return Route("list")
        allowed = _GET_METHODS
    elif sts := _STS_PATH.fullmatch(path):
        if method in ("GET", "HEAD"):
            return Route(sts.group("call"), ModelSpec(sts.group("name")))
        allowed = _GET_METHODS
    else:
        raise InvalidArgument(f"Malformed request: {method} {path}")
    if method == "OPTIONS":
        return Route("other", allowed=allowed)
    raise MethodNotAllowed(f"Method {method} is not allowed for {path}", allowed)


def model_spec(match: re.Match[str]) -> ModelSpec:
    """The model spec of a matched path; a 400 for a version beyond int64, as TF Serving answers."""
    version = match.group("version")
    if version is not None and int(version) > INT64_MAX:
        raise InvalidArgument(f"Failed to convert version: {version} to numeric.")
    return ModelSpec(
        name=match.group("name"),
        version=int(version) if version is not None else None,
        label=match.group("label"),
    )


def _predict_on_this_thread(service: InferenceService, spec: ModelSpec, data: bytes | bytearray) -> list[bytes]:
    """All of a predict (parse, model call, encode) on the calling thread: a pool thread, for a large body."""
    call = codec.PredictJson(data)
    return call.encode(service.predict(call.request(spec)))


def _classify(service: InferenceService, spec: ModelSpec, data: bytes | bytearray) -> bytes:
    """``POST …:classify``: ``examples`` (and ``context``) as tf.Examples → ``[[label, score], …]``."""
    return codec.classify_answer(service.classify(codec.examples_request(spec, data, "classify")))


def _regress(service: InferenceService, spec: ModelSpec, data: bytes | bytearray) -> bytes:
    """``POST …:regress``: ``examples`` (and ``context``) as tf.Examples → one float per example."""
    return codec.regress_answer(service.regress(codec.examples_request(spec, data, "regress")))


def _metadata(service: InferenceService, spec: ModelSpec, data: bytes) -> bytes:
    """``GET …/metadata``: the version's SignatureDefs."""
    return codec.metadata_answer(service.metadata(spec))


def _status(service: InferenceService, spec: ModelSpec, data: bytes) -> bytes:
    """``GET /v1/models/<name>[/versions/N]``. NOTE: like TF Serving, a label in the path is accepted and
    ignored (all versions are listed)."""
    return codec.status_answer(service.status(spec.name, spec.version))


def _list(service: InferenceService, spec: None, data: bytes) -> bytes:
    """``GET /v1/models``: every served model with its labels and version states."""
    return codec.models_answer(service.list_models())


def _gen_json(service: InferenceService, spec: ModelSpec, data: bytes) -> bytes:
    """Simple TensorFlow Serving's ``GET /v1/models/<name>/gen_json``: an example request for ``POST /``."""
    return sts_clients.gen_json(service, spec)


_CALLS: dict[str, Callable[..., bytes]] = {
    "classify": _classify,
    "regress": _regress,
    "metadata": _metadata,
    "status": _status,
    "list": _list,
    "gen_json": _gen_json,
}
"""The calls other than predict, by API: each runs on the service's pool."""
