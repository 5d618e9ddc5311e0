"""No client input gets a 5xx: schemathesis against the real server's own ``/openapi.json``.

schemathesis (its CLI, in a subprocess) generates requests for every operation of the served document:
its examples, coverage (boundary and invalid values, undeclared methods) and fuzzing phases, and
stateful sequences. Path parameters and signature names are drawn from the ``multi`` model's real ones
most of the time, so requests get past the 404 into the decoders and the model. The server runs with a
model repository and model management on, so the write calls parse what they are sent too.

What must hold, counted over every request sent (the HAR report): at least ``MIN_REQUESTS``; no 5xx but
TF Serving's 501 for a dtype JSON cannot feed (the ``half`` signature, as TF Serving answers); every
error a JSON ``{"error": "..."}``; no traceback in the server's log. And schemathesis's checks of the
answers against the document: status codes, content types, headers and bodies as documented, a 405
with ``Allow`` for an undeclared method. ``positive_data_acceptance`` is left out: a body valid by the
document can still not fit a model's signature (the document cannot state each model's inputs), and
that is a 400.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import model_config, model_config_list
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

MIN_REQUESTS = 5000
EXAMPLES_PER_OPERATION = 150
"""schemathesis's ``--max-examples``: with 52 operations, about 8,300 requests in all."""
SEED = 10
"""A fixed seed, so a failure in CI is reproduced by running the test again."""
RUN_SECONDS = 540
"""The whole run took about 90 s on two busy cores; a bound, not a budget."""
SIGNATURES = [
    "serving_default",
    "double",
    "dtypes",
    "nonfinite",
    "total",
    "repeat",
    "half",
    "classify",
    "classify_scores",
    "regress",
]
UNSUPPORTED_DTYPE = "Conversion of JSON Value to type: half is not supported"
"""TF Serving's 501 for an input of a dtype JSON cannot feed: the one 5xx a client can cause, on purpose."""

SCHEMATHESIS_CONFIG = f"""
[dictionaries.models]
values = ["multi"]
[dictionaries.labels]
values = ["stable"]
[dictionaries.versions]
values = ["1"]
[dictionaries.signatures]
values = {json.dumps(SIGNATURES)}

[parameters]
"path.model_name" = {{ dictionary = "models", probability = 0.7 }}
"path.label" = {{ dictionary = "labels", probability = 0.7 }}
"path.version" = {{ dictionary = "versions", probability = 0.7 }}
"body.signature_name" = {{ dictionary = "signatures", probability = 0.8 }}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_server, multi_model: Path) -> ServerProcess:
    root = tmp_path_factory.mktemp("fuzz")
    extra = 'version_labels { key: "stable" value: 1 }'
    (root / "models.config").write_text(model_config_list([model_config("multi", multi_model, extra)]))
    (root / "repository").mkdir()
    # NOTE: TFAAS_ENABLE_MODEL_MANAGEMENT turns the write calls on where they are off by default.
    management = {"TFAAS_ENABLE_MODEL_MANAGEMENT": "true"}
    config, repository = str(root / "models.config"), str(root / "repository")
    server = start_server("--model_config_file", config, "--model_repository", repository, env=management)
    server.wait_available("multi", 1)
    return server


def run_schemathesis(server: ServerProcess, reports: Path) -> subprocess.CompletedProcess[str]:
    (reports / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(reports / "schemathesis.toml")),
        *("run", server.url + "/openapi.json"),
        *("--checks", "all", "--exclude-checks", "positive_data_acceptance"),
        *("--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--no-shrink"),
        # NOTE: one worker: with several, hypothesis parses source files from several threads, which
        # Python 3.11's ast module sometimes fails at ("AST constructor recursion depth mismatch").
        *("--workers", "1", "--request-timeout", "60"),
        *("--report", "json,har"),
        *("--report-json-path", str(reports / "run.json"), "--report-har-path", str(reports / "requests.har")),
    ]
    # NOTE: run in ``reports``, where schemathesis leaves its cache (.schemathesis/), not in the clone.
    return subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS, cwd=reports)


def is_the_unsupported_dtype(status: int, body: str) -> bool:
    return status == 501 and UNSUPPORTED_DTYPE in body


def test_no_request_generated_from_the_document_gets_a_5xx(server: ServerProcess, tmp_path: Path):
    run = run_schemathesis(server, tmp_path)
    report = json.loads((tmp_path / "run.json").read_text())
    entries = json.loads((tmp_path / "requests.har").read_text())["log"]["entries"]
    answers = [(e["request"]["method"], e["request"]["url"], e["response"]) for e in entries]
    statuses = Counter(response["status"] for _, _, response in answers)
    print(
        f"schemathesis: {len(answers)} requests in {report['running_time']:.0f} s, statuses {sorted(statuses.items())}"
    )

    assert report["complete"] and not report["errors"], run.stdout[-5000:]
    assert len(answers) >= MIN_REQUESTS
    server_errors = [
        (method, url, response["status"], response["content"].get("text", "")[:300])
        for method, url, response in answers
        if response["status"] >= 500
        and not is_the_unsupported_dtype(response["status"], response["content"].get("text", ""))
    ]
    assert server_errors == []
    not_json = [
        (method, url, response["status"])
        for method, url, response in answers
        if response["status"] >= 400 and not is_json_error(response)
    ]
    assert not_json == []
    # NOTE: the report gives each kind of failure once; a "Server error" can only be the 501s allowed above.
    failures = [f for f in report["failures"] if f["code"] != "ST101"]
    assert failures == [], run.stdout[-5000:]
    log = server.log()
    assert "Traceback" not in log and "Unhandled error" not in log, log[-3000:]


def is_json_error(response: dict) -> bool:
    """Whether a HAR response is ``{"error": "<text>"}`` sent as JSON."""
    if not response["content"].get("mimeType", "").startswith("application/json"):
        return False
    try:
        body = json.loads(response["content"].get("text", ""))
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str)
