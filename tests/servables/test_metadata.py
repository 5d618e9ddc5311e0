"""``signature_def_map_json``: the ``metadata.signature_def`` object of TF Serving's metadata call.

Compared with the JSON written out in ``tests/tfserving_models.py`` for TF Serving's test models, and, where
TF Serving's own copy is tested, with the JSON TF Serving itself returned for them (its ``*_metadata.json``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from tests.tfserving_models import SIGNATURE_DEFS_JSON, TfServingTestdata
from tfaas.servables.saved_model import SavedModelServable


def _tf_serving_signature_defs(testdata: TfServingTestdata, file_name: str) -> dict[str, Any]:
    """``metadata.signature_def.signature_def`` of one of TF Serving's metadata responses in its testdata."""
    return json.loads(testdata.path(file_name).read_text())["metadata"]["signature_def"]["signature_def"]


def _expected(testdata: TfServingTestdata, folder: str, file_name: str) -> dict[str, Any]:
    """The written-out JSON for ``folder``; on TF Serving's own copy, first checked against its file."""
    expected = SIGNATURE_DEFS_JSON[folder]
    if not testdata.built:
        assert _tf_serving_signature_defs(testdata, file_name) == expected
    return {"signature_def": expected}


def test_half_plus_two_equals_tf_serving(
    half_plus_two: SavedModelServable, tfserving_testdata: TfServingTestdata
) -> None:
    expected = _expected(tfserving_testdata, "saved_model_half_plus_two_cpu", "half_plus_two_model_metadata.json")
    assert half_plus_two.signature_def_map_json() == expected


def test_two_versions_equals_tf_serving(
    half_plus_two_2_versions: SavedModelServable, tfserving_testdata: TfServingTestdata
) -> None:
    folder = "saved_model_half_plus_two_2_versions"
    assert half_plus_two_2_versions.signature_def_map_json() == _expected(
        tfserving_testdata, folder, f"{folder}_metadata.json"
    )


def test_tf2_equals_tf_serving_but_for_serving_defaults(
    half_plus_two_tf2: SavedModelServable, tfserving_testdata: TfServingTestdata
) -> None:
    """A TF2 export of ``x=tf.constant([0.0])`` gives ``serving_default`` a default for ``x``.

    TF Serving's JSON file comes from ``saved_model_half_plus_two_tf2_2_versions``, not the ``..._tf2_cpu``
    export, and differs in two places, neither a formatting rule: its ``serving_default`` has no default,
    and its ``__saved_model_init_op`` lacks ``"defaults": {}`` because TF Serving's authors added that key
    to the file by hand (commit 65b13b76) and missed that entry; protobuf JSON prints the empty map for
    every SignatureDef.
    """
    expected = SIGNATURE_DEFS_JSON["saved_model_half_plus_two_tf2_cpu"]
    got = half_plus_two_tf2.signature_def_map_json()["signature_def"]
    default_x = got["serving_default"]["defaults"]["x"]
    assert (default_x["dtype"], default_x["float_val"]) == ("DT_FLOAT", [0.0])
    assert {**got, "serving_default": {**got["serving_default"], "defaults": {}}} == expected
    if not tfserving_testdata.built:
        file = _tf_serving_signature_defs(tfserving_testdata, "saved_model_half_plus_two_tf2_2_versions_metadata.json")
        assert {**file, "__saved_model_init_op": {**file["__saved_model_init_op"], "defaults": {}}} == expected


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
