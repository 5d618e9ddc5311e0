"""``tfaas serve`` with no arguments, as the README's first command runs it, serves the example models."""

from __future__ import annotations

import re

import pytest

from tests.installed import installed_script

pytestmark = pytest.mark.e2e


def test_plain_tfaas_serve_builds_and_serves_the_examples(start_server, tmp_path):
    tfaas = installed_script("tfaas", "pip install -e .")
    server = start_server(command=[tfaas, "serve"], env={"TFAAS_EXAMPLES_DIR": str(tmp_path)})
    assert sorted(p.name for p in (tmp_path / "half_plus_two").iterdir()) == ["1", "2"]
    server.wait_available("half_plus_two", 2)
    server.wait_available("dense42", 1)

    half = server.post("/v1/models/half_plus_two:predict", json={"instances": [[1.0], [2.0]]})
    assert half.json() == {"predictions": [[2.5], [3.0]]}
    dense = server.post("/v1/models/dense42:predict", json={"instances": [[0.5] * 42, [1.0] * 42]})
    predictions = dense.json()["predictions"]
    assert len(predictions) == 2 and all(0.0 < row[0] < 1.0 for row in predictions)

    # The worker count, and what the memory estimate says of it, in one line at start (the tests' servers
    # have one worker unless a test asks for more; tests/server/test_worker_count.py covers the default).
    assert re.search(
        r"\[INFO\] tfaas\.server: 1 worker: as configured \(`workers: 1`\); \d+ fit in .+ for 2 model\(s\)\)",
        server.log(),
    )
