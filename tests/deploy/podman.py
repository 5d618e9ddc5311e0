"""podman for the deployment tests: the tools, a local Debian base image, builds of the checkout, and HTTP checks.

podman runs rootful with ``runc``: its default runtime, crun, cannot start containers on machines
without CAP_SYS_RESOURCE, and no ulimit is asked above the host's hard limits. No registry is needed:
the base is made here with debootstrap (once per machine, then reused by every image built on it).
Where podman is missing it is installed with apt-get; only where that cannot be done is a test skipped,
and it says so loudly.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian-bookworm:min"
TOOLS = ("podman", "runc", "debootstrap")
PACKAGES = (*TOOLS, "containernetworking-plugins", "iptables", "uidmap", "fuse-overlayfs", "slirp4netns")
"""Debian's packages for rootful podman with published ports (``.ci/run`` installs the same)."""
# NOTE: package traffic may go through a proxy whose CA only the host trusts: pip in a build gets the
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
        pytest.skip(f"!!! NOT TESTED IN A CONTAINER: {missing} missing and apt-get could not install them")


def run(*command: str, timeout: float = 120, stdin: str | None = None) -> str:
    """Run a command; its stdout, or a failure with its output."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=stdin)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def podman(*args: str, timeout: float = 120, stdin: str | None = None) -> str:
    return run("podman", "--runtime", "runc", *args, timeout=timeout, stdin=stdin)


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


def base_image() -> str:
    """A minimal Debian made with debootstrap, imported as ``BASE_IMAGE`` once per machine, then reused."""
    install_tools()
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE]).returncode == 0:
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="tfaas-debian-") as root:
        run("debootstrap", "--variant=minbase", "bookworm", root, debian_mirror(), timeout=600)
        # NOTE: apt's package lists and caches stay out of the base: each image's apt-get update fetches them.
        tar = subprocess.Popen(
            ["tar", "-C", root, "--exclude=./var/cache/apt/*", "--exclude=./var/lib/apt/lists/*", "-c", "."],
            stdout=subprocess.PIPE,
        )
        imported = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True)
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
    return BASE_IMAGE


def build(tag: str, *options: str) -> str:
    """``podman build`` of the checkout on ``base_image()`` (its layers cached by podman), as ``tag``.

    ``options`` are podman build's (``-f``, ``--ignorefile``, build arguments). Prints the build time and size.
    The image that ``tag`` named before is removed with the layers only it used (GBs of TensorFlow each).
    """
    base = base_image()
    before = image_id(tag)
    ca = (
        ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
        if HOST_CA.is_file()
        else []
    )
    started = time.monotonic()
    podman(
        "build", "--network", "host", *ca, "--build-arg", f"BASE_IMAGE={base}", *options, "-t", tag, str(REPO),
        timeout=1200,
    )  # fmt: skip
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag))
    if before not in (None, image_id(tag)):
        # NOTE: not forced: an image a container still uses stays.
        subprocess.run(["podman", "rmi", before], capture_output=True)
    print(f"image {tag}: built in {time.monotonic() - started:.0f} s, {size / 1e9:.2f} GB")
    return tag


def image_id(tag: str) -> str | None:
    """The ID of the image ``tag`` names, if any."""
    found = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readable(root: Path) -> None:
    """Make ``root`` readable by a container's users (pytest's directories are the owner's only)."""
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
