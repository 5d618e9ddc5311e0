"""One log format for tfaas and gunicorn: plain text for a terminal, JSON lines for log shippers.

A log call about one model passes ``extra=servable_fields(name, version)``; both formats then carry
``model`` (and ``version``) as fields of their own, so a log shipper can filter on them and a text
line can be grepped for ``model=half_plus_two``. gunicorn's access lines get the request's fields
(method, path, status, ...) in JSON, and the model a ``/v1/models/<name>`` URL names.

:func:`logging_config` builds the :func:`logging.config.dictConfig` dictionary that gunicorn applies
(its ``logconfig_dict`` setting) in the master before it forks, so every worker inherits it; the
command line applies it first (:func:`configure`), replaying what was logged while the settings were
read (:class:`HeldRecords`), so that its first lines have the format too.

TensorFlow's C++ code writes its own lines to stderr (absl's ``I0000 00:00:... file.cc:12] text``),
at start before any setting of TensorFlow's applies: :func:`native_lines_logged` and
:func:`log_native_lines` turn them into records of the ``tensorflow`` logger, at their level.

This module imports nothing from tfaas, so every layer (``tfaas.core`` included) may use it.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


def configure(log_format: str, level: str, access_log: str = "") -> None:
    """Apply :func:`logging_config` to this process."""
    logging.config.dictConfig(logging_config(log_format, level, access_log))


class HeldRecords(logging.Handler):
    """Holds every record logged before the log format is known (while the settings are read), to
    replay them once it is, through the loggers as then configured."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._root_level = logging.NOTSET

    @classmethod
    def install(cls) -> HeldRecords:
        """Hold the records of every logger from now on (the root logger's level is lowered meanwhile)."""
        held = cls()
        root = logging.getLogger()
        held._root_level = root.level
        root.addHandler(held)
        root.setLevel(logging.DEBUG)
        return held

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def replay(self, log_format: str, level: str, access_log: str = "") -> None:
        """:func:`configure` logging, then log the held records as their loggers now allow."""
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._root_level)
        configure(log_format, level, access_log)
        for record in self.records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        self.records = []


_NATIVE_LINE = re.compile(
    r"(?:(?P<level>[IWEF])\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: (?P<tf_level>[IWEF]) )"
    r"(?P<source>[^\]\s]+)\] (?P<text>.*)"
)
"""absl's line (``I0000 00:00:1795.5 1234 port.cc:153] text``) or TensorFlow's own
(``2025-01-31 12:00:00.5: I a.cc:9] text``)."""
_NATIVE_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
"""What absl writes once before its first line: about the raw stderr lines this module replaces."""


def log_native_lines(logger: logging.Logger, text: str) -> None:
    """Log absl-formatted lines (TensorFlow's C++ logging) through ``logger``, each at its level.

    A line without absl's prefix continues the line before it (a message of several lines); one with
    no line before it is logged as a warning.
    """
    level, lines = logging.WARNING, []
    for line in text.splitlines():
        match = _NATIVE_LINE.fullmatch(line)
        if match or line == _ABSL_PREAMBLE or not lines:
            if lines:
                logger.log(level, "\n".join(lines))
            if match:
                level = _NATIVE_LEVELS[match["level"] or match["tf_level"]]
                line = f"{match['source']}: {match['text']}"
            else:
                level = logging.INFO if line == _ABSL_PREAMBLE else logging.WARNING
            lines = [line]
        else:
            lines.append(line)
    if lines:
        logger.log(level, "\n".join(lines))


@contextmanager
def native_lines_logged(logger: logging.Logger) -> Iterator[None]:
    """Log what is written to the stderr file descriptor during the ``with`` body (by C++ code that
    bypasses Python's logging) through ``logger`` afterwards, as :func:`log_native_lines` does.

    NOTE: meant for a short, single-threaded stretch such as importing TensorFlow; Python's own writes
    to stderr in it are captured too, and what is written just before the process crashes is lost.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        stderr = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(stderr, 2)
            os.close(stderr)
            captured.seek(0)
            log_native_lines(logger, captured.read().decode(errors="replace"))
