"""The container image, as far as it can be checked without a Docker engine.

The Dockerfile is read for what a TF Serving user relies on, and its entrypoint script is run here as
the image runs it: with the image's environment, ``MODEL_NAME``/``MODEL_BASE_PATH`` set, and extra
flags after it (as after ``docker run IMAGE``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import install_version
from tests.e2e.server import Launcher, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: ``[(INSTRUCTION, arguments)]``."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in instructions():
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in args.split())
    return env


def test_dockerfile_runs_like_tf_servings_image():
    found = instructions()
    env = image_env()
    assert env["MODEL_NAME"] == "model" and env["MODEL_BASE_PATH"] == "/models"
    assert (
        env["TFAAS_REST_API_PORT"] == "8501" and env["TFAAS_GRPC_PORT"] == "8500" and ("EXPOSE", "8500 8501") in found
    )
    (user,) = [args for instruction, args in found if instruction == "USER"]
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit(), "runAsNonRoot needs a UID"
    (entrypoint,) = [json.loads(args) for instruction, args in found if instruction == "ENTRYPOINT"]
    assert entrypoint == ["/usr/local/bin/tfaas-entrypoint"], "exec form: no shell between Docker and tfaas"
    assert ("COPY", f"docker/entrypoint.sh {entrypoint[0]}") in found
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().rstrip().splitlines()[-1].startswith("exec tfaas serve ")


def test_entrypoint_serves_model_name_from_model_base_path_and_passes_flags_on(tmp_path_factory, half_plus):
    models = tmp_path_factory.mktemp("models")
    install_version(half_plus(2), models / "my_model", 1)
    env = {
        key: value
        for key, value in image_env().items()
        if key not in ("TFAAS_HOST", "TFAAS_REST_API_PORT", "TFAAS_GRPC_PORT")
    }
    if not Path(env.get("TFAAS_WORKER_TMP_DIR", "/")).is_dir():
        env.pop("TFAAS_WORKER_TMP_DIR")
    env |= {
        "MODEL_NAME": "my_model",
        "MODEL_BASE_PATH": str(models),
        "WEB_CONCURRENCY": "2",
        "TFAAS_WORKERS": "",  # NOTE: unset, as in the image (the test launcher's default is one worker)
        # NOTE: the image has tfaas on PATH; here, the one installed beside this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    launcher = Launcher(tmp_path_factory)
    try:
        server = launcher.start("--log_format=json", command=[str(ENTRYPOINT)], env=env)

        def lines() -> list[dict]:
            return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]

        # NOTE: two workers (WEB_CONCURRENCY), each loading the model; a request may reach either one.
        wait_for(lambda: sum(e["message"].startswith("Loaded servable {name: my_model") for e in lines()) == 2, 60)
        response = server.post("/v1/models/my_model:predict", json={"instances": [[1.0]]})
        assert response.json() == {"predictions": [[2.5]]}

        entries = lines()
        listening = next(e["message"] for e in entries if e["message"].startswith("Listening at:"))
        assert listening.endswith(f"({server.process.pid})"), "exec: gunicorn's master is the process Docker runs"
        assert sum(e["message"].startswith("Booting worker") for e in entries) == 2  # WEB_CONCURRENCY

        server.process.send_signal(signal.SIGTERM)  # NOTE: docker stop
        assert server.process.wait(timeout=30) == 0, server.log()
    finally:
        launcher.close()
