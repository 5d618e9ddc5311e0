"""The ``tfaas`` command line: invalid configuration stops it at once, naming the field."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rest_api_port", "abc"], "rest_api_port: expected an integer, got 'abc'"),
        (["--model_base_path", "/x", "--workers", "-1"], "workers: must be >= 0"),
        (["--model_config_file", "/nonexistent/models.config"], "/nonexistent/models.config"),
    ],
)
def test_invalid_configuration_fails_at_start(args, message):
    result = subprocess.run([sys.executable, "-m", "tfaas", "serve", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
