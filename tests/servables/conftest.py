"""TF Serving's own test models, shared by the servable tests: paths, and fixtures loading each once per module.

The models live outside the repository (``../shared/testdata/tfserving``); where that folder is absent,
the fixtures skip the tests that need them, so model-free tests in the same module still run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tfaas.core.servable_id import ServableId
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "tfserving"
NO_TESTDATA = "../shared/testdata/tfserving not present"

HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"
HALF_PLUS_TWO_2_VERSIONS = TESTDATA / "saved_model_half_plus_two_2_versions" / "00000123"
HALF_PLUS_TWO_TF2 = TESTDATA / "saved_model_half_plus_two_tf2_cpu" / "00000123"
HALF_PLUS_THREE = TESTDATA / "saved_model_half_plus_three" / "00000123"
COUNTER = TESTDATA / "saved_model_counter" / "00000123"


def load_model(path: Path) -> SavedModelServable:
    """Load the SavedModel version at ``path`` (named after its folders), skipping without the testdata."""
    if not TESTDATA.is_dir():
        pytest.skip(NO_TESTDATA)
    return SavedModelLoader(ServableId(path.parent.name, int(path.name)), str(path)).load()


@pytest.fixture(scope="module")
def half_plus_two() -> SavedModelServable:
    """``saved_model_half_plus_two_cpu``: TF1, the classic REST example model (served as ``default``)."""
    return load_model(HALF_PLUS_TWO)


@pytest.fixture(scope="module")
def half_plus_two_2_versions() -> SavedModelServable:
    """``saved_model_half_plus_two_2_versions`` version 123: as ``half_plus_two`` plus ``classify_x2_to_y3``."""
    return load_model(HALF_PLUS_TWO_2_VERSIONS)


@pytest.fixture(scope="module")
def half_plus_two_tf2() -> SavedModelServable:
    """``saved_model_half_plus_two_tf2_cpu``: a TF2 export whose signatures all have method predict."""
    return load_model(HALF_PLUS_TWO_TF2)


@pytest.fixture(scope="module")
def half_plus_three() -> SavedModelServable:
    """``saved_model_half_plus_three``: TF1 with shapeless signatures and a mistyped tf.Example input."""
    return load_model(HALF_PLUS_THREE)


@pytest.fixture(scope="module")
def counter() -> SavedModelServable:
    """``saved_model_counter``: stateful, reference-typed outputs."""
    return load_model(COUNTER)
