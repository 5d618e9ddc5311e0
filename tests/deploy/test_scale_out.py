"""Scale-out, simulated on one machine with real parts: the design of deploy/kubernetes, without a cluster.

Three tfaas servers (one worker each, REST only) read ONE model store, as the replicas of the Deployment
read the ReadOnlyMany volume, behind a real HAProxy that sends requests only to the servers whose
``GET /readyz`` answers 200 (Kubernetes' readiness probe and Service endpoints), retrying on another
server a request whose connection failed or was cut before any answer (a client's or a mesh's retry).
While clients send predicts through it, for a bounded time:

- a new version dropped into the store (written under a temporary name, renamed into place) rolls out
  to every server with no failed request;
- a server killed with SIGKILL (every one of its processes, as when a pod's container dies) costs at
  most the requests it had in flight;
- a server that joins gets no request until its ``/readyz`` says it is ready.

A simulation on 127.0.0.1, not a substitute for a cluster: there is no kubelet, kube-proxy or scheduler.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import ServerProcess, free_port, wait_for
from tests.e2e.slow_models import write_slow_loading_model

pytestmark = pytest.mark.e2e

MODEL = "half"
CLIENTS = 4
"""Client threads sending predicts through the balancer, each with one request in flight at a time."""
MAX_REQUESTS = 20_000
"""A bound on the requests one phase of load sends, whatever its duration."""
HEALTH_CHECK_MS = 200
SLOW_LOAD_SECONDS = 3
"""How much longer each version takes to load: a rollout then overlaps the clients for seconds, and a
joining server answers HTTP, not ready, for that long before it serves."""


# ---- HAProxy --------------------------------------------------------------------------------------------


def haproxy_binary() -> str:
    """HAProxy's path, installed from Debian's package with apt-get where it is missing (as .ci/run does)."""
    if not shutil.which("haproxy") and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "haproxy"]
        subprocess.run(install, capture_output=True, timeout=600, env=env)
    path = shutil.which("haproxy")
    assert path, "HAProxy is missing and apt-get could not install it: `apt-get install haproxy`"
    return path


def haproxy_config(port: int, servers: dict[str, int], stats_socket: Path) -> str:
    """A balancer on 127.0.0.1:``port`` over ``servers`` (name: port), each health-checked on /readyz.

    A server is out after two failed checks (a busy machine may answer one late) and in after one passed.
    ``retry-on conn-failure empty-response``: a request whose connection was refused, or cut before any
    byte of an answer came (a server killed with it in flight), is sent again, to another server
    (``option redispatch 1``); predict has no side effect. A status code is never retried: a 503 from a
    server that is not ready would reach the client, so a rollout or a join shows any such answer.
    ``option http-buffer-request``: the whole request is read before it goes to a server, so it can always
    be sent again; without it, 1 to 4 requests per kill were cut while HAProxy was still forwarding them
    (termination state ``SD``) and not retried. Only abnormal requests are logged.
    """
    backends = "\n".join(
        f"    server {name} 127.0.0.1:{server_port} check inter {HEALTH_CHECK_MS}ms rise 1 fall 2"
        for name, server_port in servers.items()
    )
    return f"""\
global
    maxconn 256
    stats socket {stats_socket} mode 600 level admin
    log stdout format raw daemon

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    option http-buffer-request

frontend models
    bind 127.0.0.1:{port}
    default_backend tfaas

backend tfaas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{backends}
"""


class HAProxy:
    """A HAProxy process (in the foreground, stopped by its PID) and its runtime API (the stats socket)."""

    def __init__(self, servers: dict[str, int], workdir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket_path = workdir / "stats.sock"
        config = workdir / "haproxy.cfg"
        config.write_text(haproxy_config(self.port, servers, self.socket_path))
        binary = haproxy_binary()
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log_path = log_path
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open for the process's whole life
        self.process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self.socket_path.exists, 10)

    def command(self, line: str) -> str:
        """One command of HAProxy's runtime API, and its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` for each server of the backend: status, sessions, responses, errors, retries."""
        header, *rows = self.command("show stat").strip().splitlines()
        names = header.lstrip("# ").split(",")
        table = [dict(zip(names, row.split(","))) for row in rows]
        return {row["svname"]: row for row in table if row["pxname"] == "tfaas" and row["svname"] != "BACKEND"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# ---- clients --------------------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """What the clients got: answers by (status, prediction), and failures (no answer) by error type."""

    answers: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Requests without a 200 answer (transport failures and any other status)."""
        return sum(self.failures.values()) + sum(n for (status, _), n in self.answers.items() if status != 200)

    @property
    def sent(self) -> int:
        return sum(self.failures.values()) + sum(self.answers.values())


class Load:
    """``CLIENTS`` threads sending predicts of x=1 through the balancer until stopped (or ``MAX_REQUESTS``)."""

    def __init__(self, url: str) -> None:
        self._url = f"{url}/v1/models/{MODEL}:predict"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes = Outcomes()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        self.outcomes.seconds = time.monotonic() - self._started

    def _client(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set() and self.outcomes.sent < MAX_REQUESTS:
                try:
                    response = session.post(self._url, json={"instances": [[1.0]]}, timeout=30)
                    key = (response.status_code, response.json()["predictions"][0][0] if response.ok else None)
                    with self._lock:
                        self.outcomes.answers[key] += 1
                except requests.RequestException as error:
                    with self._lock:
                        self.outcomes.failures[f"{type(error).__name__}: {str(error)[-120:]}"] += 1

    def wait_sent(self, count: int, timeout: float = 60) -> None:
        """Wait until at least ``count`` more requests have been sent."""
        target = self.outcomes.sent + count
        wait_for(lambda: self.outcomes.sent >= target, timeout)


# ---- the servers -----------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """The model store, the servers (name: process, or the port one will listen on) and the balancer."""

    store: Path
    servers: dict[str, ServerProcess]
    ports: dict[str, int]
    balancer: HAProxy
    logs: Path

    def start(self, name: str) -> ServerProcess:
        """``tfaas serve`` on the port the balancer has for ``name``: one worker, REST only, the shared store.

        NOTE: the port is chosen before the server starts, as the balancer's configuration names it.
        """
        port = self.ports[name]
        args = [f"--model_name={MODEL}", f"--model_base_path={self.store}", "--workers=1", "--port=0"]
        # NOTE: the server's temporary files (the coordinator's socket, metrics) in the test's directory: a
        # server killed with SIGKILL leaves them behind.
        tmp = self.logs / f"{name}-tmp"
        tmp.mkdir()
        env = {"TFAAS_REST_API_PORT": str(port), "TMPDIR": str(tmp)}
        server = ServerProcess(args, self.logs / f"{name}.log", env=env)
        server.port, server.url = port, f"http://127.0.0.1:{port}"
        self.servers[name] = server
        return server


def kill_with_every_process(server: ServerProcess) -> None:
    """SIGKILL the server's master and its children (the workers, the lifecycle coordinator), as the kernel
    ends every process of a container that dies. The master first, so that it replaces nothing."""
    master = server.process.pid
    children = [
        int(pid) for task in Path(f"/proc/{master}/task").iterdir() for pid in (task / "children").read_text().split()
    ]
    assert children, "a master with its workers and coordinator"
    os.kill(master, signal.SIGKILL)
    for child in children:
        os.kill(child, signal.SIGKILL)
    server.process.wait(10)


def predicts_by_code(server: ServerProcess) -> dict[str, float]:
    """The server's own count of predict requests by HTTP status (tfaas_requests_total)."""
    text = server.get("/monitoring/prometheus/metrics").text
    counts: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tfaas_requests_total" and sample.labels.get("api") == "predict":
                counts[sample.labels["code"]] += sample.value
    return dict(counts)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """s1, s2 and s3 serving version 1 (0.5x + 1) of the store behind the balancer, which also has s4's
    port: nothing listens there until the join test starts s4."""
    logs = tmp_path_factory.mktemp("scale_out")
    store = logs / "store" / MODEL
    store.mkdir(parents=True)
    write_slow_loading_model(store / "1", SLOW_LOAD_SECONDS, bias=1)
    ports = {name: free_port() for name in ("s1", "s2", "s3", "s4")}
    # NOTE: a short directory for the stats socket: a Unix socket's path has at most 107 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="tfaas-haproxy-"))
    balancer = HAProxy(ports, workdir, logs / "haproxy.log")
    built = Cluster(store=store, servers={}, ports=ports, balancer=balancer, logs=logs)
    try:
        started = time.monotonic()
        for name in ("s1", "s2", "s3"):
            built.start(name)
        for server in built.servers.values():
            server.wait_listening()
            server.wait_available(MODEL, 1, timeout=120)
        wait_for(lambda: [s["status"] for s in balancer.stats().values()] == ["UP", "UP", "UP", "DOWN"], 30)
        print(f"3 servers ready behind HAProxy in {time.monotonic() - started:.1f} s")
        yield built
    finally:
        for server in built.servers.values():
            server.stop()
        balancer.stop()
        print(balancer.log_path.read_text()[-4000:])
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_new_version_dropped_into_the_store_rolls_out_to_every_server_without_a_failed_request(cluster):
    """Version 2 (0.5x + 2) replaces version 1 (0.5x + 1) on every server."""
    servers = [cluster.servers[name] for name in ("s1", "s2", "s3")]
    retries_before = retries(cluster.balancer)
    with Load(cluster.balancer.url) as load:
        load.wait_sent(200)
        # Published as a model pipeline would: written under a name tfaas ignores, renamed into place.
        staged = cluster.store / ".incoming-2"
        write_slow_loading_model(staged, SLOW_LOAD_SECONDS, bias=2)
        started = time.monotonic()
        staged.rename(cluster.store / "2")
        for server in servers:
            wait_for(lambda s=server: serving_versions(s) == [2], 120, interval=0.1)
        rolled_out = time.monotonic() - started
        load.wait_sent(200)
    outcomes = load.outcomes
    print(f"rollout: every server serves version 2 alone {rolled_out:.1f} s after the rename; {outcomes}")
    assert outcomes.failed == 0, outcomes
    assert set(outcomes.answers) == {(200, 1.5), (200, 2.5)}, "version 1's answers, then version 2's"
    assert retries(cluster.balancer) == retries_before, "no transport failure for the balancer to retry either"
    for _ in range(2 * len(servers)):  # NOTE: round robin: every server answers through the balancer
        assert predict(cluster.balancer.url).json() == {"predictions": [[2.5]]}


def test_a_server_killed_costs_at_most_its_requests_in_flight(cluster):
    victim = cluster.servers["s1"]
    with Load(cluster.balancer.url) as load:
        load.wait_sent(300)
        before = load.outcomes.sent
        kill_with_every_process(victim)
        killed_at = time.monotonic()
        wait_for(lambda: cluster.balancer.stats()["s1"]["status"] == "DOWN", 10, interval=0.01)
        detected = time.monotonic() - killed_at
        load.wait_sent(300)
    outcomes = load.outcomes
    s1 = cluster.balancer.stats()["s1"]
    print(
        f"kill -9: {outcomes.failed} failed of {outcomes.sent} ({outcomes.sent - before} after the kill); "
        f"HAProxy marked it DOWN {detected * 1000:.0f} ms after, retried {s1['wretr']} and redispatched "
        f"{s1['wredis']} of its requests; {outcomes}"
    )
    assert outcomes.failed <= CLIENTS, "at most one request in flight per client"


def test_a_joining_server_gets_requests_only_once_ready(cluster):
    """s4 starts while clients send: the balancer sends it nothing until its /readyz answers 200, and then
    every request it gets is answered."""
    with Load(cluster.balancer.url) as load:
        load.wait_sent(100)
        started = time.monotonic()
        joining = cluster.start("s4")
        # HAProxy's view of s4 until it is UP: its status, its last check's result, the sessions sent to it.
        samples = []
        while time.monotonic() - started < 120:
            stats = cluster.balancer.stats()["s4"]
            samples.append((stats["status"], stats["check_status"], stats["check_code"], int(stats["stot"])))
            if stats["status"] == "UP":
                break
            time.sleep(0.02)
        ready_after = time.monotonic() - started
        assert joining.get("/readyz").status_code == 200
        load.wait_sent(400)
    outcomes = load.outcomes
    stats = cluster.balancer.stats()["s4"]
    by_code = predicts_by_code(joining)
    print(
        f"join: s4 UP in the balancer {ready_after:.1f} s after its start ({len(samples)} samples); then "
        f"{stats['stot']} sessions, predicts by code {by_code}; {outcomes}"
    )
    assert samples[-1][0] == "UP", samples[-3:]
    assert all(sample[3] == 0 for sample in samples[:-1]), "nothing sent to s4 while it was not UP"
    assert ("L7STS", "503") in {sample[1:3] for sample in samples}, "s4 answered /readyz 503 while it loaded"
    assert outcomes.failed == 0, outcomes
    assert int(stats["stot"]) > 0 and set(by_code) == {"200"}
    assert [stats[key] for key in ("econ", "eresp", "wretr", "wredis", "hrsp_5xx")] == ["0"] * 5, stats


def retries(balancer: HAProxy) -> int:
    """Requests the balancer has sent again (to the same server, or another) since it started."""
    return sum(int(row["wretr"]) + int(row["wredis"]) for row in balancer.stats().values())


def serving_versions(server: ServerProcess) -> list[int]:
    """The versions of the model the server reports AVAILABLE (an unloaded one stays listed, as END)."""
    return sorted(v for v, state in server.version_states(MODEL).items() if state == "AVAILABLE")


def predict(url: str) -> requests.Response:
    return requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [[1.0]]}, timeout=30)
