"""One log format for tfaas and gunicorn: plain text for a terminal, JSON lines for log shippers.

A log call about one model passes ``extra=servable_fields(name, version)``; both formats then carry
``model`` (and ``version``) as fields of their own, so a log shipper can filter on them and a text
line can be grepped for ``model=half_plus_two``. gunicorn's access lines get the request's fields
(method, path, status, ...) in JSON, and the model a ``/v1/models/<name>`` URL names.

:func:`logging_config` builds the :func:`logging.config.dictConfig` dictionary that gunicorn applies
(its ``logconfig_dict`` setting) in the master before it forks, so every worker inherits it.

This module imports nothing from tfaas, so every layer (``tfaas.core`` included) may use it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

LOG_FORMATS = ("text", "json")
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
"""gunicorn's access line (its timestamp atom is left out: every line already starts with one)."""

_FIELDS = ("model", "version")
_MODEL_URL = re.compile(r"/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+))?", re.IGNORECASE)


def servable_fields(model: str, version: int | None = None) -> dict[str, Any]:
    """The ``extra=`` of a log call about ``model`` (and one of its versions)."""
    return {"model": model} if version is None else {"model": model, "version": version}


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 local time with milliseconds and the UTC offset: ``2025-01-31T12:00:00.123+0100``."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}{time.strftime('%z', time.localtime(record.created))}"


class TextFormatter(logging.Formatter):
    """``<time> [<pid>] [<LEVEL>] <logger>: <message> model=<m> version=<v>``, then any traceback."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # NOTE: the fields go before the traceback, which format() appends after this.
        line = super().formatMessage(record)
        fields = [f"{key}={getattr(record, key)}" for key in _FIELDS if hasattr(record, key)]
        return " ".join([line, *fields])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``pid``, ``message``, and ``model``,
    ``version``, the access fields, ``exception`` where they apply."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            entry.update(_access_fields(record.args))
        for key in _FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a gunicorn access line, from the atoms gunicorn formats it with."""
    fields: dict[str, Any] = {
        "remote_addr": atoms["h"],
        "method": atoms["m"],
        "path": atoms["U"],
        "status": _number(atoms["s"], int),
        "bytes": _number(atoms["B"], int),
        "duration_s": _number(atoms["L"], float),
        "user_agent": atoms["a"],
    }
    if atoms["q"]:
        fields["query"] = atoms["q"]
    url = _MODEL_URL.match(str(atoms["U"] or ""))
    if url:
        fields["model"] = url.group("model")
        if url.group("version"):
            fields["version"] = int(url.group("version"))
    return fields


def _number(value: Any, kind: type) -> Any:
    """``value`` as an int or float, or ``None`` where gunicorn has none (``-``)."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def logging_config(log_format: str, level: str, access_log: str = "") -> dict[str, Any]:
    """The ``dictConfig`` dictionary for tfaas's and gunicorn's loggers.

    Everything goes to stderr in ``log_format``; access lines go to stderr too when ``access_log``
    is ``-``, to that file when it is a path, and nowhere when it is empty. Other libraries'
    loggers (TensorFlow's among them) reach the root logger: warnings and above, same format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    formatter = {"()": f"tfaas.logs.{'JsonFormatter' if log_format == 'json' else 'TextFormatter'}"}
    handlers: dict[str, Any] = {
        "stderr": {"class": "logging.StreamHandler", "formatter": "tfaas", "stream": "ext://sys.stderr"}
    }
    access_handlers = []
    if access_log == "-":
        access_handlers = ["stderr"]
    elif access_log:
        handlers["access_file"] = {"class": "logging.FileHandler", "formatter": "tfaas", "filename": access_log}
        access_handlers = ["access_file"]
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tfaas": formatter},
        "handlers": handlers,
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "tfaas": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": access_handlers, "propagate": False},
        },
    }
