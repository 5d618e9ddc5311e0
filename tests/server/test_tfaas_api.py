"""TFaaS's API in-process, through the worker's ASGI app: the URL prefix, who may write (model management,
read-only mode, the admin token) and where form parts are stored (no model is loaded)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import pytest

from tests.server.conftest import MANAGED
from tfaas.config import Settings
from tfaas.fronts.model_management import warn_if_anyone_may_write


def form_upload(client, path="/upload", params=None, labels=None, model_file="model.pb", **headers):
    """TFaaS's form upload of model ``m``; ``labels`` is ``(file name, content)``."""
    params = {"name": "m", "model": "model.pb"} if params is None else params
    data = {
        "name": "m",
        "params": (io.BytesIO(json.dumps(params).encode()), "params.json"),
        "model": (io.BytesIO(b"graph"), model_file),
    }
    if labels is not None:
        data["labels"] = (io.BytesIO(labels[1]), labels[0])
    return client.post(path, data=data, headers=headers)


def test_api_is_also_served_under_the_prefix(client_for, tmp_path):
    client = client_for(tfaas_api_prefix="/tfaas")
    assert client.get("/tfaas/models").status_code == 200
    assert client.get("/models").status_code == 200
    assert form_upload(client, "/tfaas/upload").json == {"name": "m", "version": 1}
    assert (tmp_path / "repo" / "m" / "1" / "model.pb").read_bytes() == b"graph"


@pytest.mark.parametrize(
    "settings,refusal",
    [
        ({"enable_model_management": False}, "start the server with --enable_model_management"),
        ({"read_only": True}, "read-only"),
    ],
    ids=["management off (the default)", "read-only wins"],
)
def test_writes_refused_with_403_write_nothing(client_for, tmp_path, settings, refusal):
    (tmp_path / "repo" / "kept" / "1").mkdir(parents=True)
    client = client_for(**settings)
    answers = [form_upload(client), client.delete("/delete/kept"), client.post("/params", json={"name": "kept"})]
    for answer in answers:
        assert answer.status_code == 403 and answer.content_type == "application/json"
        assert refusal in answer.json["error"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["repo", "repo/kept", "repo/kept/1"]
    assert client.get("/models").status_code == 200, "reads still work"


def test_management_is_off_by_default():
    assert Settings().enable_model_management is False


@pytest.mark.parametrize(
    "settings,warned",
    [
        ({}, True),
        ({"admin_token": "s3cret"}, False),
        ({"enable_model_management": False}, False),
        ({"read_only": True}, False),
        ({"model_repository": ""}, True),  # NOTE: the V2 repository's load and unload need none
    ],
)
def test_start_warns_when_anyone_may_write(caplog, settings, warned):
    with caplog.at_level(logging.WARNING, logger="tfaas.server"):
        warn_if_anyone_may_write(dataclasses.replace(MANAGED, **settings))
    assert ("anyone who can reach port 8501 may upload, delete or change models" in caplog.text) == warned


@pytest.mark.parametrize("header,status", [(None, 401), ("Bearer wrong", 401), ("Bearer s3cret", 200)])
def test_admin_token_protects_writes(client_for, header, status):
    client = client_for(admin_token="s3cret")
    response = form_upload(client, **({"Authorization": header} if header else {}))
    assert response.status_code == status, response.json
    assert "error" in response.json or response.json["version"] == 1


def test_writes_without_a_repository_are_refused(client_for):
    client = client_for(model_repository="")
    response = form_upload(client)
    assert response.status_code == 403 and "model_repository" in response.json["error"]


def test_labels_part_goes_where_params_json_says_whatever_its_file_name(client_for, tmp_path):
    client = client_for()
    params = {"name": "m", "model": "model.pb", "labels": "labels.txt"}
    assert form_upload(client, params=params, labels=("params.json", b"a\nb\n")).status_code == 200
    version = tmp_path / "repo" / "m" / "1"
    assert json.loads((version / "params.json").read_text()) == params
    assert (version / "labels.txt").read_bytes() == b"a\nb\n"


@pytest.mark.parametrize(
    "labels,model_file",
    [(("params.json", b"a"), "model.pb"), (("model.pb", b"a"), "model.pb"), (None, "params.json")],
    ids=["labels named params.json", "labels named as the model", "model named params.json"],
)
def test_parts_that_would_overwrite_each_other_are_refused(client_for, tmp_path, labels, model_file):
    client = client_for()
    answer = form_upload(client, params={"name": "m"}, labels=labels, model_file=model_file)
    assert answer.status_code == 400 and "which another part of the upload already is" in answer.json["error"]
    assert not (tmp_path / "repo" / "m").exists()


@pytest.mark.parametrize("length,status", [(128, 200), (129, 400), (300, 400)])
def test_every_name_accepted_can_be_deleted(client_for, tmp_path, length, status):
    client = client_for()
    name = "n" * length
    upload = client.post(
        "/upload",
        data={"name": name, "params": (io.BytesIO(b"{}"), "params.json"), "model": (io.BytesIO(b"g"), "model.pb")},
    )
    assert upload.status_code == status, upload.json
    deleted = client.delete(f"/delete/{name}")
    assert deleted.status_code == (200 if status == 200 else 400), deleted.json
    assert not (tmp_path / "repo").exists() or list((tmp_path / "repo").iterdir()) == []
