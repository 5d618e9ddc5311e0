"""TFaaS's API in-process: the URL prefix, read-only mode and the admin token (no model is loaded)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from tfaas.config import Settings
from tfaas.server.app import create_app
from tfaas.server_core import ServerCore


def client_for(tmp_path: Path, **settings):
    base = Settings(model_repository=str(tmp_path / "repo"), file_system_poll_wait_seconds=-1)
    return create_app(ServerCore(dataclasses.replace(base, **settings))).test_client()


def form_upload(client, path="/upload", **headers):
    return client.post(
        path,
        data={
            "name": "m",
            "params": (io.BytesIO(b'{"name": "m", "model": "model.pb"}'), "params.json"),
            "model": (io.BytesIO(b"graph"), "model.pb"),
        },
        headers=headers,
    )


def test_api_is_also_served_under_the_prefix(tmp_path):
    client = client_for(tmp_path, tfaas_api_prefix="/tfaas")
    assert client.get("/tfaas/models").status_code == 200
    assert client.get("/models").status_code == 200
    assert form_upload(client, "/tfaas/upload").json == {"name": "m", "version": 1}
    assert (tmp_path / "repo" / "m" / "1" / "model.pb").read_bytes() == b"graph"


def test_read_only_refuses_writes_and_writes_nothing(tmp_path):
    client = client_for(tmp_path, read_only=True)
    assert form_upload(client).status_code == 403
    assert client.delete("/delete/m").status_code == 403
    assert client.post("/params", json={"name": "m"}).status_code == 403
    assert not (tmp_path / "repo").exists()
    assert client.get("/models").status_code == 200, "reads still work"


@pytest.mark.parametrize("header,status", [(None, 401), ("Bearer wrong", 401), ("Bearer s3cret", 200)])
def test_admin_token_protects_writes(tmp_path, header, status):
    client = client_for(tmp_path, admin_token="s3cret")
    response = form_upload(client, **({"Authorization": header} if header else {}))
    assert response.status_code == status, response.json
    assert "error" in response.json or response.json["version"] == 1


def test_writes_without_a_repository_are_refused(tmp_path):
    client = client_for(tmp_path, model_repository="")
    response = form_upload(client)
    assert response.status_code == 403 and "model_repository" in response.json["error"]
