"""The ``tfaas`` command line: invalid configuration stops it at once, naming the field."""

from __future__ import annotations

import glob
import socket
import subprocess
import sys

import pytest

from tfaas.cli import prepare_tensorflow


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rest_api_port", "abc"], "rest_api_port: expected an integer, got 'abc'"),
        (["--port", "8501"], "grpc_port: must differ from rest_api_port (8501)"),
        (["--model_base_path", "/x", "--workers", "-1"], "workers: must be >= 0"),
        (["--model_config_file", "/nonexistent/models.config"], "/nonexistent/models.config"),
    ],
)
def test_invalid_configuration_fails_at_start(args, message):
    result = subprocess.run([sys.executable, "-m", "tfaas", "serve", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


GPU = bool(glob.glob("/dev/nvidia[0-9]*"))
CPU_ONLY = {} if GPU else {"TF_ENABLED_DEVICE_TYPES": "CPU"}


@pytest.mark.parametrize(
    "environ,expected",
    [
        ({}, {"TF_CPP_MIN_LOG_LEVEL": "1", **CPU_ONLY}),
        ({"CUDA_VISIBLE_DEVICES": "0"}, {"TF_CPP_MIN_LOG_LEVEL": "1", "CUDA_VISIBLE_DEVICES": "0"}),
        ({"TF_ENABLED_DEVICE_TYPES": "CPU,GPU", "TF_CPP_MIN_LOG_LEVEL": "0"}, None),
    ],
    ids=["operator chose nothing", "operator chose GPUs", "operator chose TensorFlow's settings"],
)
def test_tensorflow_looks_only_for_a_cpu_where_there_is_no_gpu_unless_the_operator_chose(environ, expected):
    given = dict(environ)
    prepare_tensorflow(environ)
    assert environ == (given if expected is None else expected)


def test_a_grpc_port_in_use_stops_the_server_at_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            rest_port = free.getsockname()[1]
        command = [sys.executable, "-m", "tfaas", "serve", "--host", "127.0.0.1", "--rest_api_port", str(rest_port)]
        command += ["--port", str(port), "--model_base_path", "/nonexistent"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"Connection in use: 127.0.0.1:{port}" in result.stderr
