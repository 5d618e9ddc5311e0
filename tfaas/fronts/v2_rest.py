"""The Open Inference Protocol's REST API (KServe V2) under ``/v2``, over the inference service.

- ``GET /v2/health/live`` and ``/v2/health/ready``: the status code answers (200 ``{"live": true}`` /
  ``{"ready": true}``; 503 ``{"error": ...}`` while a model readiness waits for does not serve, as KServe's
  own server answers); ``GET /v2``: the server's name, version and extensions.
- ``GET /v2/models/<m>[/versions/<v>]``: the model's metadata (its ``serving_default`` signature's inputs and
  outputs); ``…/ready``: 200 when that version serves, 404 for an unknown model or version, 503 while it
  loads; ``POST …/infer``: inference (:mod:`tfaas.codecs.v2_json`, with the binary tensor data extension).
  A version is decimal, or else a version label (:mod:`tfaas.codecs.v2`).
- The model repository extension: ``POST /v2/repository/index`` lists every model the server knows and
  the state of each version; ``POST /v2/repository/models/<m>/load`` and ``…/unload`` serve a configured or
  model repository model again, or withhold it from serving until loaded again
  (:meth:`~tfaas.inference.service.InferenceService.load_model`), guarded as every call that changes models
  (:mod:`tfaas.fronts.model_management`): off unless model management is on, refused while read-only, and
  only with the admin token where one is set.

Errors are ``{"error": "..."}`` with the status of the one error hierarchy (400 for a request that does not
fit, 404 for an unknown model, version or path, 405 with ``Allow`` for another method). Every call is
recorded with the ``V2`` entrypoint, inference as ``predict``; a small infer body is answered on the event
loop (its model call awaited), a larger one and the repository's loads and unloads on the service's pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable

from tfaas.codecs import v2, v2_json
from tfaas.errors import MethodNotAllowed, NotFound, Unavailable
from tfaas.fronts import LOOP_REQUEST_BYTES, model_management
from tfaas.fronts.tf_serving_rest import BodyReader, RestAnswer
from tfaas.inference.request_metrics import V2
from tfaas.inference.service import InferenceService
from tfaas.server_core import ModelSpec

Header = Callable[[str], str | None]
"""The value of the request's header of that (lower-case) name, if it has one."""

_GET = ("GET", "HEAD", "OPTIONS")
_POST = ("OPTIONS", "POST")
_MODEL = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
_ROUTES = [
    (re.compile(r"/v2"), "server_metadata", _GET),
    (re.compile(r"/v2/health/live"), "live", _GET),
    (re.compile(r"/v2/health/ready"), "ready", _GET),
    (re.compile(_MODEL + r"/ready"), "model_ready", _GET),
    (re.compile(_MODEL + r"/infer"), "infer", _POST),
    (re.compile(_MODEL), "model_metadata", _GET),
    (re.compile(r"/v2/repository/index"), "index", _POST),
    (re.compile(r"/v2/repository/models/(?P<name>[^/]+)/load"), "load", _POST),
    (re.compile(r"/v2/repository/models/(?P<name>[^/]+)/unload"), "unload", _POST),
]
"""Each path (matched whole, case-sensitive as Triton's), its call and its methods; the first match wins."""

_APIS = {
    "server_metadata": "metadata",
    "live": "health",
    "ready": "health",
    "model_ready": "status",
    "infer": "predict",
    "model_metadata": "metadata",
    "index": "list",
    "load": "load",
    "unload": "unload",
}
"""The metrics' ``api`` label of each call (inference is ``predict``, as from every front)."""


def serves(path: str) -> bool:
    """Whether ``path`` is under ``/v2``, where this front answers every request."""
    return path == "/v2" or path.startswith("/v2/")


@dataclass(frozen=True)
class Route:
    """What a ``/v2`` request asks: its call, the model name and version string of its path, and for an
    ``OPTIONS`` request the path's methods."""

    call: str
    name: str = ""
    version: str = ""
    allowed: tuple[str, ...] = ()


def resolve(method: str, path: str) -> Route:
    """What ``method path`` asks, or the 404 (an unknown path) or 405 (another method) it gets."""
    for pattern, call, methods in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        groups = match.groupdict()
        if method in methods and method != "OPTIONS":
            return Route(call, groups.get("name") or "", groups.get("version") or "")
        if method == "OPTIONS":
            return Route("options", allowed=methods)
        raise MethodNotAllowed(f"Method {method} is not allowed for {path}", methods)
    raise NotFound(f"No Open Inference Protocol endpoint at {path}")


class V2Rest:
    """The ``/v2`` front over ``service``: one call per request, recorded in the request metrics."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service
        self._settings = service.core.settings

    async def __call__(self, method: str, path: str, read_body: BodyReader, header: Header) -> RestAnswer:
        """The answer to ``method path`` (its body read by ``read_body``); raises the error to answer with."""
        timeout = self._settings.rest_api_timeout_in_ms
        async with self._service.recorded_async("other", entrypoint=V2, timeout_ms=timeout) as record:
            route = resolve(method, path)
            if route.allowed:
                return RestAnswer([], route.allowed)
            record.api, record.model = _APIS[route.call], route.name
            return await self._calls[route.call](self, route, read_body, header)

    async def _server_metadata(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        return RestAnswer([v2_json.server_metadata()])

    async def _live(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        return RestAnswer([v2_json.dumps({"live": True})])

    async def _ready(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        not_ready = self._service.core.not_ready()
        if not_ready:
            reasons = "; ".join(f"{name}: {why}" for name, why in sorted(not_ready.items()))
            raise Unavailable(f"The server is not ready: {reasons}")
        return RestAnswer([v2_json.dumps({"ready": True})])

    async def _model_ready(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        self._service.model_ready(v2.model_spec(route.name, route.version))
        return RestAnswer([v2_json.dumps({"name": route.name, "ready": True})])

    async def _model_metadata(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        metadata = self._service.signature_metadata(v2.model_spec(route.name, route.version))
        return RestAnswer([v2_json.model_metadata(metadata)])

    async def _infer(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        spec = v2.model_spec(route.name, route.version)
        data = await read_body()
        header_length = header(v2_json.HEADER_LENGTH.lower())
        if len(data) > LOOP_REQUEST_BYTES:
            answer = await self._service.in_pool(_infer_on_this_thread, self._service, spec, data, header_length)
        else:
            call = v2_json.InferJson(data, header_length)
            answer = call.encode(await self._service.predict_async(call.request(spec)))
        headers = ((v2_json.HEADER_LENGTH, str(answer.header_length)),) if answer.header_length is not None else ()
        return RestAnswer(answer.parts, content_type=answer.content_type, headers=headers)

    async def _index(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        ready_only = v2_json.index_ready_only(v2_json.request_object(await read_body()))
        return RestAnswer([v2_json.repository_index(self._service.model_index(), ready_only)])

    async def _load(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        model_management.check_allowed(self._settings, header("authorization"))
        v2_json.check_load_parameters(v2_json.request_object(await read_body()))
        await self._service.in_pool(self._service.load_model, route.name)
        return RestAnswer([v2_json.dumps({"name": route.name, "load": True})])

    async def _unload(self, route: Route, read_body: BodyReader, header: Header) -> RestAnswer:
        model_management.check_allowed(self._settings, header("authorization"))
        v2_json.request_object(await read_body())  # NOTE: unload_dependents is moot: tfaas has no ensembles
        await self._service.in_pool(self._service.unload_model, route.name)
        return RestAnswer([v2_json.dumps({"name": route.name, "unload": True})])

    _calls: dict[str, Callable[[V2Rest, Route, BodyReader, Header], Awaitable[RestAnswer]]] = {
        "server_metadata": _server_metadata,
        "live": _live,
        "ready": _ready,
        "model_ready": _model_ready,
        "model_metadata": _model_metadata,
        "infer": _infer,
        "index": _index,
        "load": _load,
        "unload": _unload,
    }


def _infer_on_this_thread(
    service: InferenceService, spec: ModelSpec, data: bytes | bytearray, header_length: str | None
) -> v2_json.Answer:
    """All of an infer (parse, model call, encode) on the calling thread: a pool thread, for a large body."""
    call = v2_json.InferJson(data, header_length)
    return call.encode(service.predict(call.request(spec)))
