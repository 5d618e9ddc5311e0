"""Fixtures for every test package: TF Serving's test models (see ``tests/tfserving_models.py``)."""

from __future__ import annotations

import pytest

from tests.tfserving_models import TFSERVING_TESTDATA, TfServingTestdata

TESTDATA_SOURCES = ["built", "tfserving"] if TFSERVING_TESTDATA.is_dir() else ["built"]
"""``built``: the models built here, always. ``tfserving``: TF Serving's own files, a conformance layer
that runs the same tests where ``../shared`` is beside the checkout (absent, it is not collected)."""


@pytest.fixture(scope="session")
def built_testdata(tmp_path_factory: pytest.TempPathFactory) -> TfServingTestdata:
    """TF Serving's testdata folder rebuilt with TensorFlow, each entry on first use, once per session."""
    return TfServingTestdata.build(tmp_path_factory.mktemp("tfserving"))


@pytest.fixture(scope="session", params=TESTDATA_SOURCES)
def tfserving_testdata(request: pytest.FixtureRequest) -> TfServingTestdata:
    """TF Serving's testdata folder, once per source in ``TESTDATA_SOURCES``."""
    if request.param == "built":
        return request.getfixturevalue("built_testdata")
    return TfServingTestdata(TFSERVING_TESTDATA)
