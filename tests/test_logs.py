"""The log formats: text and JSON lines, with the model and version as fields of their own."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest

from tfaas.logs import (
    JsonFormatter,
    TextFormatter,
    log_native_lines,
    logging_config,
    native_lines_logged,
    servable_fields,
)


def record(message: str = "Loaded servable %s", args: tuple = ("{name: m version: 3}",), **extra) -> logging.LogRecord:
    made = logging.LogRecord("tfaas.manager", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_text_line_ends_with_the_model_and_version_fields():
    line = TextFormatter().format(record(**servable_fields("m", 3)))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} \[\d+\] \[INFO\] tfaas\.manager: "
        r"Loaded servable \{name: m version: 3\} model=m version=3",
        line,
    ), line


def test_text_line_without_a_model_has_no_fields():
    assert TextFormatter().format(record("Starting", ())).endswith("tfaas.manager: Starting")


def test_json_line_is_one_object_with_the_fields():
    entry = json.loads(JsonFormatter().format(record(**servable_fields("m", 3))))
    assert entry.pop("time")
    assert entry == {
        "level": "INFO",
        "logger": "tfaas.manager",
        "pid": entry["pid"],
        "message": "Loaded servable {name: m version: 3}",
        "model": "m",
        "version": 3,
    }
    assert "version" not in json.loads(JsonFormatter().format(record(**servable_fields("m"))))


def test_json_keeps_a_traceback_in_the_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        made = logging.LogRecord("tfaas", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(made)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_json_access_line_has_the_request_fields():
    atoms = {"h": "10.0.0.1", "m": "POST", "U": "/v1/models/m/versions/2:predict", "q": "", "s": "200"}
    atoms |= {"B": 23, "L": "0.004200", "a": "curl/8", "r": "POST /v1/models/m/versions/2:predict HTTP/1.1"}
    made = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s', (atoms,), None)
    entry = json.loads(JsonFormatter().format(made))
    assert entry["message"] == '10.0.0.1 "POST /v1/models/m/versions/2:predict HTTP/1.1" 200'
    assert {k: entry[k] for k in ("method", "path", "status", "bytes", "duration_s", "model", "version")} == {
        "method": "POST",
        "path": "/v1/models/m/versions/2:predict",
        "status": 200,
        "bytes": 23,
        "duration_s": 0.0042,
        "model": "m",
        "version": 2,
    }


CONFIGURE_AND_LOG = """
import logging, logging.config, sys
from tfaas.logs import logging_config, servable_fields
logging.config.dictConfig(logging_config(sys.argv[1], "info"))
logging.getLogger("tfaas.manager").info("one", extra=servable_fields("m", 1))
logging.getLogger("gunicorn.error").info("two")
logging.getLogger("gunicorn.access").info("not logged: access_log is off")
logging.getLogger("tfaas.manager").debug("not logged: below info")
logging.getLogger("tensorflow").warning("three: other libraries' warnings too")
"""


@pytest.mark.parametrize("log_format,first", [("text", "2"), ("json", "{")])
def test_config_routes_tfaas_and_gunicorn_through_one_format(log_format, first):
    # NOTE: in a child process: dictConfig closes every handler of the process it runs in (pytest's too).
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURE_AND_LOG, log_format], capture_output=True, text=True, check=True
    )
    lines = result.stderr.splitlines()
    assert result.stdout == "" and len(lines) == 3 and all(line.startswith(first) for line in lines), lines
    assert "model=m version=1" in lines[0] if log_format == "text" else json.loads(lines[0])["model"] == "m"


def test_access_log_goes_to_stderr_or_a_file(tmp_path):
    assert logging_config("text", "info", "-")["loggers"]["gunicorn.access"]["handlers"] == ["stderr"]
    config = logging_config("json", "info", str(tmp_path / "access.log"))
    assert config["loggers"]["gunicorn.access"]["handlers"] == ["access_file"]
    assert config["handlers"]["access_file"]["filename"] == str(tmp_path / "access.log")
    with pytest.raises(ValueError):
        logging_config("xml", "info")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def tensorflow_logger():
    logger = logging.getLogger("test.tensorflow")
    handler = Records()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, handler.records
    logger.removeHandler(handler)


TENSORFLOW_START = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795980300.514048   18596 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1795980300.617380   18596 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, rebuild TensorFlow.
E0000 00:00:1795979770.866866    5691 cuda_platform.cc:52] failed call to cuInit: INTERNAL
2025-09-17 14:44:05.176998: W external/xla/cuda_fft.cc:467] Unable to register cuFFT factory
"""


def test_tensorflow_native_lines_become_records_at_their_level(tensorflow_logger):
    logger, records = tensorflow_logger
    log_native_lines(logger, "stray output\n" + TENSORFLOW_START)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "stray output"),
        ("INFO", "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"),
        ("INFO", "port.cc:153: oneDNN custom operations are on."),
        (
            "INFO",
            "cpu_feature_guard.cc:227: This TensorFlow binary is optimized.\n"
            "To enable the following instructions: AVX2 FMA, rebuild TensorFlow.",
        ),
        ("ERROR", "cuda_platform.cc:52: failed call to cuInit: INTERNAL"),
        ("WARNING", "external/xla/cuda_fft.cc:467: Unable to register cuFFT factory"),
    ]


def test_what_native_code_writes_to_stderr_is_logged_after_the_block(tensorflow_logger, capfd):
    logger, records = tensorflow_logger
    with native_lines_logged(logger):
        os.write(2, b"W0000 00:00:1795980300.5 18596 loader.cc:9] from C++\n")
        assert not records
    assert [(r.levelname, r.getMessage()) for r in records] == [("WARNING", "loader.cc:9: from C++")]
    assert capfd.readouterr().err == ""


HOLD_THEN_CONFIGURE = """
import logging
from tfaas.logs import HeldRecords
held = HeldRecords.install()
logging.getLogger("tfaas.config").warning("one: before the format is known")
logging.getLogger("tfaas.cli").info("two")
logging.getLogger("tfaas.cli").debug("not logged: below info")
held.replay("json", "info")
logging.getLogger("tfaas.cli").info("three")
"""


def test_records_logged_before_the_format_is_known_come_out_in_it_and_in_order():
    result = subprocess.run([sys.executable, "-c", HOLD_THEN_CONFIGURE], capture_output=True, text=True, check=True)
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("WARNING", "tfaas.config", "one: before the format is known"),
        ("INFO", "tfaas.cli", "two"),
        ("INFO", "tfaas.cli", "three"),
    ]
