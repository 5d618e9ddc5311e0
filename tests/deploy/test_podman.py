"""The container image built and run for real, with podman (no Docker engine or registry needed).

The image is built on a Debian base made here with debootstrap (no registry is reachable to pull
``python:3.11-slim``) and run as production runs it: root filesystem read-only, UID 1000, the models
mounted read-only. podman runs with ``runc``: its default runtime, crun, cannot start containers on
machines without CAP_SYS_RESOURCE, and no ulimit is asked above the host's hard limits.

Where podman is missing it is installed with apt-get; only where that cannot be done is the test
skipped, and it says so loudly: the image is then untested.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import install_version, model_config, model_config_list
from tests.e2e.server import wait_for
from tests.e2e.slow_models import write_sleepy_model

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian-bookworm:min"
IMAGE = "localhost/tfaas:test"
TOOLS = ("podman", "runc", "debootstrap")
PACKAGES = (*TOOLS, "containernetworking-plugins", "iptables", "uidmap", "fuse-overlayfs", "slirp4netns")
"""Debian's packages for rootful podman with published ports (``.ci/run`` installs the same)."""
# NOTE: package traffic may go through a proxy whose CA only the host trusts: pip in the build gets the
# host's bundle beside the image's own (mounting over /etc/ssl/certs breaks ca-certificates' install).
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def install_tools() -> None:
    """Install podman, runc and debootstrap with apt-get where one is missing; skip loudly if impossible."""
    if all(shutil.which(tool) for tool in TOOLS):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], capture_output=True)
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.skip(f"!!! THE CONTAINER IMAGE IS NOT TESTED: {missing} missing and apt-get could not install them")


def run(*command: str, timeout: float = 120) -> str:
    """Run a command; its stdout, or a failure with its output."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def podman(*args: str, timeout: float = 120) -> str:
    return run("podman", "--runtime", "runc", *args, timeout=timeout)


def debian_mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), for debootstrap."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        found = re.search(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+/debian)/?\s", text, re.MULTILINE)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def ulimits() -> list[str]:
    """``--ulimit`` flags within the host's hard limits (the runtime may not raise them)."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built on a minimal Debian made with debootstrap (made once per machine, then reused)."""
    install_tools()
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE]).returncode != 0:
        with tempfile.TemporaryDirectory(prefix="tfaas-debian-") as root:
            run("debootstrap", "--variant=minbase", "bookworm", root, debian_mirror(), timeout=600)
            # NOTE: apt's package lists and caches stay out of the base: the image's own apt-get update
            # fetches them.
            tar = subprocess.Popen(
                ["tar", "-C", root, "--exclude=./var/cache/apt/*", "--exclude=./var/lib/apt/lists/*", "-c", "."],
                stdout=subprocess.PIPE,
            )
            imported = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True)
            assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
    ca = (
        ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
        if HOST_CA.is_file()
        else []
    )
    started = time.monotonic()
    podman(
        "build",
        "--network",
        "host",
        *ca,
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "-t",
        IMAGE,
        str(REPO),
        timeout=1200,
    )
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE))
    print(f"image {IMAGE}: built in {time.monotonic() - started:.0f} s, {size / 1e9:.2f} GB")
    return IMAGE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readable(root: Path) -> None:
    """Make ``root`` readable by the container's UID 1000 (pytest's directories are the owner's only)."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def predict(url: str, model: str, instances: list, timeout: float = 10) -> requests.Response:
    return requests.post(f"{url}/v1/models/{model}:predict", json={"instances": instances}, timeout=timeout)


def answers(url: str, path: str) -> bool:
    try:
        return requests.get(url + path, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def available(url: str, model: str) -> bool:
    """Whether a version of ``model`` is AVAILABLE (TF Serving's model status)."""
    response = requests.get(f"{url}/v1/models/{model}", timeout=2)
    return response.ok and any(v["state"] == "AVAILABLE" for v in response.json()["model_version_status"])


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
