"""Package-wide promises: cheap imports (no TensorFlow in gunicorn's master) and a clean lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.installed import installed_script

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_server_side_does_not_import_tensorflow_or_grpc():
    """Neither may be in gunicorn's master: TensorFlow is not fork-safe, and grpcio's threads would not
    survive the fork of the workers."""
    code = (
        "import sys, tfaas.cli, tfaas.server.app, tfaas.server.gunicorn_app, tfaas.server_core;"
        "print('tensorflow' in sys.modules, 'grpc' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_ruff_finds_nothing():
    ruff = installed_script("ruff", "pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
