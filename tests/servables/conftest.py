"""TF Serving's test models loaded for the servable tests, each once per module and testdata source.

The models come from ``tfserving_testdata`` (``tests/conftest.py``): built with TensorFlow, and TF
Serving's own copies where ``../shared`` is present.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tfserving_models import TfServingTestdata
from tfaas.core.servable_id import ServableId
from tfaas.servables.saved_model import SavedModelLoader, SavedModelServable

VERSION = "00000123"
"""The version every one of TF Serving's test models has."""


def model_path(testdata: TfServingTestdata, folder: str) -> Path:
    """Version 123 of the model in ``folder`` of the testdata."""
    return testdata.path(folder) / VERSION


def load_model(path: Path) -> SavedModelServable:
    """Load the SavedModel version at ``path``, named after its folders."""
    return SavedModelLoader(ServableId(path.parent.name, int(path.name)), str(path)).load()


@pytest.fixture(scope="module")
def half_plus_two(tfserving_testdata: TfServingTestdata) -> SavedModelServable:
    """``saved_model_half_plus_two_cpu``: TF1, the classic REST example model (served as ``default``)."""
    return load_model(model_path(tfserving_testdata, "saved_model_half_plus_two_cpu"))


@pytest.fixture(scope="module")
def half_plus_two_2_versions(tfserving_testdata: TfServingTestdata) -> SavedModelServable:
    """``saved_model_half_plus_two_2_versions`` version 123: as ``half_plus_two`` plus ``classify_x2_to_y3``."""
    return load_model(model_path(tfserving_testdata, "saved_model_half_plus_two_2_versions"))


@pytest.fixture(scope="module")
def half_plus_two_tf2(tfserving_testdata: TfServingTestdata) -> SavedModelServable:
    """``saved_model_half_plus_two_tf2_cpu``: a TF2 export whose signatures all have method predict."""
    return load_model(model_path(tfserving_testdata, "saved_model_half_plus_two_tf2_cpu"))


@pytest.fixture(scope="module")
def half_plus_three(tfserving_testdata: TfServingTestdata) -> SavedModelServable:
    """``saved_model_half_plus_three``: TF1 with shapeless signatures and a mistyped tf.Example input."""
    return load_model(model_path(tfserving_testdata, "saved_model_half_plus_three"))


@pytest.fixture(scope="module")
def counter(tfserving_testdata: TfServingTestdata) -> SavedModelServable:
    """``saved_model_counter``: stateful, reference-typed outputs."""
    return load_model(model_path(tfserving_testdata, "saved_model_counter"))
