"""TFaaS's HTTP API, so clients of the older Go service keep working unchanged.

``/upload``, ``/delete``, ``/models``, ``/json``, ``/proto``, ``/image``, ``/params``, ``/status`` and
the ``/predict/*`` aliases, at the root and under an optional prefix. Models live in the model
repository (``tfaas.model_repository``): an upload becomes the next version of its model and is
hot-swapped in by the lifecycle like any other version.

Where TFaaS is unsafe or broken, this does better (see README, "TFaaS API"): every error is a 4xx/5xx
JSON ``{"error": ...}`` instead of a dropped connection; tarballs are checked member by member;
uploads are bounded, atomic and versioned; ``op`` is optional; labels are applied to ``/proto`` and
``/image`` answers; the write calls are off unless ``enable_model_management`` turns them on, and a token
can guard them (:mod:`tfaas.fronts.model_management`, the guard of every call that changes models).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from google.protobuf.message import DecodeError

from tfaas.codecs.tfaas import VersionFiles, first_row, image_request, row_request, top_labels
from tfaas.errors import InvalidArgument, NotFound, Unavailable
from tfaas.fronts import model_management
from tfaas.inference.service import InferenceService
from tfaas.model_names import check_model_name
from tfaas.model_repository import ModelRepository
from tfaas.protos import tfaas_pb2
from tfaas.servables.model_params import PARAMS_JSON, parse_params, stored_file_name
from tfaas.server_core import ModelSpec, ServerCore

_STARTED = time.time()


def register(app: Flask, prefix: str) -> None:
    """Serve TFaaS's API at the root, and under ``prefix`` too when one is set."""
    app.register_blueprint(_blueprint("tfaas_api"))
    if prefix:
        app.register_blueprint(_blueprint("tfaas_api_prefixed"), url_prefix=prefix)


def _core() -> ServerCore:
    return current_app.extensions["tfaas.core"]


def _service() -> InferenceService:
    return current_app.extensions["tfaas.service"]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status, mimetype="application/json")


# ---- write calls ------------------------------------------------------------------------------------


def _writable_repository() -> ModelRepository:
    """The repository, once the request may write to it (model management on, the admin token if set)."""
    core = _core()
    model_management.check_allowed(core.settings, request.headers.get("Authorization"))
    refused = model_management.upload_refusal(core.settings)
    if refused is not None:
        raise refused
    assert core.repository is not None  # NOTE: built from model_repository, which upload_refusal checked
    return core.repository


def upload() -> Response:
    """``POST /upload``: a multipart form (name, params, model, labels[, op]) or a tar bundle."""
    request.max_content_length = _core().settings.max_upload_bytes  # NOTE: larger than other bodies may be
    repository = _writable_repository()
    if "form-data" in request.headers.get("Content-Type", "").lower():
        name, version = _form_upload(repository)
    else:
        compressed = request.headers.get("Content-Encoding", "").lower() == "gzip"
        name, version = repository.add_bundle(request.stream, compressed)
    _core().refresh_repository()
    return _json({"name": name, "version": version})


def _form_upload(repository: ModelRepository) -> tuple[str, int]:
    name = check_model_name(request.form.get("name", ""))
    params_bytes, model_part = _file_part("params").read(), _file_part("model")
    params = parse_params(params_bytes, "params")
    if params.name and params.name != name:
        raise InvalidArgument(f"The form's name {name!r} differs from params.json's name {params.name!r}")
    model_name = os.path.basename(model_part.filename or "")
    if params.model and params.model != model_name:
        raise InvalidArgument(f"params.json names model file {params.model!r} but {model_name!r} was uploaded")
    files = {PARAMS_JSON: params_bytes}
    _add_part(files, "model", model_name, _model_bytes(model_part.read()))
    if "labels" in request.files:
        labels = request.files["labels"]
        # NOTE: where params.json says the labels are, whatever the client called its file.
        labels_name = stored_file_name(params.labels) or os.path.basename(labels.filename or "") or "labels.txt"
        _add_part(files, "labels", labels_name, labels.read())
    return name, repository.add_version(name, files)


def _add_part(files: dict[str, bytes], field: str, file_name: str, data: bytes) -> None:
    """Add a form part to the upload's files, refusing one that would overwrite another (labels named params.json)."""
    if file_name in files:
        raise InvalidArgument(
            f"The {field} part would be written to {file_name!r}, which another part of the upload already is"
        )
    files[file_name] = data


def _file_part(field: str) -> Any:
    part = request.files.get(field)
    if part is None:
        raise InvalidArgument(f"request does not provide {field}")
    return part


def _model_bytes(data: bytes) -> bytes:
    """The model part, base64-decoded when the request says ``Content-Encoding: base64`` (TFaaS's client)."""
    if request.headers.get("Content-Encoding", "").lower() != "base64":
        return data
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error as exc:
        raise InvalidArgument(f"unable to decode the base64 model part: {exc}") from None


def delete(model: str | None = None) -> Response:
    """``DELETE /delete`` (form field ``model``) or ``DELETE /delete/<model>``."""
    repository = _writable_repository()
    name = model or request.form.get("model", "")
    if not name:
        raise InvalidArgument("no model name is provided")
    repository.delete(name)
    _core().refresh_repository()
    return _json({"deleted": name})


def set_params() -> Response:
    """``POST /params``: choose the model ``/json`` and ``/proto`` use when a request names none."""
    repository = _writable_repository()
    params = parse_params(request.get_data(), "request body")
    if params.name not in _core().model_names:
        raise NotFound(f"Unknown model {params.name!r}")
    repository.set_default_model(params.name)
    return _json({"default_model": params.name})


# ---- read calls -------------------------------------------------------------------------------------


def get_params(model: str) -> Response:
    """``GET /params/<model>``: the params.json of the version that serves, as uploaded."""
    with _core().get_handle(ModelSpec(check_model_name(model))) as handle:
        path = os.path.join(handle.servable.path, "params.json")
        if not os.path.isfile(path):
            raise NotFound(f"Model {model} has no params.json")
        with open(path, "rb") as params_file:
            return Response(params_file.read(), mimetype="application/json")


def models() -> Response:
    """``GET /models``: TFaaS's params objects, plus the version that serves and its state."""
    core = _core()
    return _json([_model_entry(core, name) for name in core.model_names])


def _model_entry(core: ServerCore, name: str) -> dict[str, Any]:
    """TFaaS's params keys, the version that serves and its state; else the newest version's state and
    the error that ended it, if one did (an upload that cannot load says why here)."""
    latest = next(iter(core.states(name).values()), None)
    try:
        with core.get_handle(ModelSpec(name)) as handle:
            params = handle.servable.params
            entry = params.to_json_dict() if params else _default_params(name)
            entry.update(version=handle.id.version, state="AVAILABLE", error="")
            return entry
    except (NotFound, Unavailable):
        state, error = (latest.state.name, latest.error or "") if latest else ("START", "")
        return {**_default_params(name), "version": None, "state": state, "error": error}


def _default_params(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": "saved_model.pb",
        "labels": "",
        "op": "",
        "input_name": "",
        "output_name": "",
        "img_channels": 0,
        "options": None,
        "input_node": "",
        "output_node": "",
        "description": "",
        "timestamp": "",
    }


def predict_json() -> Response:
    """``POST /json``: ``{"keys": [...], "values": [...], "model": "..."}`` → the first output row."""
    data = request.get_data()  # NOTE: read first: Werkzeug's 413 is no inference request to count
    with _service().recorded("predict") as record:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"unable to unmarshal Row: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidArgument("unable to unmarshal Row: expected a JSON object")
        values = body.get("values")
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise InvalidArgument("'values' must be a list of numbers")
        model = body.get("model") or ""
        if not isinstance(model, str):
            raise InvalidArgument("'model' must be a string")
        record.model = _model_or_default(model)
        result = _service().predict(row_request(ModelSpec(record.model), values))
        return _json(first_row(result))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def predict_proto() -> Response:
    """``POST /proto``: a ``tfaaspb.Row`` → ``tfaaspb.Predictions`` (with labels, unlike TFaaS)."""
    data = request.get_data()  # NOTE: read first, as for /json
    with _service().recorded("predict") as record:
        row = tfaas_pb2.Row()
        try:
            row.ParseFromString(data)
        except DecodeError as exc:
            raise InvalidArgument(f"unable to unmarshal Row: {exc}") from None
        record.model, version = _model_or_default(row.model), VersionFiles()
        probabilities = first_row(_service().predict(row_request(ModelSpec(record.model), list(row.value), version)))
        labels = version.labels
        answer = tfaas_pb2.Predictions(
            prediction=[
                tfaas_pb2.Class(label=labels[i] if i < len(labels) else "", probability=p)
                for i, p in enumerate(probabilities.tolist())
            ]
        )
        return Response(answer.SerializeToString(), mimetype="application/octet-stream")


def _model_or_default(model: str) -> str:
    if model:
        return check_model_name(model)
    repository = _core().repository
    default = repository.default_model() if repository else ""
    if not default:
        raise InvalidArgument("The request names no model and no default model is set (POST /params)")
    return default


def predict_image() -> Response:
    """``POST /image``: multipart ``image`` + ``model`` → top-5 labels, or the scores without labels."""
    form = request.form  # NOTE: read first, as for /json
    with _service().recorded("predict") as record:
        model = form.get("model", "")
        if not model:
            raise InvalidArgument("unable to read model: the form has no 'model' field")
        image = _file_part("image")
        record.model, version = check_model_name(model), VersionFiles()
        probabilities = first_row(_service().predict(image_request(ModelSpec(record.model), image.read(), version)))
        if not version.labels:
            return _json(probabilities)
        best = top_labels(probabilities, version.labels)
        return _json({"filename": image.filename, "labels": [{"label": lb, "probability": p} for lb, p in best]})


def status() -> Response:
    """``GET /status``: TFaaS's server status (load, memory, uptime, request counts) and the models."""
    load1, load5, load15 = os.getloadavg()
    return _json(
        {
            "Load": {"load1": load1, "load5": load5, "load15": load15},
            "Memory": {"Virtual": _memory()},
            "NGo": threading.active_count(),
            "Uptime": time.time() - _STARTED,
            "models": {name: [str(v) for v in _core().available_versions(name)] for name in _core().model_names},
        }
    )


def _memory() -> dict[str, int | float]:
    info: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    total, free = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    used = total - free
    return {"total": total, "free": free, "used": used, "usedPercent": 100.0 * used / total if total else 0.0}


def _blueprint(name: str) -> Blueprint:
    """One copy of the routes (Flask needs a distinct blueprint per mount point)."""
    bp = Blueprint(name, __name__)
    bp.add_url_rule("/upload", view_func=upload, methods=["POST"])
    bp.add_url_rule("/delete", view_func=delete, methods=["DELETE"])
    bp.add_url_rule("/delete/<model>", view_func=delete, methods=["DELETE"])
    bp.add_url_rule("/models", view_func=models, methods=["GET"])
    bp.add_url_rule("/params", view_func=set_params, methods=["POST"])
    bp.add_url_rule("/params/<model>", view_func=get_params, methods=["GET"])
    bp.add_url_rule("/status", view_func=status, methods=["GET"])
    for path in ("/json", "/predict/json"):
        bp.add_url_rule(path, endpoint=path, view_func=predict_json, methods=["POST"])
    for path in ("/proto", "/predict/proto"):
        bp.add_url_rule(path, endpoint=path, view_func=predict_proto, methods=["POST"])
    for path in ("/image", "/predict/image"):
        bp.add_url_rule(path, endpoint=path, view_func=predict_image, methods=["POST"])
    return bp
