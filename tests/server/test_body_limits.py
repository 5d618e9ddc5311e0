"""Request body limits in-process: an upload is bounded by max_upload_bytes, every other body by
max_request_body_bytes (answered 413 before it is read)."""

from __future__ import annotations

from tests.server.test_tfaas_api import form_upload


def test_an_upload_may_be_larger_than_other_bodies(client_for):
    client = client_for(max_request_body_bytes=100)
    assert form_upload(client).json == {"name": "m", "version": 1}
    for path in ("/json", "/v1/models/m:regress", "/v1/models/m:predict"):
        response = client.post(path, data=b" " * 101, content_type="application/json")
        assert response.status_code == 413 and response.json["error"], path
