"""The container image built and run for real, with podman (no Docker engine or registry needed).

The image is built on a Debian base made here with debootstrap (no registry is reachable to pull
``python:3.11-slim``) and run as production runs it: root filesystem read-only, UID 1000, the models
mounted read-only. podman runs as ``tests/deploy/podman.py`` says (runc, ulimits within the host's);
where it cannot be installed the test is skipped, and says so loudly: the image is then untested.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.deploy.podman import answers, available, build, free_port, podman, predict, readable, ulimits
from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import wait_for
from tests.e2e.slow_models import write_sleepy_model

pytestmark = pytest.mark.e2e

IMAGE = "localhost/tfaas:test"


@pytest.fixture(scope="session")
def image() -> str:
    """The image (the repository's Dockerfile), built on a minimal Debian made with debootstrap."""
    return build(IMAGE)


def test_image_serves_read_only_as_uid_1000_reloads_and_drains(image, tmp_path, half_plus):
    models = tmp_path / "models"
    install_version(half_plus(2), models / "half", 1)
    write_sleepy_model(models / "sleepy" / "1")
    config = models / "models.config"
    config.write_text(model_config_list([model_config("half", Path("/models/half"))]))
    readable(models)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    started = time.monotonic()
    # NOTE: no --cap-add: the image must serve with the capabilities a container gets by default (and
    # Kubernetes' restricted profile drops even those).
    container = podman(
        "run", "-d", "--read-only", "--user", "1000", "-p", f"127.0.0.1:{port}:8501",
        "-v", f"{models}:/models:ro", *ulimits(), image,
        "--model_config_file=/models/models.config", "--file_system_poll_wait_seconds=1",
    )  # fmt: skip
    try:
        wait_for(lambda: answers(url, "/readyz"), 120)
        print(f"podman run to /readyz 200: {time.monotonic() - started:.1f} s")
        assert podman("top", container, "pid", "user").split()[2:4] == ["1", "tfaas"], "gunicorn is PID 1, UID 1000"
        assert predict(url, "half", [[1.0]]).json() == {"predictions": [[2.5]]}

        # A new version dropped into the mounted directory is found and served.
        # NOTE: made readable before it is dropped in, as a deployment would (pytest's copies are private).
        staged = install_version(half_plus(3), tmp_path / "staged", 2)
        readable(staged)
        staged.rename(models / "half" / "2")
        wait_for(lambda: predict(url, "half", [[1.0]]).json() == {"predictions": [[3.5]]}, 60, interval=0.5)

        # SIGHUP re-reads the model config file: the model added there is served.
        config.write_text(model_config_list([model_config(name, Path("/models", name)) for name in ("half", "sleepy")]))
        podman("kill", "-s", "HUP", container)
        wait_for(lambda: available(url, "sleepy"), 60, interval=0.5)
        assert predict(url, "sleepy", [0.0]).status_code == 200

        # podman stop drains a request still in flight, and tfaas exits 0.
        slow: list[requests.Response] = []
        request = threading.Thread(target=lambda: slow.append(predict(url, "sleepy", [4.0], timeout=60)))
        request.start()
        time.sleep(1)
        podman("stop", "-t", "40", container, timeout=60)
        request.join(60)
        assert slow and slow[0].status_code == 200, slow
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", container)
        assert exit_code == "0", podman("logs", container)
    finally:
        print(subprocess.run(["podman", "logs", "--tail", "60", container], capture_output=True, text=True).stderr)
        subprocess.run(["podman", "rm", "-f", container], capture_output=True)
