"""Fixtures for every test package: TF Serving's test models (see ``tests/tfserving_models.py``)."""

from __future__ import annotations

import pytest

from tests.tfserving_models import SOURCES, TFSERVING_TESTDATA, TfServingTestdata


@pytest.fixture(scope="session")
def tfserving_testdata_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TfServingTestdata]:
    """TF Serving's testdata folder from every source: rebuilt with TensorFlow (each entry on first use,
    once per session), and TF Serving's own copy where it is present."""
    sources = {"built": TfServingTestdata.build(tmp_path_factory.mktemp("tfserving"))}
    if "tfserving" in SOURCES:
        sources["tfserving"] = TfServingTestdata(TFSERVING_TESTDATA)
    return sources


@pytest.fixture(scope="module", params=SOURCES)
def tfserving_testdata(
    request: pytest.FixtureRequest, tfserving_testdata_sources: dict[str, TfServingTestdata]
) -> TfServingTestdata:
    """TF Serving's testdata folder, once per source: a test that takes it runs on each.

    NOTE: module scope, not session: pytest groups tests by a parameter across its fixture's scope, so
    a session-scoped one would split every module in two and set its module fixtures (servers) up again.
    """
    return tfserving_testdata_sources[request.param]
