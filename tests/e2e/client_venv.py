"""A client library in a virtual environment of its own, for e2e tests whose client cannot live beside the
server's packages (PAI-EAS's SDK pins ``protobuf<=3.20.3``, tritonclient's gRPC client ``protobuf<7``; the
server needs protobuf 7).

:func:`client_python` makes the environment with ``python -m venv`` and ``pip install`` of pinned
requirements, once per name and Python version in a cache directory (``$TFAAS_TEST_CACHE``, else
``~/.cache/tfaas-tests``), under a lock and bounded in time; a half-made one, from an interrupted run, is
made again. :func:`run_client` runs a client script in it: a plan as JSON on stdin, the answers as JSON on
stdout.
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

INSTALL_SECONDS = 300


def cache_dir() -> Path:
    return Path(os.environ.get("TFAAS_TEST_CACHE") or Path.home() / ".cache" / "tfaas-tests")


def client_python(name: str, requirements: Sequence[str]) -> Path:
    """The interpreter of the environment ``name`` holding ``requirements``, made on first use."""
    root = cache_dir() / f"{name}-py{sys.version_info[0]}{sys.version_info[1]}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = root / "ready"
        if not ready.is_file():
            shutil.rmtree(root, ignore_errors=True)
            _make_venv(root, requirements)
            ready.write_text("\n".join(requirements))
    return root / "bin" / "python"


def _make_venv(root: Path, requirements: Sequence[str]) -> None:
    # NOTE: the base interpreter, not this venv's python, so nothing of the server's environment leaks in.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root)], check=True, timeout=INSTALL_SECONDS)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([*pip, *requirements], check=True, timeout=INSTALL_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"pip install {' '.join(requirements)} took over {INSTALL_SECONDS} s") from error


def run_client(python: Path, script: Path, plan: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Any:
    """What ``script`` (run by ``python``, in a clean environment plus ``env``) prints for ``plan``."""
    result = subprocess.run(
        [str(python), str(script)],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
