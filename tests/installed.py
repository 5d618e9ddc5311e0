"""Finding the programs that ``pip install -e '.[test]'`` puts beside the interpreter running the tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def installed_script(name: str, install: str) -> str:
    """The path of console script ``name``: beside ``sys.executable`` (so a virtual environment need not be
    activated), else on ``PATH``; where neither has it, the test skips, saying that ``install`` brings it."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({install} installs it)")
    return found
