"""PAI-EAS's own Python SDK (``eas-prediction`` from PyPI) in a virtual environment of its own, for the e2e tests.

The SDK pins ``protobuf<=3.20.3`` (its generated modules predate protobuf 4), which cannot live beside the
server's protobuf 7, so it gets its own interpreter: ``python -m venv`` plus ``pip install`` of the pinned
version, once per SDK version and Python version in a cache directory (``$TFAAS_TEST_CACHE``, else
``~/.cache/tfaas-tests``), under a lock, and bounded in time. Tests run ``eas_sdk_client.py`` in it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

SDK_VERSION = "0.36"
INSTALL_SECONDS = 300
CLIENT = Path(__file__).with_name("eas_sdk_client.py")


def cache_dir() -> Path:
    return Path(os.environ.get("TFAAS_TEST_CACHE") or Path.home() / ".cache" / "tfaas-tests")


class EasSdk:
    """The SDK's interpreter: :meth:`run` makes calls through the SDK's ``PredictClient``."""

    def __init__(self, python: Path) -> None:
        self.python = python

    def run(self, endpoint: str, calls: Sequence[Mapping[str, Any]], tz: str = "UTC") -> list[dict[str, Any]]:
        """The answers to ``calls`` (see ``eas_sdk_client.py``), made from a client whose local time zone is
        ``tz`` (a POSIX TZ string: ``CST-8`` is UTC+8 without any zone file)."""
        result = subprocess.run(
            [str(self.python), str(CLIENT)],
            input=json.dumps({"endpoint": endpoint, "calls": list(calls)}),
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": os.environ.get("PATH", ""), "TZ": tz},
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def install_sdk() -> EasSdk:
    """The SDK's virtual environment, made on first use (a half-made one, from an interrupted run, is remade)."""
    root = cache_dir() / f"eas-prediction-{SDK_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = root / "ready"
        if not ready.is_file():
            shutil.rmtree(root, ignore_errors=True)
            _make_venv(root)
            ready.write_text(SDK_VERSION)
    return EasSdk(root / "bin" / "python")


def _make_venv(root: Path) -> None:
    # NOTE: the base interpreter, not this venv's python, so nothing of the server's environment leaks in.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root)], check=True, timeout=INSTALL_SECONDS)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([*pip, f"eas-prediction=={SDK_VERSION}"], check=True, timeout=INSTALL_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"pip install eas-prediction=={SDK_VERSION} took over {INSTALL_SECONDS} s") from error
