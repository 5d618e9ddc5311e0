"""What ``pip install .`` ships: every directory of tfaas that holds modules is a package setup.py finds.

NOTE: an editable install imports from the checkout, so a directory without ``__init__.py`` works there
and in the tests, and is missing from a real install (the image's, install.sh's).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def test_every_directory_with_modules_is_a_shipped_package():
    shipped = set(find_packages(str(REPO), include=["tfaas", "tfaas.*"]))
    with_modules = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "tfaas").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert with_modules <= shipped, f"not shipped (no __init__.py): {sorted(with_modules - shipped)}"
