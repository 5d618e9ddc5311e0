"""The systemd unit under a real systemd: Debian 12's systemd 252 booted in a podman container, tfaas
installed there by ``systemd/install.sh`` as the README says, and driven with systemctl.

The image (``systemd.Containerfile``) is the local debootstrap base with systemd, D-Bus and
python3-venv, and no procps: no ``/bin/kill``, so the unit's ``ExecReload`` must do without it. The
checkout (``systemd.containerignore``: what install.sh installs) is copied in and install.sh runs as
root in its own layer, which podman keeps until the package or the unit's files change.

The container runs ``--systemd=always`` with runc, ulimits within the host's hard limits, the models
mounted read-only at /srv/models and the REST port published on 127.0.0.1 from the container's own
network namespace (so no fixed host port is needed: neither 8501 nor gRPC's 8500).
NOTE: ``--cap-add SYS_ADMIN``: systemd, as PID 1 of a container without it, cannot make a unit's
mount namespace and then runs the unit without one, saying so only at debug level: ProtectSystem=,
PrivateTmp=, ProtectHome=, ProtectProc= and the others would go untested. On a machine, PID 1 has it.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests
import yaml

from tests.deploy.podman import answers, available, build, free_port, podman, predict, readable, ulimits
from tests.deploy.test_systemd import MAX_EXPOSURE, SYSTEMD, UNIT
from tests.e2e.conftest import install_version
from tests.e2e.server import wait_for
from tests.e2e.slow_models import write_sleepy_model

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
IMAGE = "localhost/tfaas-systemd:test"
WORKERS = 2
"""Set in /etc/tfaas/tfaas.env (the shipped tfaas.yaml's ``workers: 0`` is one per CPU core)."""


@dataclass
class Machine:
    """The running container: its name and the URL of the REST port published from it."""

    container: str
    url: str

    def exec(self, *command: str, stdin: str | None = None, timeout: float = 120) -> str:
        """``command``'s stdout in the container (as root), or a failure with its output."""
        interactive = ["-i"] if stdin is not None else []
        return podman("exec", *interactive, self.container, *command, stdin=stdin, timeout=timeout)

    def show(self, *properties: str) -> dict[str, str]:
        """``systemctl show tfaas``'s values of ``properties``."""
        shown = self.exec("systemctl", "show", "tfaas", *(f"--property={name}" for name in properties))
        return dict(line.split("=", 1) for line in shown.splitlines())

    def journal(self) -> str:
        return self.exec("journalctl", "--unit=tfaas", "--no-pager", "--output=cat")


@pytest.fixture(scope="module")
def machine(tmp_path_factory, half_plus) -> Iterator[Machine]:
    """The container, booted: systemd running, tfaas installed and not started; models half and sleepy."""
    image = build(
        IMAGE, "--file", str(HERE / "systemd.Containerfile"), "--ignorefile", str(HERE / "systemd.containerignore")
    )
    models = tmp_path_factory.mktemp("srv") / "models"
    install_version(half_plus(2), models / "half", 1)
    write_sleepy_model(models / "sleepy" / "1")
    readable(models)
    port = free_port()

    started = time.monotonic()
    container = podman(
        "run", "-d", "--systemd=always", "--cap-add", "SYS_ADMIN", *ulimits(),
        "-p", f"127.0.0.1:{port}:8501", "-v", f"{models}:/srv/models:ro", image,
    )  # fmt: skip
    try:
        machine = Machine(container, f"http://127.0.0.1:{port}")
        state = wait_for(lambda: system_state(machine), 60, interval=0.2)
        # NOTE: "degraded" would mean a unit of the container failed; none does on this base.
        assert state == "running", machine.exec("systemctl", "--failed", "--no-pager")
        print(f"podman run to systemd running: {time.monotonic() - started:.1f} s")
        yield machine
    finally:
        print(
            subprocess.run(
                ["podman", "exec", container, "journalctl", "-b", "--no-pager", "-n", "80"],
                capture_output=True,
                text=True,
            ).stdout
        )
        subprocess.run(["podman", "rm", "-f", container], capture_output=True)


def system_state(machine: Machine) -> str:
    """``systemctl is-system-running --wait`` once the manager answers (its bus is there), else ''."""
    done = subprocess.run(
        ["podman", "exec", machine.container, "systemctl", "is-system-running", "--wait"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout.strip()


def configure(machine: Machine, models: list[str]) -> None:
    """/etc/tfaas/tfaas.yaml as shipped, serving ``models`` from /srv/models."""
    settings = yaml.safe_load((SYSTEMD / "tfaas.yaml").read_text())
    settings["models"] = [{"name": name, "base_path": f"/srv/models/{name}"} for name in models]
    machine.exec("sh", "-c", "cat > /etc/tfaas/tfaas.yaml", stdin=yaml.safe_dump(settings, sort_keys=False))


def test_install_sh_installed_this_unit_and_it_scores_its_exposure_bound(machine):
    assert machine.exec("cat", "/etc/systemd/system/tfaas.service") == UNIT.read_text().strip()
    security = machine.exec("systemd-analyze", "security", "--no-pager", "tfaas")
    print("\n".join(line for line in security.splitlines() if not line.startswith("✓")))
    exposure = float(re.search(r"Overall exposure level for tfaas\.service: ([0-9.]+)", security).group(1))
    assert exposure <= MAX_EXPOSURE, security


def test_unit_starts_serves_reloads_logs_and_drains_under_systemd(machine):
    # NOTE: procps is not installed: the shell's own kill is what remains (ExecReload uses it).
    machine.exec("sh", "-c", "test ! -e /bin/kill && test ! -e /usr/bin/kill")
    configure(machine, ["half"])
    machine.exec("sh", "-c", f"echo TFAAS_WORKERS={WORKERS} >> /etc/tfaas/tfaas.env")

    # systemctl start returns once gunicorn's master sent READY=1; the models then load in the workers.
    started = time.monotonic()
    machine.exec("systemctl", "start", "tfaas")
    assert machine.show("ActiveState", "SubState") == {"ActiveState": "active", "SubState": "running"}
    wait_for(lambda: answers(machine.url, "/readyz"), 120, interval=0.2)
    print(f"systemctl start: READY=1 and /readyz 200 after {time.monotonic() - started:.1f} s")
    assert predict(machine.url, "half", [[1.0]]).json() == {"predictions": [[2.5]]}
    assert_sandboxed(machine)

    # systemctl reload: the model added to tfaas.yaml loads while requests to the others all succeed.
    with client_loop(machine.url) as outcomes:
        configure(machine, ["half", "sleepy"])
        reloaded = time.monotonic()
        machine.exec("systemctl", "reload", "tfaas")
        wait_for(lambda: available(machine.url, "sleepy"), 60, interval=0.2)
        served = time.monotonic() - reloaded
        assert predict(machine.url, "sleepy", [0.0]).json() == {"predictions": [0.0]}
    assert outcomes["ok"] > 0 and not outcomes["failed"], outcomes
    print(f"systemctl reload to sleepy served: {served:.1f} s; {outcomes['ok']} requests to half meanwhile, 0 failed")

    journal = machine.journal()
    assert f"{WORKERS} workers: as configured" in journal  # NOTE: TFAAS_WORKERS from tfaas.env
    assert journal.count("Booting worker") == WORKERS, "reloaded without restarting a worker"
    for model in ("half", "sleepy"):
        loaded = rf"Loaded servable \{{name: {model} version: 1\}} in [0-9.]+ s model={model} version=1"
        assert len(re.findall(loaded, journal)) == WORKERS, journal

    # systemctl stop: the request in flight is answered, then tfaas exits 0 (Result=success).
    slow: list[requests.Response] = []
    request = threading.Thread(target=lambda: slow.append(predict(machine.url, "sleepy", [4.0], timeout=60)))
    request.start()
    time.sleep(1)
    stopping = time.monotonic()
    machine.exec("systemctl", "stop", "tfaas", timeout=60)
    print(f"systemctl stop with a 4 s request in flight: {time.monotonic() - stopping:.1f} s")
    request.join(60)
    assert slow and slow[0].json() == {"predictions": [4.0]}, slow
    stopped = machine.show("ActiveState", "Result", "ExecMainStatus")
    assert stopped == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, machine.journal()


@contextmanager
def client_loop(url: str) -> Iterator[dict]:
    """A client predicting ``half`` in a loop (2 minutes at most) while the ``with`` block runs: its outcomes."""
    outcomes: dict = {"ok": 0, "failed": []}
    done = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            try:
                answer = predict(url, "half", [[1.0]])
                failure = None if answer.json() == {"predictions": [[2.5]]} else f"{answer.status_code} {answer.text}"
            except (requests.RequestException, ValueError) as error:
                failure = repr(error)
            if failure is None:
                outcomes["ok"] += 1
            else:
                outcomes["failed"].append(failure)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield outcomes
    finally:
        done.set()
        thread.join(10)


@dataclass
class Mount:
    root: str
    options: list[str]
    super_options: list[str]


def mounts_of(machine: Machine, pid: str) -> dict[str, Mount]:
    """The mounts process ``pid`` sees, by mount point (the top one where several are stacked)."""
    table: dict[str, Mount] = {}
    for line in machine.exec("cat", f"/proc/{pid}/mountinfo").splitlines():
        fields = line.split()
        super_options = fields[fields.index("-") + 3]
        table[fields[4]] = Mount(fields[3], fields[5].split(","), super_options.split(","))
    return table


def assert_sandboxed(machine: Machine) -> None:
    """The unit's hardening is in force on tfaas's main process, TensorFlow loaded in its workers.

    Seen from /proc: credentials and the mount namespace systemd made. The system-call options
    (SystemCallFilter=, RestrictAddressFamilies=, RestrictNamespaces=, ProtectClock=, ...) show as a
    seccomp filter; and systemd logs (at warning level) each option it cannot apply: none for tfaas.
    """
    pid = machine.show("MainPID")["MainPID"]
    status = dict(line.split(":\t", 1) for line in machine.exec("cat", f"/proc/{pid}/status").splitlines())
    mounts = mounts_of(machine, pid)

    def mount(point: str) -> Mount:
        return mounts.get(point, Mount("", [], []))

    def read_only(point: str) -> bool:
        return "ro" in mount(point).options

    def inaccessible(point: str) -> bool:
        return "/inaccessible/" in mount(point).root

    in_force = {
        "User=tfaas": status["Uid"].split()[0] == machine.exec("id", "-u", "tfaas"),
        "NoNewPrivileges=yes": status["NoNewPrivs"] == "1",
        "CapabilityBoundingSet=": int(status["CapBnd"], 16) == 0,
        "AmbientCapabilities=": int(status["CapAmb"], 16) == 0,
        "system-call filters": status["Seccomp"] == "2",
        "PrivateMounts=yes": mounts != mounts_of(machine, "1"),
        "ProtectSystem=strict": read_only("/"),
        "RuntimeDirectory=, StateDirectory=": all("rw" in mount(p).options for p in ("/run/tfaas", "/var/lib/tfaas")),
        "PrivateTmp=yes": all("/systemd-private-" in mount(p).root for p in ("/tmp", "/var/tmp")),
        "ProtectHome=yes": all(inaccessible(p) for p in ("/home", "/root", "/run/user")),
        "ProtectKernelTunables=yes": read_only("/proc/sys") and inaccessible("/proc/kallsyms"),
        "ProtectKernelLogs=yes": inaccessible("/proc/kmsg"),
        "ProtectControlGroups=yes": read_only("/sys/fs/cgroup"),
        "ProtectProc=invisible": "hidepid=invisible" in mount("/proc").super_options,
    }
    assert all(in_force.values()), {option: held for option, held in in_force.items() if not held}
    skipped = [line for line in machine.journal().splitlines() if "tfaas.service:" in line and "ignoring" in line]
    assert not skipped, skipped
