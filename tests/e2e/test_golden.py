"""Golden request/response pairs over the ``multi`` model: the exact response text of every REST format.

Each ``tests/golden/<name>.json`` holds::

    {"request": {"method": "POST", "path": "/v1/models/multi:predict", "body": {...}},
     "response": {"status": 200, "body_text": "<exact response text>"}}

``body`` is sent as JSON; ``body_text`` instead is sent verbatim (for the ``NaN`` and ``Infinity``
tokens, which JSON files cannot hold as values). The response text is compared byte for byte, so float
formatting, the bare ``NaN``/``Infinity`` tokens and key order are pinned; a file whose response says
``"compare": "json"`` is compared as parsed JSON instead (the metadata: protobuf lists a SignatureDef's
inputs and outputs in a hash order that changes from process to process).

Every expected text was produced by the server and then checked by hand against TF Serving's rules
(TFSERVING.md 4.5-4.7). To regenerate after a deliberate change, run with ``TFAAS_UPDATE_GOLDEN=1`` and
review the diff the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FILES = sorted(GOLDEN.glob("*.json"))
UPDATE = os.environ.get("TFAAS_UPDATE_GOLDEN") == "1"


def send(server: ServerProcess, request: dict[str, Any]) -> requests.Response:
    """Send a golden file's request: ``body`` as JSON text, ``body_text`` as it is, or no body."""
    if "body_text" in request:
        data = request["body_text"].encode("utf-8")
    elif "body" in request:
        data = json.dumps(request["body"], ensure_ascii=False).encode("utf-8")
    else:
        data = None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    return requests.request(request["method"], server.url + request["path"], data=data, headers=headers, timeout=30)


def dump_golden(golden: dict[str, Any]) -> str:
    """A golden file's text: one line per field, the request body and the response text each on one line."""

    def block(fields: dict[str, Any]) -> str:
        lines = (f"    {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
        return "{\n" + ",\n".join(lines) + "\n  }"

    return "{\n" + ",\n".join(f"  {json.dumps(key)}: {block(value)}" for key, value in golden.items()) + "\n}\n"


def test_golden_files_are_written_as_dump_golden_writes_them():
    for path in FILES:
        assert path.read_text(encoding="utf-8") == dump_golden(json.loads(path.read_text(encoding="utf-8"))), path.name


def test_there_are_golden_files():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_golden(multi_server, path: Path):
    golden = json.loads(path.read_text(encoding="utf-8"))
    expected = golden["response"]
    response = send(multi_server, golden["request"])
    text = response.content.decode("utf-8")
    assert response.headers["Content-Type"] == "application/json"
    if UPDATE:
        expected.update(status=response.status_code, body_text=text)
        path.write_text(dump_golden(golden), encoding="utf-8")
        return
    assert response.status_code == expected["status"], text
    if expected.get("compare") == "json":
        assert json.loads(text) == json.loads(expected["body_text"])
    else:
        assert text == expected["body_text"]
