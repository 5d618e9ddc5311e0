"""The dashboard: ``GET /`` shows every model, its versions, configuration, signatures and live figures.

A browser (``Accept`` naming ``text/html`` before JSON) gets a page rendered here, which needs no
JavaScript to be read; its script (``/dashboard.js``) then polls ``GET /`` as JSON every few seconds,
updates the figures in place, and re-reads the page's card of a model whose ``revision`` changed (a
version loading, a new model). Every other client gets :func:`summary` as JSON. Each signature has a
"try it" form, prefilled with the example request Simple TensorFlow Serving's ``gen_json`` builds
(:func:`tfaas.codecs.sts_json.example_inputs`), sent to TF Serving's REST API, with curl and Python clients
of it (:func:`tfaas.fronts.sts_clients.client_source`). Where model management is on, the page uploads
through TFaaS's ``/upload`` and deletes through ``/delete/<model>``, asking for the admin token where one
is set: those routes, their guard and their token check are TFaaS's API's, not copied here.

Everything the page shows comes from the server and is escaped by Jinja2 (signature and input names and
load errors come from model files or uploads); the page loads nothing but its own files, and its
Content-Security-Policy says so.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, render_template, request

from tfaas.batching.parameters import BatchingParameters
from tfaas.codecs.sts_json import example_inputs
from tfaas.config import ModelConfig, Settings
from tfaas.errors import TfaasError
from tfaas.fronts import model_management
from tfaas.fronts.sts_clients import client_source
from tfaas.inference.service import InferenceService
from tfaas.live_figures import LiveFigures, ModelTotals, figure_texts, model_figures
from tfaas.server_core import ModelSpec, batching_enabled
from tfaas.tf_serving import DEFAULT_SIGNATURE

POLL_SECONDS = 3
"""How often the page asks for the JSON summary."""

EXAMPLE_LIMIT_BYTES = 256 << 10
"""Largest example request a try-it form is prefilled with (a signature of large inputs gets none)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:;"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The page runs its own script and style only, talks to this server only, and is never framed (its icon is
an empty ``data:`` one, so no browser asks for ``/favicon.ico``)."""

_FILES = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}

blueprint = Blueprint("dashboard", __name__, template_folder="dashboard_files")


def register(app: Flask) -> None:
    """Serve the dashboard from ``app`` (whose ``tfaas.service`` it shows)."""
    app.register_blueprint(blueprint)
    app.extensions["tfaas.live_figures"] = LiveFigures(app.extensions["tfaas.service"].core.metrics)


def _service() -> InferenceService:
    return current_app.extensions["tfaas.service"]


@blueprint.get("/")
def index() -> Response:
    """``GET /``: the page for a browser, the summary as JSON for any other client."""
    data = summary(_service(), current_app.extensions["tfaas.live_figures"])
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        tries = {model["name"]: try_its(_service(), model, _origin()) for model in data["models"]}
        page = render_template(
            "dashboard.html",
            summary=data,
            tries=tries,
            poll_seconds=POLL_SECONDS,
            clock=_clock,
            shape=_shape,
            parameter=_parameter,
        )
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    else:
        response = Response(orjson.dumps(data), mimetype="application/json")
    response.headers["Vary"] = "Accept"
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/dashboard.css")
@blueprint.get("/dashboard.js")
def static_file() -> Response:
    """The page's style and script, shipped in the package."""
    name = request.path.lstrip("/")
    response = Response(_file(name), mimetype=_FILES[name])
    response.headers["Cache-Control"] = "no-cache"  # NOTE: revalidated (ETag), so an upgrade shows at once
    response.add_etag()
    return response.make_conditional(request)


@functools.cache
def _file(name: str) -> bytes:
    return resources.files("tfaas.fronts").joinpath("dashboard_files", name).read_bytes()


# ---- the summary --------------------------------------------------------------------------------


def summary(service: InferenceService, live: LiveFigures) -> dict[str, Any]:
    """What the dashboard shows: the server's readiness, whether models may be uploaded and deleted, and
    every model (:func:`model_summary`)."""
    core = service.core
    refusal = model_management.upload_refusal(core.settings)
    deletable = (
        {config.name for config in core.repository.model_configs()} if refusal is None and core.repository else set()
    )
    figures = live.figures()
    return {
        "server": {"ready": core.is_ready(), "not_ready": core.not_ready()},
        "management": {
            "enabled": refusal is None,
            "refusal": refusal.message if refusal is not None else None,
            "token_required": bool(core.settings.admin_token),
        },
        "models": [model_summary(service, name, figures.get(name), name in deletable) for name in core.model_names],
    }


def model_summary(
    service: InferenceService, name: str, figures: dict[str, Any] | None, deletable: bool
) -> dict[str, Any]:
    """One model: its versions and their states (highest first), the versions that serve, its labels,
    policies and batching, the signatures of the version that serves, whether the page may delete it, and
    its live figures; ``revision`` changes whenever anything but the figures does."""
    core = service.core
    config = core.model_config(name) or ModelConfig(name, "")
    version, signatures = _signatures(service, name)
    model: dict[str, Any] = {
        "name": name,
        "serving": core.available_versions(name),
        "versions": [
            {"version": number, "state": state.state.name, "error": state.error or None, "since": state.time}
            for number, state in core.states(name).items()
        ],
        "labels": dict(config.version_labels),
        "version_policy": str(config.version_policy),
        "swap_policy": config.swap_policy,
        "batching": _batching(core.settings, config),
        "signatures_version": version,
        "signatures": signatures,
        "deletable": deletable,
    }
    model["revision"] = hashlib.sha256(orjson.dumps(model, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    model["figures"] = figures or model_figures(ModelTotals(), None, None)
    model["figures_text"] = figure_texts(model["figures"])
    return model


def _batching(settings: Settings, config: ModelConfig) -> dict[str, Any]:
    """Whether the model's requests are batched, and with which parameters (a version's own file aside)."""
    if not batching_enabled(settings, config):
        return {"enabled": False, "parameters": None}
    parameters = config.batching if isinstance(config.batching, BatchingParameters) else settings.batching_parameters
    return {"enabled": True, "parameters": parameters.to_dict()}


def _signatures(service: InferenceService, name: str) -> tuple[int | None, list[dict[str, Any]]]:
    """The version that serves and its signatures (none while no version serves): the default first, then by name."""
    try:
        metadata = service.metadata(ModelSpec(name))
    except TfaasError:
        return None, []
    defs = metadata.signature_def_map.get("signature_def", {})
    return metadata.spec.version, [
        {
            "name": signature_name,
            "method": signature.get("method_name", ""),
            "inputs": _tensors(signature.get("inputs", {})),
            "outputs": _tensors(signature.get("outputs", {})),
        }
        for signature_name, signature in sorted(defs.items(), key=lambda item: (item[0] != DEFAULT_SIGNATURE, item[0]))
        if not signature_name.startswith("__")  # NOTE: TensorFlow's own (__saved_model_init_op), not callable
    ]


def _tensors(tensors: dict[str, Any]) -> list[dict[str, Any]]:
    """Each tensor's alias, dtype and shape (``-1`` for an unknown dimension, ``None`` for an unknown rank)."""
    return [
        {
            "alias": alias,
            "dtype": tensor.get("dtype", ""),
            "shape": None
            if tensor.get("tensor_shape", {}).get("unknown_rank")
            else [int(dim.get("size", -1)) for dim in tensor.get("tensor_shape", {}).get("dim", [])],
        }
        for alias, tensor in sorted(tensors.items())
    ]


# ---- the page's try-it forms --------------------------------------------------------------------


@dataclass(frozen=True)
class TryIt:
    """A signature's try-it form: where its request goes, the request (``None`` past
    :data:`EXAMPLE_LIMIT_BYTES`), and clients that send it."""

    path: str
    body: str | None
    curl: str
    python: str


def try_its(service: InferenceService, model: dict[str, Any], origin: str) -> dict[str, TryIt]:
    """Each signature's try-it form, by name: a TF Serving ``:predict`` request of the version whose
    signatures ``model`` shows, for the model's latest version."""
    if model["signatures_version"] is None:
        return {}
    name = model["name"]
    try:
        defs = service.metadata(ModelSpec(name, model["signatures_version"])).signature_def_map["signature_def"]
    except TfaasError:  # NOTE: unloaded since the summary was made: the next poll shows it
        return {}
    path = f"/v1/models/{name}:predict"
    tries = {}
    for signature in model["signatures"]:
        inputs = example_inputs(defs[signature["name"]])
        line = orjson.dumps({"signature_name": signature["name"], "inputs": inputs}).decode()
        body = _request_text(signature["name"], inputs) if len(line) <= EXAMPLE_LIMIT_BYTES else None
        url = origin + path
        shown = line if body is not None else '{"signature_name": ..., "inputs": {...}}'
        tries[signature["name"]] = TryIt(
            path, body, client_source("bash", name, url, shown), client_source("python", name, url, shown)
        )
    return tries


def _request_text(signature_name: str, inputs: dict[str, Any]) -> str:
    """A predict request as a form shows it: a line per input, each value on its line (however nested)."""
    lines = ",\n".join(f"    {_json(alias)}: {_json(value)}" for alias, value in inputs.items())
    return f'{{\n  "signature_name": {_json(signature_name)},\n  "inputs": {{\n{lines}\n  }}\n}}'


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _origin() -> str:
    """``scheme://host[:port]`` as the browser reached this server (Werkzeug checks the ``Host`` header's
    characters; without a valid one, the address the request came in on)."""
    environ = request.environ
    host = request.host or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}"
    return f"{request.scheme}://{host}"


def _clock(epoch_seconds: float) -> tuple[str, str]:
    """A moment as a page shows it: ISO 8601 for ``<time datetime>``, and the UTC time of day."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="seconds"), moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _shape(dims: list[int] | None) -> str:
    """A tensor's shape as the page shows it: ``[?, 784]``; ``unknown`` for an unknown rank."""
    return "unknown" if dims is None else "[" + ", ".join("?" if size < 0 else str(size) for size in dims) + "]"


def _parameter(value: Any) -> str:
    """A batching parameter as the page shows it: a list of sizes joined, ``any`` for none."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]" if value else "any"
    return str(value)
