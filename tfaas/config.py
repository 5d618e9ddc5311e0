"""Server settings and model configurations.

Every option is declared once, as a field of :class:`Settings` carrying its default, type, a one-line
doc and its TensorFlow Serving counterpart; :data:`OPTIONS` is derived from those fields, and the
command line (:func:`add_arguments`), the environment (``TFAAS_<UPPER_NAME>``), the YAML file
(``--config``) and the documentation (:func:`describe_options`) all come from it.

Precedence is command line > environment > YAML file > default (an empty environment variable counts
as unset). :func:`load_settings` merges the layers, validates them and builds the model list from, in
this order of preference:

1. ``model_config_file``: TF Serving's ``ModelServerConfig`` text format, or a YAML model list when
   the name ends in ``.yaml``/``.yml``; ``model_name``/``model_base_path`` are then ignored, as in TF
   Serving.
2. ``models:`` in the YAML settings file.
3. ``model_name`` + ``model_base_path`` (one model), when ``model_base_path`` is set.

Otherwise ``Settings.models`` is empty and the caller decides what that means.

Differences from TF Serving, on purpose:

- A relative ``base_path`` in a config file is resolved against that file's directory (TF Serving
  refuses it); relative paths on the command line or in the environment are resolved against the
  working directory. URIs (``gs://``, ``s3://``) are refused: only local paths are served.
- A text-format config that sets neither ``model_platform`` nor the deprecated ``model_type`` means
  ``tensorflow`` (TF Serving refuses it). ``logging_config`` is ignored with a warning.
- ``latest { num_versions: 0 }`` in text format means 1, as in TF Serving, but YAML ``latest: 0`` is
  refused.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import math
import os
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tfaas.batching import parameters as batching
from tfaas.batching.parameters import BatchingParameters
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.errors import ConfigError, InvalidArgument
from tfaas.logs import LOG_FORMATS
from tfaas.model_names import NAME_RULE, is_valid_name

logger = logging.getLogger(__name__)

ENV_PREFIX = "TFAAS_"
SUPPORTED_PLATFORMS = ("tensorflow",)
SWAP_POLICIES = ("availability", "resource")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_MODEL_KEYS = (
    "name",
    "base_path",
    "model_platform",
    "version_policy",
    "swap_policy",
    "labels",
    "settle_seconds",
    "batching",
)
_YAML_SUFFIXES = (".yaml", ".yml")

Check = Callable[[Any], "str | None"]
"""A validation rule: returns the problem (``"must be >= 1"``) or ``None`` when the value is fine."""


# --------------------------------------------------------------------------------------------------
# Validation rules and type coercion, shared by options and models.


def _at_least(low: float) -> Check:
    """Rule: the value is ``>= low``."""
    return lambda value: None if value >= low else f"must be >= {low}"


def _greater_than(low: float) -> Check:
    """Rule: the value is ``> low``."""
    return lambda value: None if value > low else f"must be > {low}"


def _between(low: int, high: int) -> Check:
    """Rule: ``low <= value <= high``."""
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _one_of(choices: tuple[str, ...]) -> Check:
    """Rule: the value is one of ``choices``."""
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _non_empty(value: str) -> str | None:
    """Rule: the string is not blank."""
    return None if value.strip() else "must not be empty"


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``grpc_channel_arguments`` as gRPC server options: ``a=1,b=x`` gives ``[("a", 1), ("b", "x")]``.

    As TF Serving parses its flag: comma-separated ``key=value`` pairs, a value that is a 32-bit integer
    passed as one, any other as a string. Raises ``ValueError`` for an item that is not ``key=value``.
    """
    arguments: list[tuple[str, int | str]] = []
    for item in text.split(",") if text.strip() else []:
        key, equals, value = item.strip().partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{item!r} is not key=value")
        arguments.append((key.strip(), _int32_or_text(value.strip())))
    return arguments


def _int32_or_text(value: str) -> int | str:
    try:
        number = int(value)
    except ValueError:
        return value
    return number if -(2**31) <= number < 2**31 else value


def _channel_arguments_problem(value: str) -> str | None:
    """Rule: ``grpc_channel_arguments`` parses (see :func:`parse_channel_arguments`)."""
    try:
        parse_channel_arguments(value)
    except ValueError as error:
        return str(error)
    return None


def _checked(value: Any, check: Check, where: str) -> Any:
    """Return ``value`` if ``check`` accepts it, else raise a ConfigError located at ``where``."""
    problem = check(value)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    return value


def _coerce(value: Any, typ: type, where: str) -> Any:
    """Convert ``value`` to ``typ`` (int, float or str).

    Strings are parsed because environment variables and flags are strings; booleans are refused
    as numbers because YAML turns ``yes`` into ``True``.
    """
    if typ is int:
        return _to_int(value, where)
    if typ is float:
        return _to_float(value, where)
    if typ is bool:
        return _to_bool(value, where)
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected a string, got {value!r}")


def _to_int(value: Any, where: str) -> int:
    """Parse an integer from an int or a decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected an integer, got {value!r}")


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _to_bool(value: Any, where: str) -> bool:
    """Parse a boolean from a bool or a word (true/false, yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _to_float(value: Any, where: str) -> float:
    """Parse a finite number from an int, a float or a string."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not math.isfinite(number):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return number


def _absolute_path(value: str, base_dir: str, where: str) -> str:
    """Expand ``~``, resolve ``value`` against ``base_dir`` and normalise it; refuse URIs."""
    if _URI_RE.match(value):
        raise ConfigError(f"{where}: URIs are not supported ({value!r}); use a local path")
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _reject_unknown_keys(raw: Mapping[Any, Any], allowed: Iterable[str], where: str) -> None:
    """Raise a ConfigError naming every key of ``raw`` that is not in ``allowed``."""
    allowed = tuple(allowed)
    unknown = sorted((key for key in raw if key not in allowed), key=str)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise ConfigError(f"{where}: unknown key(s) {names}; allowed: {', '.join(allowed)}")


# --------------------------------------------------------------------------------------------------
# Model configuration.


class VersionLabels(Mapping[str, int]):
    """An immutable, hashable ``label -> version`` mapping.

    A plain dict would make the frozen :class:`ModelConfig` unhashable; this compares equal to a dict
    with the same items.
    """

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        self._data = dict(items)

    def __getitem__(self, label: str) -> int:
        return self._data[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"VersionLabels({self._data!r})"


@dataclass(frozen=True)
class ModelConfig:
    """One model to serve: where its numbered versions live and how to serve them.

    ``base_path`` is absolute and normalised when built by :func:`load_settings`. ``swap_policy`` is
    ``availability`` (load the new version before unloading the old; TF Serving's default) or
    ``resource`` (unload first, for models too big to hold twice). ``settle_seconds`` overrides
    ``Settings.version_settle_seconds`` for this model when not ``None``. ``batching``: ``None`` follows
    the server's ``enable_batching``; ``False`` turns batching off for this model; ``True`` turns it on
    with the server's parameters; ``BatchingParameters`` turns it on with these.
    """

    name: str
    base_path: str
    model_platform: str = "tensorflow"
    version_policy: ServableVersionPolicy = field(default_factory=ServableVersionPolicy)
    swap_policy: str = "availability"
    version_labels: Mapping[str, int] = field(default_factory=VersionLabels)
    settle_seconds: float | None = None
    batching: bool | BatchingParameters | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.version_labels, VersionLabels):
            object.__setattr__(self, "version_labels", VersionLabels(self.version_labels))

    def to_dict(self) -> dict[str, Any]:
        """Return plain values (policy as text) for logging and debugging."""
        return {
            "name": self.name,
            "base_path": self.base_path,
            "model_platform": self.model_platform,
            "version_policy": str(self.version_policy),
            "swap_policy": self.swap_policy,
            "version_labels": dict(self.version_labels),
            "settle_seconds": self.settle_seconds,
            "batching": self.batching.to_dict() if isinstance(self.batching, BatchingParameters) else self.batching,
        }


def _model_name(raw: Any, where: str) -> str:
    """Validate a model name: a non-empty string usable in a URL path segment."""
    name = _checked(_coerce(raw if raw is not None else "", str, where), _non_empty, where)
    if not is_valid_name(name):
        raise ConfigError(f"{where}: invalid model name {name!r}: {NAME_RULE}")
    return name


def _base_path(raw: Any, base_dir: str, where: str) -> str:
    """Validate a base path and make it absolute, relative paths being taken from ``base_dir``."""
    path = _checked(_coerce(raw if raw is not None else "", str, where), _non_empty, where)
    return _absolute_path(path, base_dir, where)


def _platform(raw: Any, model_name: str, where: str) -> str:
    """Validate ``model_platform``; TF Serving's message for an unknown one is kept."""
    platform = _coerce(raw, str, where)
    if platform not in SUPPORTED_PLATFORMS:
        raise ConfigError(
            f"{where}: Model {model_name} requests unsupported platform {platform} "
            f"(supported: {', '.join(SUPPORTED_PLATFORMS)})"
        )
    return platform


def _version_policy(raw: Any, where: str) -> ServableVersionPolicy:
    """Parse ``latest`` | ``all`` | ``{latest: N}`` | ``{all: {}}`` | ``{specific: [..]}``.

    The proto-shaped ``{latest: {num_versions: N}}`` and ``{specific: {versions: [..]}}`` are
    accepted too, so a policy can be copied from a TF Serving config. Unset means ``latest: 1``.
    """
    if raw is None:
        return ServableVersionPolicy()
    if isinstance(raw, str):
        kind, arg = raw, None
    elif isinstance(raw, Mapping) and len(raw) == 1:
        ((kind, arg),) = raw.items()
    else:
        raise ConfigError(
            f"{where}: expected 'latest', 'all', {{latest: N}}, {{all: {{}}}} or {{specific: [versions]}}, got {raw!r}"
        )
    if kind == "latest":
        return _latest_policy(arg, f"{where}.latest")
    if kind == "all":
        if arg not in (None, {}):
            raise ConfigError(f"{where}.all: takes no arguments, got {arg!r}")
        return ServableVersionPolicy(kind="all")
    if kind == "specific":
        return _specific_policy(arg, f"{where}.specific")
    raise ConfigError(f"{where}: unknown policy {kind!r}; expected latest, all or specific")


def _latest_policy(arg: Any, where: str) -> ServableVersionPolicy:
    """Build ``latest: N`` from ``N``, ``{num_versions: N}`` or nothing (N = 1)."""
    if isinstance(arg, Mapping):
        _reject_unknown_keys(arg, ("num_versions",), where)
        arg = arg.get("num_versions")
    count = 1 if arg is None else _checked(_to_int(arg, where), _at_least(1), where)
    return ServableVersionPolicy(kind="latest", num_versions=count)


def _specific_policy(arg: Any, where: str) -> ServableVersionPolicy:
    """Build ``specific`` from a list of versions or ``{versions: [..]}``; an empty list serves nothing."""
    if isinstance(arg, Mapping):
        _reject_unknown_keys(arg, ("versions",), where)
        arg = arg.get("versions", [])
    if not isinstance(arg, list):
        raise ConfigError(f"{where}: expected a list of versions, got {arg!r}")
    versions = tuple(_checked(_to_int(v, f"{where}[{i}]"), _at_least(0), f"{where}[{i}]") for i, v in enumerate(arg))
    return ServableVersionPolicy(kind="specific", versions=versions)


def _labels(raw: Any, where: str) -> VersionLabels:
    """Parse ``{label: version}``; labels follow the model-name rule, versions are ints >= 0."""
    if raw is None:
        return VersionLabels()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of label to version, got {raw!r}")
    labels: dict[str, int] = {}
    for label, version in raw.items():
        if not isinstance(label, str) or not is_valid_name(label):
            raise ConfigError(f"{where}: invalid label {label!r}: {NAME_RULE}")
        labels[label] = _checked(_to_int(version, f"{where}.{label}"), _at_least(0), f"{where}.{label}")
    return VersionLabels(labels)


def _settle_seconds(raw: Any, where: str) -> float | None:
    """Parse an optional per-model settle time (seconds >= 0)."""
    if raw is None:
        return None
    return _checked(_to_float(raw, where), _at_least(0), where)


def _model_batching(raw: Any, where: str) -> bool | BatchingParameters | None:
    """Parse a model's ``batching``: absent, a boolean, or a mapping of batching parameters."""
    if raw is None or isinstance(raw, bool):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected true, false or a mapping of batching parameters, got {raw!r}")
    try:
        return batching.from_mapping(raw, where)
    except InvalidArgument as error:
        raise ConfigError(error.message) from None


def _model_from_mapping(raw: Any, base_dir: str, where: str) -> ModelConfig:
    """Build one :class:`ModelConfig` from a YAML-shaped mapping, validating every field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name and base_path, got {raw!r}")
    _reject_unknown_keys(raw, _MODEL_KEYS, where)
    name = _model_name(raw.get("name"), f"{where}.name")
    swap_where = f"{where}.swap_policy"
    return ModelConfig(
        name=name,
        base_path=_base_path(raw.get("base_path"), base_dir, f"{where}.base_path"),
        model_platform=_platform(raw.get("model_platform", "tensorflow"), name, f"{where}.model_platform"),
        version_policy=_version_policy(raw.get("version_policy"), f"{where}.version_policy"),
        swap_policy=_checked(
            _coerce(raw.get("swap_policy", "availability"), str, swap_where),
            _one_of(SWAP_POLICIES),
            swap_where,
        ),
        version_labels=_labels(raw.get("labels"), f"{where}.labels"),
        settle_seconds=_settle_seconds(raw.get("settle_seconds"), f"{where}.settle_seconds"),
        batching=_model_batching(raw.get("batching"), f"{where}.batching"),
    )


def _models_from_list(raw: Any, base_dir: str, origin: str) -> tuple[ModelConfig, ...]:
    """Build and validate a model list read from the file ``origin`` (named in every error)."""
    try:
        if not isinstance(raw, list):
            raise ConfigError(f"models: expected a list, got {raw!r}")
        models = tuple(_model_from_mapping(item, base_dir, f"models[{i}]") for i, item in enumerate(raw))
        _check_unique_names(models)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {origin})") from None
    return models


def _check_unique_names(models: tuple[ModelConfig, ...]) -> None:
    """Refuse a model listed twice, as TF Serving does."""
    first_index: dict[str, int] = {}
    for index, model in enumerate(models):
        if model.name in first_index:
            raise ConfigError(
                f"models[{index}].name: duplicate model name {model.name!r} (first at "
                f"models[{first_index[model.name]}]): Illegal to list model {model.name} multiple "
                "times in config list"
            )
        first_index[model.name] = index


# --------------------------------------------------------------------------------------------------
# Model config files: TF Serving's text format, or a YAML model list.


def _read_text(path: str) -> str:
    """Read a config file, turning I/O failures into a ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None


def _read_yaml(path: str) -> Any:
    """Parse a YAML file, reporting syntax errors with the file name and position."""
    import yaml

    try:
        return yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def read_model_config_file(path: str) -> tuple[ModelConfig, ...] | None:
    """Read ``--model_config_file``: a YAML model list for ``.yaml``/``.yml``, else TF text format.

    Relative base paths inside are resolved against the file's directory. A YAML model list is
    either a list of models or a mapping with a single key ``models``. Exposed separately so a
    config reload can re-read the file without the other layers. ``None`` when the file sets no
    model list at all (empty, or only comments), as a file caught half-written by an editor does;
    an explicit empty list (``model_config_list {}``, ``models: []``) is an empty tuple.
    """
    path = os.path.abspath(path)
    base_dir = os.path.dirname(path)
    if path.lower().endswith(_YAML_SUFFIXES):
        raw = _read_yaml(path)
        if isinstance(raw, Mapping):
            _reject_unknown_keys(raw, ("models",), path)
            raw = raw.get("models")
        return None if raw is None else _models_from_list(raw, base_dir, path)
    text = _read_text(path)
    if text.lstrip().startswith("{"):
        models = _sts_json_models(text, path)
        return None if models is None else _models_from_list(models, base_dir, path)
    return models_from_server_config(_parse_text_format(text, path), base_dir, path)


def _parse_text_format(text: str, path: str) -> Any:
    """Parse a ``ModelServerConfig`` text proto (read from ``path``)."""
    # NOTE: imported here so that importing tfaas.config stays cheap; neither pulls in TensorFlow.
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(
            f"Error parsing text-format tensorflow.serving.ModelServerConfig from {path}: {exc}"
        ) from None
    return config


def models_from_server_config(config: Any, base_dir: str, origin: str) -> tuple[ModelConfig, ...] | None:
    """The models of a ``ModelServerConfig`` proto, validated as a config file's (``None``: it sets no
    list). Relative base paths are taken from ``base_dir``; ``origin`` (a file, a request) is named in
    every error and warning."""
    which = config.WhichOneof("config")
    if which == "custom_model_config":
        raise ConfigError(f"{origin}: custom_model_config is not supported; use model_config_list")
    if which is None:
        return None
    models = [_proto_model(proto, f"models[{i}]", origin) for i, proto in enumerate(config.model_config_list.config)]
    return _models_from_list(models, base_dir, origin)


def _proto_model(proto: Any, where: str, path: str) -> dict[str, Any]:
    """Translate one ``ModelConfig`` proto into the YAML model shape, so both share validation."""
    if proto.HasField("logging_config"):
        logger.warning("%s: %s.logging_config is not supported and is ignored", path, where)
    return {
        "name": proto.name,
        "base_path": proto.base_path,
        "model_platform": _proto_platform(proto, where, path),
        "version_policy": _proto_policy(proto.model_version_policy),
        "labels": dict(proto.version_labels),
    }


def _proto_platform(proto: Any, where: str, path: str) -> str:
    """Resolve ``model_platform`` against the deprecated ``model_type`` enum, as TF Serving does."""
    from tensorflow_serving.config import model_server_config_pb2

    if proto.model_type and proto.model_platform:
        raise ConfigError(f"{where}: Illegal setting both model_type(deprecated) and model_platform. (in {path})")
    if proto.model_type:
        return model_server_config_pb2.ModelType.Name(proto.model_type).lower()
    return proto.model_platform or "tensorflow"


def _proto_policy(policy: Any) -> Any:
    """Translate a ``ServableVersionPolicy`` proto into the YAML policy shape."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "latest":
        # TF Serving treats num_versions 0 (the proto default) as 1.
        return {"latest": max(1, policy.latest.num_versions)}
    if choice == "specific":
        return {"specific": list(policy.specific.versions)}
    return choice


# --------------------------------------------------------------------------------------------------
# Simple TensorFlow Serving's configuration: its JSON model config file, --session_config,
# --reload_models and --custom_op_paths, as tfaas settings.

_STS_MODEL_KEYS = ("name", "base_path", "platform", "custom_op_paths", "session_config")
_SESSION_THREADS = {
    "intra_op_parallelism_threads": "tensorflow_intra_op_parallelism",
    "inter_op_parallelism_threads": "tensorflow_inter_op_parallelism",
}
_SESSION_NOT_APPLIED = (
    "allow_growth",
    "per_process_gpu_memory_fraction",
    "log_device_placement",
    "allow_soft_placement",
)
_SESSION_CONFIG, _RELOAD_MODELS = "sts_session_config", "sts_reload_models"


def _sts_json_models(text: str, path: str) -> list[dict[str, Any]]:
    """STS's JSON model config, ``{"model_config_list": [{"name", "base_path", "platform"}, ...]}``, as
    YAML-shaped model mappings. A model's ``session_config`` is not applied (logged); its
    ``custom_op_paths`` must be empty: op libraries are loaded for the whole server (``custom_op_paths``)."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{path}: invalid JSON: {error}") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model_config_list"), list):
        raise ConfigError(f'{path}: expected {{"model_config_list": [...]}} (Simple TensorFlow Serving\'s format)')
    _reject_unknown_keys(raw, ("model_config_list",), path)
    models = []
    for index, entry in enumerate(raw["model_config_list"]):
        where = f"models[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected an object with name and base_path, got {entry!r} (in {path})")
        _reject_unknown_keys(entry, _STS_MODEL_KEYS, f"{where} (in {path})")
        if entry.get("custom_op_paths"):
            raise ConfigError(f"{where}.custom_op_paths: set custom_op_paths for the whole server instead (in {path})")
        if entry.get("session_config"):
            logger.warning("%s: %s.session_config is not applied (see --session_config)", path, where)
        models.append(
            {
                "name": entry.get("name"),
                "base_path": entry.get("base_path"),
                "model_platform": entry.get("platform", "tensorflow"),
            }
        )
    return models


def _add_sts_flags(parser: argparse.ArgumentParser) -> None:
    """STS's flags that stand for other options' values (see :func:`_sts_flags`)."""
    group = parser.add_argument_group("Simple TensorFlow Serving's flags")
    group.add_argument(
        "--session_config",
        dest=_SESSION_CONFIG,
        default=argparse.SUPPRESS,
        metavar="JSON",
        help="STS's session config: intra_op_parallelism_threads and inter_op_parallelism_threads set"
        " tensorflow_intra_op_parallelism and tensorflow_inter_op_parallelism; allow_growth,"
        " per_process_gpu_memory_fraction, log_device_placement and allow_soft_placement are accepted and not"
        " applied.",
    )
    group.add_argument(
        "--reload_models",
        dest=_RELOAD_MODELS,
        nargs="?",
        const="true",
        default=argparse.SUPPRESS,
        metavar="BOOL",
        help="STS's new-version polling: true is what tfaas does anyway (file_system_poll_wait_seconds);"
        " false scans the model directories once (file_system_poll_wait_seconds 0).",
    )


def _sts_flags(args: argparse.Namespace | None) -> dict[str, Any]:
    """The options STS's ``--session_config`` and ``--reload_models`` on the command line stand for."""
    values: dict[str, Any] = {}
    session_config = getattr(args, _SESSION_CONFIG, None)
    if session_config is not None:
        values.update(_session_config(session_config))
    reload_models = getattr(args, _RELOAD_MODELS, None)
    if reload_models is not None and not _to_bool(reload_models, "--reload_models"):
        values["file_system_poll_wait_seconds"] = 0.0
    return values


def _session_config(text: str) -> dict[str, int]:
    """``--session_config``'s thread counts as tfaas options; its GPU and placement keys are accepted and
    not applied (a warning says so), any other key refused."""
    where = "--session_config"
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{where}: invalid JSON: {error}") from None
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {text!r}")
    _reject_unknown_keys(config, (*_SESSION_THREADS, *_SESSION_NOT_APPLIED), where)
    not_applied = [key for key in _SESSION_NOT_APPLIED if key in config]
    if not_applied:
        logger.warning(
            "%s: %s not applied: TensorFlow 2 runs the models here, without STS's sessions",
            where,
            ", ".join(not_applied),
        )
    return {
        option: _checked(_to_int(config[key], f"{where}.{key}"), _at_least(0), f"{where}.{key}")
        for key, option in _SESSION_THREADS.items()
        if key in config
    }


def custom_op_libraries(paths: str) -> list[str]:
    """The op libraries ``custom_op_paths`` names: each file given, and each directory's ``*.so`` files
    (sorted), as absolute paths; a ConfigError for a path that does not exist."""
    problem = _op_paths_problem(paths)
    if problem is not None:
        raise ConfigError(f"custom_op_paths: {problem}")
    libraries = []
    for path in _op_path_entries(paths):
        libraries += sorted(glob.glob(os.path.join(glob.escape(path), "*.so"))) if os.path.isdir(path) else [path]
    return libraries


def _op_path_entries(paths: str) -> list[str]:
    return [os.path.abspath(os.path.expanduser(entry.strip())) for entry in paths.split(",") if entry.strip()]


def _op_paths_problem(paths: str) -> str | None:
    missing = [path for path in _op_path_entries(paths) if not os.path.exists(path)]
    return f"no such file or directory: {', '.join(missing)}" if missing else None


def _check_basic_auth(values: Mapping[str, Any]) -> None:
    """Refuse basic auth without a password (STS's default, admin:admin, would let anyone in)."""
    if values["enable_basic_auth"] and not values["basic_auth_password"]:
        raise ConfigError("basic_auth_password: must be set with enable_basic_auth (STS's --auth_password)")


# --------------------------------------------------------------------------------------------------
# Settings: the option table.


def _option(
    default: Any,
    doc: str,
    *,
    tf_flag: str | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    path: bool = False,
    check: Check | None = None,
) -> Any:
    """Declare a settings option as a dataclass field; its metadata feeds :data:`OPTIONS`. ``aliases`` are
    other servers' flags for it (Simple TensorFlow Serving's ``--enable_auth``)."""
    meta = {"doc": doc, "tf_flag": tf_flag, "flag": flag, "aliases": aliases, "path": path, "check": check}
    return field(default=default, metadata={"option": meta})


@dataclass(frozen=True)
class Settings:
    """All server settings; each field except ``models`` is an option of the table.

    Build it with :func:`load_settings`; ``Settings()`` gives the defaults and no models.
    """

    rest_api_port: int = _option(
        8501,
        "Port the REST API listens on (TF Serving's default 0 disables REST; its Docker image uses 8501).",
        tf_flag="--rest_api_port",
        check=_between(1, 65535),
    )
    rest_api_timeout_in_ms: int = _option(
        30000,
        "Longest a REST API call may take, in milliseconds (TF Serving's flag and default); past it the call is"
        " answered 504 DEADLINE_EXCEEDED. 0: no limit. gRPC calls carry their clients' own deadlines.",
        tf_flag="--rest_api_timeout_in_ms",
        check=_at_least(0),
    )
    host: str = _option("0.0.0.0", "Address the REST and gRPC APIs bind to.", check=_non_empty)
    grpc_port: int = _option(
        8500,
        "Port TF Serving's gRPC API listens on (PredictionService, ModelService, health, reflection); 0 turns"
        " it off. Must differ from rest_api_port.",
        tf_flag="--port",
        flag="--port",
        check=_between(0, 65535),
    )
    grpc_socket_path: str = _option(
        "",
        "Also serve the gRPC API on this Unix socket (TF Serving's flag); empty: none.",
        tf_flag="--grpc_socket_path",
        path=True,
    )
    grpc_max_threads: int = _option(
        0,
        "Most gRPC calls one worker serves at once; more are refused with RESOURCE_EXHAUSTED. 0: no limit (a"
        " call waiting for its model holds no thread here; TF Serving's flag caps its gRPC threads).",
        tf_flag="--grpc_max_threads",
        check=_at_least(0),
    )
    grpc_channel_arguments: str = _option(
        "",
        "gRPC server arguments as TF Serving takes them: comma-separated key=value, an integer value passed as"
        " one (grpc.max_receive_message_length=...). Messages are allowed up to max_request_body_bytes unless"
        " this sets grpc.max_receive_message_length.",
        tf_flag="--grpc_channel_arguments",
        check=_channel_arguments_problem,
    )
    model_name: str = _option(
        "default",
        "Name of the single model served from model_base_path.",
        tf_flag="--model_name",
    )
    model_base_path: str = _option(
        "",
        "Directory holding the single model's numbered versions; ignored when model_config_file is set.",
        tf_flag="--model_base_path",
        path=True,
    )
    model_config_file: str = _option(
        "",
        "ModelServerConfig text-format file (a .yaml/.yml name: a YAML model list); relative base paths "
        "in it are taken from its directory.",
        tf_flag="--model_config_file",
        path=True,
    )
    config_file: str = _option(
        "",
        "YAML settings file: top-level keys are these option names plus `models`.",
        flag="--config",
        path=True,
    )
    model_config_file_poll_wait_seconds: float = _option(
        0.0,
        "Seconds between re-reads of the model list (model_config_file, or `models` in the --config file);"
        " 0 reads it once. Changes apply without a restart; a file that does not parse is refused and logged.",
        tf_flag="--model_config_file_poll_wait_seconds",
        check=_at_least(0),
    )
    file_system_poll_wait_seconds: float = _option(
        1.0,
        "Seconds between scans of the model base paths; 0 scans once, < 0 never.",
        tf_flag="--file_system_poll_wait_seconds",
    )
    version_settle_seconds: float = _option(
        1.0,
        "Seconds a version directory must stay unchanged before it is loaded (copies are not atomic).",
        check=_at_least(0),
    )
    workers: int = _option(
        0,
        "Worker processes; each one loads every model, so memory grows with them. 0: one per CPU core, or fewer"
        " if fewer fit in the memory available (estimated from the models' size on disk; logged at start).",
        check=_at_least(0),
    )
    threads: int = _option(
        8,
        "Threads per worker for work off its event loop: predict calls that cannot batch or carry large bodies,"
        " and every other route (a pool of this size each).",
        check=_at_least(1),
    )
    num_load_threads: int = _option(
        2,
        "Threads that load model versions (TF Serving's 0 means inline; here at least 1).",
        tf_flag="--num_load_threads",
        check=_at_least(1),
    )
    num_unload_threads: int = _option(
        1,
        "Threads that unload model versions.",
        tf_flag="--num_unload_threads",
        check=_at_least(1),
    )
    load_thread_niceness: int = _option(
        10,
        "OS niceness added to the threads that load and unload versions, so requests keep the CPU while a new"
        " version loads (perf/RESULTS.md, swap section); 0 loads at the server's own priority.",
        check=_between(0, 19),
    )
    max_num_load_retries: int = _option(
        -1,
        "Retries of a failed load before giving up; -1 retries forever (TF Serving's default is 5).",
        tf_flag="--max_num_load_retries",
        check=_at_least(-1),
    )
    load_retry_initial_seconds: float = _option(
        1.0,
        "Delay before the first retry of a failed load; later delays grow up to load_retry_max_seconds "
        "(TF Serving retries at a fixed interval, in microseconds).",
        tf_flag="--load_retry_interval_micros",
        check=_greater_than(0),
    )
    load_retry_max_seconds: float = _option(
        300.0,
        "Longest delay between retries of a failed load; at least load_retry_initial_seconds.",
        check=_greater_than(0),
    )
    num_request_iterations_for_warmup: int = _option(
        1,
        "Times each record of a version's assets.extra/tf_serving_warmup_requests is replayed while the"
        " version loads (0 means 1, as in TF Serving).",
        tf_flag="--num_request_iterations_for_warmup",
        check=_at_least(0),
    )
    first_call_warmup: bool = _option(
        True,
        "Before a version without a warmup file serves, call each of its signatures that has no side effect"
        " (reading variables aside) once on zeros, so that TensorFlow's first-call graph optimization is not"
        " paid by the first requests.",
    )
    graceful_timeout: float = _option(
        30.0,
        "Seconds allowed to finish in-flight requests on shutdown before exiting.",
        check=_at_least(0),
    )
    max_header_bytes: int = _option(
        64 * 1024,
        "Largest request line plus headers accepted, in bytes; a larger one is refused at once (HTTP 431).",
        check=_at_least(1024),
    )
    request_header_timeout: float = _option(
        30.0,
        "Seconds a client has to send a request's line and headers, from its connection or its previous"
        " response; then the connection is closed (HTTP 408 if part of a request came).",
        check=_greater_than(0),
    )
    request_body_timeout: float = _option(
        30.0,
        "Seconds a request body may take to arrive, plus 1 s per request_body_min_rate bytes received (time"
        " the server itself stops reading does not count); then HTTP 408 and the connection is closed.",
        check=_greater_than(0),
    )
    request_body_min_rate: int = _option(
        1024,
        "Bytes per second a request body must average to earn more time past request_body_timeout.",
        check=_at_least(1),
    )
    worker_connections: int = _option(
        0,
        "Connections one worker holds at once (gunicorn's name); more are answered 503 and closed. 0: the"
        " open-file limit (RLIMIT_NOFILE) less a quarter of it (at least 64) for model files and logs.",
        check=_at_least(0),
    )
    model_repository: str = _option(
        "",
        "Directory of models (<dir>/<name>/<version>/), every one of them served; with enable_model_management,"
        " TFaaS's API adds models to it and deletes them. Empty: the TFaaS write calls are refused.",
        path=True,
    )
    tfaas_api_prefix: str = _option(
        "",
        "Also serve TFaaS's API under this URL prefix (e.g. /tfaas), as TFaaS's `base` setting does.",
        check=lambda v: None if v == "" or re.fullmatch(r"(/[A-Za-z0-9_.-]+)+", v) else "must look like /name",
    )
    enable_model_management: bool = _option(
        False,
        "Turn on TFaaS's upload, delete and params calls, which change the models on disk; off, they answer"
        " 403. Set admin_token too: without it, anyone who can reach the port may change the models.",
    )
    read_only: bool = _option(
        False, "Refuse TFaaS's upload, delete and params calls (HTTP 403) even with enable_model_management."
    )
    admin_token: str = _option(
        "",
        "If set, TFaaS's upload, delete and params calls need the header `Authorization: Bearer <token>`.",
    )
    max_upload_bytes: int = _option(
        1 << 30,
        "Largest upload accepted (the request body, and a bundle once unpacked), in bytes.",
        check=_at_least(1),
    )
    max_request_body_bytes: int = _option(
        64 << 20,
        "Largest request body accepted by every call but an upload (predict, classify, regress, TFaaS's /json,"
        " /proto, /image), in bytes; larger ones get 413 before they are read. Decoding a body takes a few"
        " times its size in memory, and REST clients send tens of MB at most (bigger batches are better split).",
        check=_at_least(1),
    )
    # -- PAI-EAS's API (tfaas/fronts/eas.py) --
    eas_token: str = _option(
        "",
        "If set, PAI-EAS's /api/predict/<model> needs this token: `Authorization: <token>`, or the signature"
        " EAS's SDKs send (`Authorization: EAS <HMAC-SHA1 of the request>`). Empty: no token is asked for.",
    )
    log_level: str = _option("info", "Logging level: " + ", ".join(LOG_LEVELS) + ".", check=_one_of(LOG_LEVELS))
    log_format: str = _option(
        "text",
        "Log line format for tfaas and gunicorn: text (for a terminal or journald) or json (one object per line,"
        " for log shippers).",
        check=_one_of(LOG_FORMATS),
    )
    access_log: str = _option(
        "",
        "Where to write one line per request, in log_format: '-' for stderr, a file path, or '' for none.",
    )
    otlp_endpoint: str = _option(
        "",
        "Trace requests and version loads with OpenTelemetry, sending spans over OTLP/HTTP to this collector"
        " (e.g. http://localhost:4318; spans go to its /v1/traces). Empty: off, unless OpenTelemetry's"
        " OTEL_EXPORTER_OTLP_ENDPOINT names one; the other OTEL_* variables are honoured.",
        check=lambda v: None if v == "" or re.match(r"https?://[^/]", v) else "must be an http:// or https:// URL",
    )
    tensorflow_intra_op_parallelism: int = _option(
        0,
        "Threads TensorFlow may use inside one op (a matmul) per worker; 0: the worker's share of the cores"
        " (1 with one worker per core; TF Serving's 0 is every core).",
        tf_flag="--tensorflow_intra_op_parallelism",
        check=_at_least(0),
    )
    tensorflow_inter_op_parallelism: int = _option(
        0,
        "Threads TensorFlow may use to run independent ops at once per worker; 0: the worker's share of the"
        " cores, as above.",
        tf_flag="--tensorflow_inter_op_parallelism",
        check=_at_least(0),
    )
    enable_batching: bool = _option(
        True,
        "Run concurrent requests to one signature as one batch (per model: `batching` in the model list);"
        " on by default: more req/s and less CPU per request at 8 or more connections (perf/RESULTS.md).",
        tf_flag="--enable_batching",
    )
    batching_parameters_file: str = _option(
        "",
        "TF Serving's BatchingParameters text file: the batching parameters of every batched model.",
        tf_flag="--batching_parameters_file",
        path=True,
    )
    enable_per_model_batching_parameters: bool = _option(
        False,
        "Read each version's own batching_params.pbtxt, where it has one (TF Serving's flag).",
        tf_flag="--enable_per_model_batching_parameters",
    )
    worker_tmp_dir: str = _option(
        "",
        "Directory for gunicorn's worker heartbeat files; a tmpfs (/dev/shm, /run/...) avoids stalls on a slow"
        " disk. Empty: the system's temporary directory.",
        path=True,
    )
    # ---- Simple TensorFlow Serving's options (its flags are aliases; see also _sts_flags) ----
    enable_basic_auth: bool = _option(
        False,
        "Require HTTP basic auth (basic_auth_username and basic_auth_password) on every route but /health,"
        " /healthz and /readyz; 401 otherwise.",
        aliases=("--enable_auth",),
    )
    basic_auth_username: str = _option(
        "admin",
        "User name of HTTP basic auth.",
        aliases=("--auth_username",),
        check=lambda v: "must not contain ':' (RFC 7617)" if ":" in v else None,
    )
    basic_auth_password: str = _option(
        "",
        "Password of HTTP basic auth; required with enable_basic_auth. Prefer the environment or the YAML"
        " file to the command line, which other users of the machine may read.",
        aliases=("--auth_password",),
    )
    enable_cors: bool = _option(
        False, "Allow any origin (CORS) on every response, and answer browsers' preflight OPTIONS requests."
    )
    custom_op_paths: str = _option(
        "",
        "Comma-separated directories (each of their *.so files) and .so files of TensorFlow op libraries,"
        " loaded in every worker before its models (relative paths: from the working directory).",
        check=lambda v: _op_paths_problem(v),
    )
    # ---- end of Simple TensorFlow Serving's options ----
    models: tuple[ModelConfig, ...] = ()
    batching_parameters: BatchingParameters = field(default_factory=BatchingParameters)
    """Parsed from ``batching_parameters_file`` (TF Serving's defaults without one)."""

    def to_dict(self) -> dict[str, Any]:
        """Return every option and the models as plain values, for logging and debugging."""
        values: dict[str, Any] = {option.name: getattr(self, option.name) for option in OPTIONS}
        values["models"] = [model.to_dict() for model in self.models]
        values["batching_parameters"] = self.batching_parameters.to_dict()
        return values


@dataclass(frozen=True)
class Option:
    """One row of the option table, derived from a :class:`Settings` field."""

    name: str
    type: type
    default: Any
    doc: str
    tf_flag: str | None = None
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    path: bool = False
    check: Check | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        """Command-line spellings: TF Serving's underscores first, then the dashed alias, then other servers'."""
        primary = self.flag or f"--{self.name}"
        dashed = primary.replace("_", "-")
        return ((primary,) if dashed == primary else (primary, dashed)) + self.aliases

    @property
    def env(self) -> str:
        """Name of the environment variable that sets this option."""
        return f"{ENV_PREFIX}{self.name.upper()}"


def _collect_options() -> tuple[Option, ...]:
    """Build the option table from the fields of :class:`Settings`."""
    hints = typing.get_type_hints(Settings)
    return tuple(
        Option(name=f.name, type=hints[f.name], default=f.default, **f.metadata["option"])
        for f in fields(Settings)
        if "option" in f.metadata
    )


OPTIONS: tuple[Option, ...] = _collect_options()
"""The option table: one entry per setting, in declaration order."""

_OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every option's flags to ``parser``.

    Flags have no argparse default (absent flags leave no attribute), so :func:`load_settings` can
    tell "not given" from "given the default" and apply the precedence. Values stay strings here and
    are checked by :func:`load_settings`, so bad values get the same messages from every layer.
    """
    for option in OPTIONS:
        parser.add_argument(
            *option.flags,
            dest=option.name,
            default=argparse.SUPPRESS,
            # NOTE: a bare boolean flag (--read_only) means true; --read_only=false also works.
            **({"nargs": "?", "const": "true"} if option.type is bool else {}),
            metavar="PATH" if option.path else option.type.__name__.upper(),
            help=f"{option.doc} [env {option.env}; default {option.default!r}]".replace("%", "%%"),
        )
    _add_sts_flags(parser)


# --------------------------------------------------------------------------------------------------
# Merging the layers.


@dataclass(frozen=True)
class _Layer:
    """One source of option values, with what is needed to interpret and report them."""

    values: Mapping[str, Any]
    base_dir: str
    origin: Callable[[Option], str]


def _cli_layer(args: argparse.Namespace | None) -> _Layer:
    """Options given on the command line (attributes that are absent or ``None`` were not given)."""
    given = _sts_flags(args)  # NOTE: first: tfaas's own flags win over what STS's stand for
    for option in OPTIONS:
        value = getattr(args, option.name, None)
        if value is not None:
            given[option.name] = value
    return _Layer(given, os.getcwd(), lambda option: option.flags[0])


def _env_layer(environ: Mapping[str, str]) -> _Layer:
    """Options set by ``TFAAS_*`` environment variables; empty ones count as unset."""
    given = {option.name: environ[option.env] for option in OPTIONS if environ.get(option.env, "") != ""}
    return _Layer(given, os.getcwd(), lambda option: option.env)


def _file_layer(path: str) -> tuple[_Layer, Any]:
    """Read the YAML settings file; return its options as a layer, and its raw ``models`` entry."""
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of option names at the top level, got {raw!r}")
    allowed = [option.name for option in OPTIONS if option.name != "config_file"] + ["models"]
    _reject_unknown_keys(raw, allowed, path)
    values = {key: value for key, value in raw.items() if key != "models"}
    return _Layer(values, os.path.dirname(path), lambda option: path), raw.get("models")


def _option_value(option: Option, layers: Iterable[_Layer]) -> Any:
    """The value of ``option`` from the first layer that sets it, converted and checked."""
    for layer in layers:
        if option.name in layer.values:
            try:
                return _convert(option, layer.values[option.name], layer.base_dir)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (from {layer.origin(option)})") from None
    return option.default


def _convert(option: Option, raw: Any, base_dir: str) -> Any:
    """Coerce a raw value to the option's type, resolve it if it is a path, and check it."""
    value = _coerce(raw, option.type, option.name)
    if option.path and value:
        value = _absolute_path(value, base_dir, option.name)
    if option.check is not None:
        _checked(value, option.check, option.name)
    return value


def _check_retry_delays(values: Mapping[str, Any]) -> None:
    """Refuse a maximum retry delay below the initial one."""
    if values["load_retry_max_seconds"] < values["load_retry_initial_seconds"]:
        raise ConfigError(
            f"load_retry_max_seconds: must be >= load_retry_initial_seconds ({values['load_retry_initial_seconds']})"
        )


def _check_ports(values: Mapping[str, Any]) -> None:
    """Refuse gRPC and REST on one port (TF Serving then skips REST, with an error in its log)."""
    if values["grpc_port"] == values["rest_api_port"]:
        raise ConfigError(f"grpc_port: must differ from rest_api_port ({values['rest_api_port']})")


def _build_models(values: Mapping[str, Any], file_models: Any, config_file: str) -> tuple[ModelConfig, ...]:
    """Pick the model list: model_config_file, else YAML ``models``, else the single-model flags."""
    if values["model_config_file"]:
        if file_models:
            raise ConfigError(f"model_config_file: cannot be combined with 'models' in {config_file}; use one of them")
        _warn_single_model_ignored(values)
        return read_model_config_file(values["model_config_file"]) or ()
    if file_models:
        _warn_single_model_ignored(values)
        return _models_from_list(file_models, os.path.dirname(config_file), config_file)
    if values["model_base_path"]:
        # model_base_path is already absolute: _convert resolved it against its layer's directory.
        return (ModelConfig(name=_model_name(values["model_name"], "model_name"), base_path=values["model_base_path"]),)
    return ()


def _warn_single_model_ignored(values: Mapping[str, Any]) -> None:
    """Log that model_base_path is ignored because a model list is configured (TF Serving's rule)."""
    if values["model_base_path"]:
        logger.warning("model_name/model_base_path are ignored because a model list is configured")


def load_settings(args: argparse.Namespace | None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Merge command line, environment, YAML file and defaults into validated :class:`Settings`.

    ``args`` comes from a parser prepared with :func:`add_arguments` (``None``: no command line).
    Raises :class:`ConfigError` with a path-qualified message (``models[1].base_path: ...``) on the
    first problem found.
    """
    layers = [_cli_layer(args), _env_layer(environ)]
    config_file = _option_value(_OPTIONS_BY_NAME["config_file"], layers)
    file_models = None
    if config_file:
        file_layer, file_models = _file_layer(config_file)
        layers.append(file_layer)
    values = {option.name: _option_value(option, layers) for option in OPTIONS}
    _check_retry_delays(values)
    _check_ports(values)
    _check_basic_auth(values)
    return Settings(
        **values,
        models=_build_models(values, file_models, config_file),
        batching_parameters=_batching_parameters(values),
    )


def _batching_parameters(values: Mapping[str, Any]) -> BatchingParameters:
    """Parse ``batching_parameters_file``; like TF Serving, it needs ``enable_batching``."""
    path = values["batching_parameters_file"]
    if not path:
        return BatchingParameters()
    if not values["enable_batching"]:
        raise ConfigError("batching_parameters_file: Batching options set without enabling batching (enable_batching)")
    try:
        return batching.read_file(path)
    except InvalidArgument as error:
        raise ConfigError(f"batching_parameters_file: {error.message}") from None


def reload_models(settings: Settings) -> tuple[ModelConfig, ...] | None:
    """Read the model list again from the file it came from (for a config reload).

    Returns ``settings.models`` unchanged when they came from flags, and ``None`` when the model
    config file sets no list (see :func:`read_model_config_file`); raises :class:`ConfigError` when
    the file no longer parses or validates, so that the caller keeps the old list.
    """
    if settings.model_config_file:
        return read_model_config_file(settings.model_config_file)
    if settings.config_file:
        _, file_models = _file_layer(settings.config_file)
        if file_models:
            return _models_from_list(file_models, os.path.dirname(settings.config_file), settings.config_file)
    return settings.models


def model_list_file(settings: Settings) -> str:
    """The file the model list is read from ('' when it comes from flags): what a reload watches."""
    return settings.model_config_file or settings.config_file


def describe_options() -> str:
    """Render the option table as a Markdown table, for the documentation."""
    lines = [
        "| option | type | default | flags | environment | TF Serving | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        cells = (
            f"`{option.name}`",
            option.type.__name__,
            f"`{option.default!r}`",
            ", ".join(f"`{flag}`" for flag in option.flags),
            f"`{option.env}`",
            f"`{option.tf_flag}`" if option.tf_flag else "",
            option.doc.replace("|", "\\|"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
