"""``signature_def_map_json``: the ``metadata.signature_def`` object of TF Serving's metadata call.

Compared with the JSON TF Serving itself returned for its test models (the ``*_metadata.json`` files).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from tests.servables.conftest import TESTDATA
from tfaas.servables.saved_model import SavedModelServable


def _tf_serving_signature_defs(file_name: str) -> dict[str, Any]:
    """``metadata.signature_def`` of one of TF Serving's metadata responses in the testdata."""
    return json.loads((TESTDATA / file_name).read_text())["metadata"]["signature_def"]


def test_half_plus_two_equals_tf_serving(half_plus_two: SavedModelServable) -> None:
    expected = _tf_serving_signature_defs("half_plus_two_model_metadata.json")
    assert half_plus_two.signature_def_map_json() == expected


def test_two_versions_equals_tf_serving(half_plus_two_2_versions: SavedModelServable) -> None:
    expected = _tf_serving_signature_defs("saved_model_half_plus_two_2_versions_metadata.json")
    assert half_plus_two_2_versions.signature_def_map_json() == expected


def test_tf2_differs_from_tf_serving_only_where_the_models_and_the_file_do(
    half_plus_two_tf2: SavedModelServable,
) -> None:
    """The file comes from ``saved_model_half_plus_two_tf2_2_versions``, not our ``..._tf2_cpu`` export.

    Two differences, neither a formatting rule: our export's ``serving_default`` has a default value for
    ``x`` (``defaults`` is non-empty), and the file's ``__saved_model_init_op`` lacks ``"defaults": {}``
    because TF Serving's authors added that key to the file by hand (commit 65b13b76) and missed that
    entry; protobuf JSON prints the empty map for every SignatureDef.
    """
    got = half_plus_two_tf2.signature_def_map_json()["signature_def"]
    expected = _tf_serving_signature_defs("saved_model_half_plus_two_tf2_2_versions_metadata.json")["signature_def"]
    assert got.keys() == expected.keys()
    assert got["__saved_model_init_op"] == {**expected["__saved_model_init_op"], "defaults": {}}
    default_x = got["serving_default"]["defaults"]["x"]
    assert (default_x["dtype"], default_x["float_val"]) == ("DT_FLOAT", [0.0])
    assert {**got["serving_default"], "defaults": {}} == expected["serving_default"]
    assert {key: value for key, value in got.items() if key not in ("__saved_model_init_op", "serving_default")} == {
        key: value for key, value in expected.items() if key not in ("__saved_model_init_op", "serving_default")
    }


def test_internal_signatures_are_listed(half_plus_two_tf2: SavedModelServable) -> None:
    assert "__saved_model_init_op" in half_plus_two_tf2.signature_def_map_json()["signature_def"]
    assert "__saved_model_init_op" not in half_plus_two_tf2.signatures


def test_signatures_as_written_not_as_patched(half_plus_three: SavedModelServable, counter: SavedModelServable) -> None:
    # The loader restores these from a patched copy (shapes filled in, reference outputs dereferenced).
    regress = half_plus_three.signature_def_map_json()["signature_def"]["tensorflow/serving/regress"]
    assert regress["inputs"] == {"inputs": {"name": "tf_example:0", "dtype": "DT_FLOAT"}}
    output = counter.signature_def_map_json()["signature_def"]["incr_counter"]["outputs"]["output"]
    assert (output["dtype"], output["name"]) == ("DT_FLOAT_REF", "incr_counter_op/AssignAdd:0")


def test_computed_once_and_json_serializable(half_plus_two: SavedModelServable) -> None:
    first = half_plus_two.signature_def_map_json()
    assert half_plus_two.signature_def_map_json() is first
    assert orjson.loads(orjson.dumps(first)) == first


def test_keys_are_sorted(half_plus_two_2_versions: SavedModelServable) -> None:
    keys = list(half_plus_two_2_versions.signature_def_map_json()["signature_def"])
    assert keys == sorted(keys)
