"""Fixtures for the deployment tests: the end-to-end tests' SavedModels."""

from __future__ import annotations

from tests.e2e.conftest import half_plus  # noqa: F401 - a fixture, used by name
