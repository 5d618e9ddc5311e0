"""Side-by-side throughput: tfaas over REST (TF Serving's and V2) and gRPC, against the transport floors, a
naive Flask app and Simple TensorFlow Serving (issues 6, 12, 14 and 15).

Run (once ``bash perf/peers/setup_sts.sh`` has made STS's virtual environment)::

    python perf/bench.py                                  # 3 rounds of 8 s windows, about 13 minutes
    python perf/bench.py --quick                          # a smoke run of about 3 minutes
    python perf/bench.py --no-sts --no-naive --scenario grpc-dense42-b1-c32 --scenario dense42-b1-c32
    python perf/bench.py --variant "tfaas-2w=--workers 2 --threads 4" --variant "tfaas-b=--enable_batching"
    python perf/bench.py --baseline before=HEAD~1         # tfaas at another commit, side by side (before/after)
    python perf/bench.py --no-sts --no-naive --section v2 --scenario dense42-b1-c1 --scenario v2-dense42-b1-c1 \
        --scenario v2bin-dense42-b1-c1                    # TF Serving's REST API beside V2 REST, JSON and binary

It builds the example models (``python -m tfaas.examples``) and a TF1 export of the same weights for STS
(``perf/peers/export_tf1.py``), starts every server on its own 127.0.0.1 ports in 8700-8799 and keeps
them up for the whole run:

- ``tfaas``: ``python -m tfaas serve`` from this checkout with its default settings, REST and gRPC (and
  each ``--variant NAME=FLAGS``: more flags; each ``--baseline NAME=COMMIT``: tfaas's code at that commit);
- ``rest-floor``: the REST transport floor, a fixed answer under tfaas's gunicorn + uvicorn stack
  (``perf/peers/rest_floor.py``), as many workers as tfaas;
- ``grpc-floor``: the gRPC floor, a trivial grpcio handler in tfaas's gRPC worker design
  (``perf/grpc_floor.py serve``), as many workers as tfaas;
- ``naive``: ``perf/peers/naive_app.py`` (Flask + ``tf.saved_model.load``) under gunicorn, 2 sync workers;
- ``sts``: Simple TensorFlow Serving 0.8.2 as shipped (Flask's single-threaded server);

checks that the model servers all give the same answers, over every protocol they speak, measures the in-process
limit (``perf/peers/inprocess.py``), then loads them, interleaved as ``/work/shared/docs/MEASURING.md``
asks: for each round, each scenario, each server that speaks its protocol in turn (the order rotates
every round), a warm-up and a measured window. REST scenarios (TF Serving's API; ``v2-…``: the Open Inference
Protocol's with JSON bodies, ``v2bin-…``: with its binary tensor data, both tfaas's only) are loaded with ``wrk``
(``perf/lua/post.lua``), gRPC ones (``grpc-…``) with the multi-process client of ``perf/grpc_floor.py``
(serialized ``PredictRequest`` messages, ``tensor_content``; layout in :func:`grpc_layout`). Per window: good
answers per second, p50/p99 latency, errors, the server's CPU time per request (every process of the
server, from ``/proc``), the load client's CPU time per request, the steal share of the machine and the
server's RSS. Writes ``perf/results/bench-latest.json`` (every window) and the section between
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` of ``perf/RESULTS.md`` (medians, ratios, targets).

Every process it starts is stopped by its own PID (SIGTERM, then SIGKILL), also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen
from typing import IO, Any, Callable, Iterable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # NOTE: this checkout's tfaas (settings, example weights), not another installed one
PERF = REPO / "perf"
GRPC_TOOL = PERF / "grpc_floor.py"
LUA = PERF / "lua" / "post.lua"
STS_VENV = PERF / ".venv-sts"
RESULTS_MD = PERF / "RESULTS.md"
RESULTS_JSON = PERF / "results" / "bench-latest.json"

HOST = "127.0.0.1"
PORTS = range(8700, 8800)
MODELS = ("dense42", "half_plus_two")
INPUT_WIDTH = {"dense42": 42, "half_plus_two": 1}
INPUT_ALIAS = {"dense42": "inputs", "half_plus_two": "x"}
TOLERANCE = 1e-5
STEAL_MARK = 0.10
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # NOTE: 127.0.0.1 only, never a proxy


@dataclass(frozen=True)
class Scenario:
    """One load: ``batch`` rows per request to ``model`` from ``concurrency`` connections (REST) or calls in
    flight (gRPC)."""

    model: str
    batch: int
    concurrency: int
    protocol: str = "rest"  # NOTE: one of PROTOCOL_NAMES

    @property
    def key(self) -> str:
        prefix = "" if self.protocol == "rest" else f"{self.protocol}-"
        return f"{prefix}{self.model}-b{self.batch}-c{self.concurrency}"

    @property
    def title(self) -> str:
        if self.protocol == "grpc":
            processes, channels, calls = grpc_layout(self.concurrency)
            layout = f"{plural(processes, 'process', 'es')} × {plural(channels, 'channel')} × {calls} in flight"
            calls = plural(self.concurrency, "call")
            return f"gRPC: {self.model}, batch {self.batch}, {calls} in flight ({layout})"
        connections = plural(self.concurrency, "connection")
        return f"{PROTOCOL_TITLES[self.protocol]}: {self.model}, batch {self.batch}, {connections}"

    def over(self, protocol: str) -> Scenario:
        """The same load over ``protocol``."""
        return Scenario(self.model, self.batch, self.concurrency, protocol)


PROTOCOL_NAMES = {"rest": "REST", "grpc": "gRPC", "v2": "V2 JSON", "v2bin": "V2 binary"}
"""Each protocol a scenario can load, by its short name in tables: TF Serving's REST API (V1) and gRPC API,
and the Open Inference Protocol's REST API (V2) with JSON bodies or with the binary tensor data extension."""
PROTOCOL_TITLES = {**PROTOCOL_NAMES, "v2": "V2 REST, JSON", "v2bin": "V2 REST, binary tensor data"}
V2_PROTOCOLS = ("v2", "v2bin")


def grpc_layout(concurrency: int) -> tuple[int, int, int]:
    """How the gRPC client spreads ``concurrency`` calls in flight: (processes, channels per process, calls
    per channel). As a fleet of clients would: from 8 calls on, two processes with 4 channels (TCP
    connections) each where that divides the calls (else 2, else 1), a few calls multiplexed on each; fewer
    calls, one process, a channel per call."""
    processes = 2 if concurrency >= 8 and concurrency % 2 == 0 else 1
    per_process = concurrency // processes
    channels = next(c for c in (4, 2, 1) if per_process % c == 0 and c <= per_process)
    return processes, channels, per_process // channels


def rest(model: str, batch: int, concurrency: int) -> Scenario:
    return Scenario(model, batch, concurrency, "rest")


def grpc(model: str, batch: int, concurrency: int) -> Scenario:
    return Scenario(model, batch, concurrency, "grpc")


def scenarios_of(protocols: Sequence[str], loads: Sequence[tuple[str, int, int]]) -> tuple[Scenario, ...]:
    """Every (model, batch, concurrency) of ``loads`` over each of ``protocols``."""
    return tuple(Scenario(model, batch, concurrency, p) for p in protocols for model, batch, concurrency in loads)


LOADS = (
    ("dense42", 1, 1),
    ("dense42", 1, 8),
    ("dense42", 1, 32),
    ("dense42", 1, 100),
    ("dense42", 32, 8),
    ("dense42", 1024, 2),
    ("half_plus_two", 1, 32),
)
DEFAULT_LOADS = (("dense42", 1, 1), ("dense42", 1, 32), ("dense42", 1024, 2))
KNOWN_SCENARIOS = scenarios_of(("rest", "grpc"), LOADS) + scenarios_of(V2_PROTOCOLS, DEFAULT_LOADS)
DEFAULT_SCENARIOS = scenarios_of(("rest", "grpc"), DEFAULT_LOADS)
QUICK_SCENARIOS = (rest("dense42", 1, 32), grpc("dense42", 1, 32), rest("dense42", 1024, 2), grpc("dense42", 1024, 2))
TARGET_SCENARIO = rest("dense42", 1, 32)
B1024 = rest("dense42", 1024, 2)


# ---------------------------------------------------------------------------------------------------------
# /proc readings


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's), or none if it is gone."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        if Path(f"/proc/{current}").exists():
            tree.append(current)
            pending.extend(children(current))
    return tree


def proc_stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a process from a later one with its PID)."""
    fields = proc_stat_fields(pid)
    return int(fields[19]) if fields else None


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """utime + stime of each live process in ``pids``, in seconds."""
    times = {}
    for pid in pids:
        fields = proc_stat_fields(pid)
        if fields:
            times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def rss_mib(pids: Iterable[int]) -> float:
    """The summed resident set size of ``pids``, in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
        total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


@dataclass(frozen=True)
class MachineCpu:
    """The whole machine's CPU time so far (all CPUs), in clock ticks, from the first line of ``/proc/stat``."""

    steal: int
    idle: int  # NOTE: idle + iowait
    total: int

    @staticmethod
    def read() -> MachineCpu:
        with open("/proc/stat") as stat:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
        return MachineCpu(steal, idle + iowait, user + nice + system + idle + iowait + irq + softirq + steal)

    def busy_seconds_since(self, before: MachineCpu) -> float:
        """CPU seconds spent running anything (not idle, not stolen) since ``before``."""
        busy = (self.total - before.total) - (self.idle - before.idle) - (self.steal - before.steal)
        return busy / CLOCK_TICKS

    def share_since(self, before: MachineCpu, seconds: float) -> float:
        """``seconds`` of CPU time as a share of the machine's capacity since ``before``."""
        return seconds * CLOCK_TICKS / max(1, self.total - before.total)

    def steal_since(self, before: MachineCpu) -> float:
        """The share of the machine's CPU time stolen since ``before``."""
        return (self.steal - before.steal) / max(1, self.total - before.total)


# ---------------------------------------------------------------------------------------------------------
# Processes: started, tracked and stopped by PID


class Processes:
    """Every process this script starts, so that each can be stopped by its own PID (and no other)."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen] = []
        self._trees: dict[int, dict[int, int | None]] = {}  # NOTE: pid -> start time, never to signal a reused PID

    def start(self, command: Sequence[str], stdout: IO[bytes], stderr: Any = subprocess.STDOUT, **kwargs: Any) -> Popen:
        """Start ``command`` in a session of its own, so that Ctrl-C reaches this script, which stops it."""
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True, **kwargs)
        self._running.append(process)
        return process

    def remember_tree(self, process: Popen) -> list[int]:
        """Record (and return) ``process``'s descendants now, for the SIGKILL fallback of ``stop``."""
        tree = process_tree(process.pid)
        known = self._trees.setdefault(process.pid, {})
        for pid in tree:
            known.setdefault(pid, start_time(pid))
        return tree

    def stop(self, *processes: Popen) -> None:
        """SIGTERM each process; after ``STOP_TIMEOUT_S``, SIGKILL it and the descendants it was seen with."""
        for process in processes:
            if process.poll() is None:
                self.remember_tree(process)
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()  # NOTE: STS, for one, catches SIGTERM and carries on serving
                process.wait()
            for pid, started in self._trees.pop(process.pid, {}).items():
                if pid != process.pid and started is not None and start_time(pid) == started:
                    os.kill(pid, signal.SIGKILL)  # NOTE: a worker its master left behind (same PID, same start)
            if process in self._running:
                self._running.remove(process)

    def stop_all(self) -> None:
        """Stop every process still running, all at once."""
        self.stop(*self._running)


# ---------------------------------------------------------------------------------------------------------
# HTTP (127.0.0.1 only)


@dataclass(frozen=True)
class Payload:
    """A request body and the headers that go with it (its Content-Type, and any the protocol needs)."""

    data: bytes
    headers: dict[str, str]

    @staticmethod
    def json(body: Any) -> Payload:
        return Payload(json.dumps(body).encode(), {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: its status (0 when none came), body and headers (lower-case names)."""

    status: int
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON, or None."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None


def exchange(url: str, payload: Payload | None = None, timeout: float = 10.0) -> Reply:
    """GET ``url``, or POST ``payload`` to it; its answer."""
    assert url.startswith(f"http://{HOST}:"), url
    data, headers = (None, {}) if payload is None else (payload.data, payload.headers)
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with NO_PROXY.open(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), {k.lower(): v for k, v in response.headers.items()})
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read(), {k.lower(): v for k, v in error.headers.items()})
    except (OSError, urllib.error.URLError):
        return Reply(0)


def free_ports(count: int) -> list[int]:
    """``count`` ports of 8700-8799 that nothing listens on now."""
    ports = []
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise SystemExit(f"bench: fewer than {count} free ports in 8700-8799")


# ---------------------------------------------------------------------------------------------------------
# Servers


PROTOCOLS = {"tfaas": ("rest", "grpc", *V2_PROTOCOLS), "naive": ("rest",), "sts": ("rest",)}
PROTOCOLS |= {"rest-floor": ("rest", *V2_PROTOCOLS), "grpc-floor": ("grpc",)}
FLOORS = {"rest": "rest-floor", "grpc": "grpc-floor", **{p: "rest-floor" for p in V2_PROTOCOLS}}
"""The transport floor of each protocol (V2 REST's is the REST floor, sent the V2 bodies)."""
HTTP_PROTOCOLS = ("rest", *V2_PROTOCOLS)
"""The protocols loaded with wrk."""


@dataclass
class Server:
    """One server under test: how to start it, talk to it, and the process once started."""

    name: str
    kind: str  # "tfaas", "naive", "sts", "rest-floor" or "grpc-floor"
    command: list[str]
    port: int  # NOTE: the REST port; the gRPC floor's gRPC port
    grpc_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    commit: str = ""  # NOTE: a baseline's: the commit its code was taken from
    process: Popen | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    def speaks(self, scenario: Scenario) -> bool:
        """Whether this server takes part in ``scenario`` (it speaks its protocol)."""
        return scenario.protocol in PROTOCOLS[self.kind]

    @property
    def serves_models(self) -> bool:
        """Whether its answers come from the models (a floor's never do)."""
        return self.kind not in FLOORS.values()

    def url(self, model: str, protocol: str = "rest") -> str:
        """The predict (V2: infer) URL for ``model`` over ``protocol``."""
        if protocol in V2_PROTOCOLS:
            return f"{self.base}/v2/models/{model}/infer"
        return f"{self.base}/" if self.kind == "sts" else f"{self.base}/v1/models/{model}:predict"

    def payload(self, model: str, rows: list[list[float]], protocol: str = "rest") -> Payload:
        """A predict request for ``rows`` in this server's format over ``protocol``."""
        if protocol in V2_PROTOCOLS:
            return v2_payload(model, rows, binary=protocol == "v2bin")
        if self.kind == "sts":
            return Payload.json({"model_name": model, "data": {INPUT_ALIAS[model]: rows}})
        return Payload.json({"instances": rows})

    def outputs(self, reply: Reply, protocol: str = "rest") -> np.ndarray:
        """The output rows of a predict answer in this server's format over ``protocol``."""
        if protocol in V2_PROTOCOLS:
            return v2_outputs(reply, binary=protocol == "v2bin")
        answer = reply.json()
        if self.kind == "sts":
            return np.asarray(next(iter(answer.values())), dtype=np.float64)
        return np.asarray(answer["predictions"], dtype=np.float64)

    def pids(self) -> list[int]:
        """The server's processes now (the master and all its descendants)."""
        assert self.process is not None
        return process_tree(self.process.pid)


def server_env(code: Path = REPO) -> dict[str, str]:
    """The environment every process runs with: ours, with TensorFlow's C++ info lines off, and ``code``
    first on the import path (NOTE: an editable install elsewhere would otherwise be what runs)."""
    path = os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}


def tfaas_server(
    name: str, extra_flags: list[str], ports: tuple[int, int], models: Path, code: Path = REPO, commit: str = ""
) -> Server:
    """``python -m tfaas serve`` of the tfaas in ``code`` (taken from ``commit``, if given) on ``models`` (its
    defaults plus ``extra_flags``), REST and gRPC on 127.0.0.1's ``ports``."""
    rest_port, grpc_port = ports
    command = [sys.executable, "-m", "tfaas", "serve", "--host", HOST, "--rest_api_port", str(rest_port)]
    command += ["--port", str(grpc_port), "--model_repository", str(models), *extra_flags]
    return Server(name, "tfaas", command, rest_port, grpc_port, env=server_env(code), cwd=code, commit=commit)


def export_commit(commit: str, into: Path) -> str:
    """This repository's files at ``commit`` (``git archive``) written under ``into``; returns its short hash."""
    into.mkdir(parents=True)
    short = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", short], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return short


def rest_floor_server(port: int, workers: int) -> Server:
    """``perf/peers/rest_floor.py`` under gunicorn as tfaas runs its workers (module docstring there)."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-w", str(workers), "--reuse-port"]
    command += ["-b", f"{HOST}:{port}", "-k", "perf.peers.rest_floor.FloorWorker", "--no-control-socket"]
    return Server("rest-floor", "rest-floor", [*command, "perf.peers.rest_floor:app"], port)


def grpc_floor_server(port: int, workers: int) -> Server:
    """``perf/grpc_floor.py serve``: the trivial handler in ``workers`` grpc.aio-on-uvloop processes."""
    command = [sys.executable, str(GRPC_TOOL), "serve", "--port", str(port), "--workers", str(workers)]
    return Server("grpc-floor", "grpc-floor", command, port, port)


def naive_server(port: int, models: Path) -> Server:
    """``perf/peers/naive_app.py`` under gunicorn with 2 sync workers."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-w", "2", "-b", f"{HOST}:{port}"]
    command += ["--no-control-socket", "perf.peers.naive_app:app"]  # NOTE: gunicorn 23+'s socket path is shared
    return Server("naive", "naive", command, port, env={"NAIVE_MODELS": str(models)})


def sts_server(port: int, tf1_models: Path, work: Path) -> Server:
    """Simple TensorFlow Serving's own command, serving both TF1 exports from a model config file."""
    config = work / "sts-models.json"
    models = [{"name": m, "base_path": str(tf1_models / m), "platform": "tensorflow"} for m in MODELS]
    config.write_text(json.dumps({"model_config_list": models}))
    command = [str(STS_VENV / "bin" / "simple_tensorflow_serving"), "--host", HOST, "--port", str(port)]
    # NOTE: cwd: STS creates a "static" folder in its working directory.
    return Server("sts", "sts", [*command, f"--model_config_file={config}"], port, cwd=work)


def start_server(server: Server, processes: Processes, logs: Path) -> None:
    """Start ``server``'s command, its output going to ``logs/<name>.log``."""
    server.log = logs / f"{server.name}.log"
    with open(server.log, "ab") as log:
        server.process = processes.start(server.command, log, env={**server_env(), **server.env}, cwd=server.cwd)


def tfaas_workers(models: Path) -> int:
    """How many workers tfaas's defaults give on this machine for ``models`` (``workers: 0``: one per core,
    as memory allows), for the floors: tfaas's own choice."""
    from tfaas.config import Settings
    from tfaas.server.worker_count import choose_workers

    return choose_workers(Settings(model_repository=str(models))).count


def tfaas_ready(server: Server) -> bool:
    """Every model AVAILABLE in every worker (tfaas's ``tfaas_model_version_state`` metric sums them), every
    worker in rotation."""
    for model in MODELS:
        reply = exchange(f"{server.base}/v1/models/{model}")
        if reply.status != 200 or "AVAILABLE" not in [v["state"] for v in reply.json()["model_version_status"]]:
            return False
    # NOTE: one worker's answer says nothing of the others'; the metric sums the workers' states, and a worker
    # in rotation has its own listener on each port (the lifecycle coordinator, a child too, has none).
    workers = len(set(re.findall(r"Booting worker with pid: (\d+)", server.log.read_text(errors="replace"))))
    ports = [server.port, *([server.grpc_port] if server.grpc_port else [])]
    if not workers or any(listeners_on(port) != workers for port in ports):
        return False
    metrics = _get_text(f"{server.base}/metrics")
    for model in MODELS:
        pattern = rf'tfaas_model_version_state\{{model="{model}",state="AVAILABLE",version="\d+"\}} (\S+)'
        counts = [float(count) for count in re.findall(pattern, metrics)]
        if counts and max(counts) < workers:  # NOTE: no such metric: the answer above must do
            return False
    return True


def _get_text(url: str) -> str:
    """The body of a GET as text ('' on any error)."""
    try:
        with NO_PROXY.open(url, timeout=10) as response:
            return response.read().decode()
    except OSError:
        return ""


def predicts_ok(server: Server) -> bool:
    """Whether a one-row predict of every model answers 200 (for peers, whose models load at start)."""
    return all(
        exchange(server.url(model), server.payload(model, [[0.0] * INPUT_WIDTH[model]]), timeout=60).status == 200
        for model in MODELS
    )


def grpc_floor_ready(server: Server) -> bool:
    """Whether every worker of the gRPC floor listens (each has its own ``SO_REUSEPORT`` socket)."""
    workers = len(children(server.process.pid))
    return workers > 0 and listeners_on(server.port) == workers


def listeners_on(port: int) -> int:
    """How many TCP sockets of this machine listen on ``port`` (from ``/proc/net/tcp``)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            count += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port  # NOTE: 0A: LISTEN
    return count


READY: dict[str, Callable[[Server], bool]] = {"tfaas": tfaas_ready, "grpc-floor": grpc_floor_ready}


def wait_ready(server: Server, processes: Processes) -> None:
    """Wait (``READY_TIMEOUT_S`` at most) until ``server`` serves every model; abort if it dies."""
    ready = READY.get(server.kind, predicts_ok)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"bench: {server.name} exited ({server.process.returncode}):\n{log_tail(server)}")
        if ready(server):
            processes.remember_tree(server.process)
            return
        time.sleep(0.5)
    raise SystemExit(f"bench: {server.name} not ready after {READY_TIMEOUT_S:.0f} s:\n{log_tail(server)}")


def log_tail(server: Server, lines: int = 30) -> str:
    """The last lines of a server's log."""
    return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:]) if server.log else ""


# ---------------------------------------------------------------------------------------------------------
# Models, bodies and the sanity check


def build_models(work: Path, processes: Processes) -> tuple[Path, Path]:
    """Write the example models (TF2) and their TF1 export for STS under ``work``; return both roots."""
    models, tf1 = work / "models", work / "models-tf1"
    for command in (
        [sys.executable, "-m", "tfaas.examples", str(models)],
        [sys.executable, str(PERF / "peers" / "export_tf1.py"), str(tf1)],
    ):
        run_to_end(command, work / "build-models.log", processes)
    return models, tf1


def run_to_end(command: list[str], log: Path, processes: Processes, stdout: Path | None = None) -> None:
    """Run ``command`` to its end, output to ``log`` (or stdout to ``stdout``); abort if it fails.

    Stopped by its PID on the 10-minute timeout, on Ctrl-C and on any error.
    """
    with open(log, "ab") as err, open(stdout or os.devnull, "wb") as out:
        process = processes.start(command, out if stdout else err, err, env=server_env(), cwd=REPO)
        try:
            code = process.wait(600)
        finally:
            processes.stop(process)
    if code != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed ({code}); see {log}")


def input_rows(model: str, batch: int, seed: int = 6) -> list[list[float]]:
    """``batch`` rows of inputs for ``model``: uniform in [0, 1), written with 4 decimals."""
    rng = np.random.default_rng(seed)
    return np.round(rng.random((batch, INPUT_WIDTH[model])), 4).tolist()


def reference_outputs(model: str, rows: list[list[float]]) -> np.ndarray:
    """What ``model`` answers for ``rows``, computed with numpy from the weights in ``tfaas.examples``."""
    x = np.asarray(rows, dtype=np.float64)
    if model == "half_plus_two":
        return 0.5 * x + 2.0
    from tfaas.examples import dense42_weights  # NOTE: numpy only; tfaas.examples imports TF lazily

    layers = dense42_weights()
    for index, (weights, biases) in enumerate(layers):
        x = x @ weights.astype(np.float64) + biases
        x = np.maximum(x, 0.0) if index < len(layers) - 1 else 1.0 / (1.0 + np.exp(-x))
    return x


def v2_payload(model: str, rows: list[list[float]], binary: bool) -> Payload:
    """A V2 infer request for ``rows`` (one FP32 input of shape [rows, width]): JSON with the same numbers as
    the V1 body, flat in ``data``; or, ``binary``, with the binary tensor data extension (the JSON header,
    then the float32 elements little-endian, ``Inference-Header-Content-Length`` the header's length),
    asking for the outputs in binary too."""
    tensor = {"name": INPUT_ALIAS[model], "shape": [len(rows), INPUT_WIDTH[model]], "datatype": "FP32"}
    if not binary:
        return Payload.json({"inputs": [{**tensor, "data": [value for row in rows for value in row]}]})
    data = np.asarray(rows, dtype="<f4").tobytes()
    inputs = [{**tensor, "parameters": {"binary_data_size": len(data)}}]
    head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return Payload(head + data, headers)


def v2_outputs(reply: Reply, binary: bool) -> np.ndarray:
    """The one FP32 output of a V2 infer answer, in its shape: from its JSON ``data``, or (``binary``: asked
    for, so required) from the bytes after the JSON header."""
    length = reply.headers.get("inference-header-content-length")
    if binary != (length is not None):
        raise SystemExit(f"bench: a V2 answer {'without' if binary else 'with'} binary data: {reply.headers}")
    head = int(length) if binary else len(reply.data)
    (output,) = json.loads(reply.data[:head])["outputs"]
    if output["datatype"] != "FP32" or binary == ("data" in output):
        raise SystemExit(f"bench: an unexpected V2 output: {output}")
    if binary:
        size = output["parameters"]["binary_data_size"]
        if head + size != len(reply.data):
            raise SystemExit(f"bench: a V2 answer of {len(reply.data)} bytes, {head} + {size} announced")
        values = np.frombuffer(reply.data, dtype="<f4", count=size // 4, offset=head)
    else:
        values = np.asarray(output["data"], dtype=np.float32)
    return values.astype(np.float64).reshape(output["shape"])


def sanity_check(servers: Sequence[Server], work: Path, processes: Processes) -> dict[str, float]:
    """Abort unless the model servers' answers, over every protocol they speak, agree with each other and
    with numpy within ``TOLERANCE``, and the floors answer.

    Returns the largest difference found for each model (between any two answers, or an answer and numpy).
    """
    for floor in (s for s in servers if s.kind == "rest-floor"):
        if exchange(floor.url("dense42"), floor.payload("dense42", [[0.0]])).status != 200:
            raise SystemExit(f"bench: {floor.name} does not answer")
    grpc_servers = [s for s in servers if s.serves_models and "grpc" in PROTOCOLS[s.kind]]
    worst = {}
    for model in MODELS:
        rows = input_rows(model, 8, seed=1)
        answers = {"numpy": reference_outputs(model, rows)}
        for server in (s for s in servers if s.serves_models):
            for protocol in (p for p in HTTP_PROTOCOLS if p in PROTOCOLS[server.kind]):
                reply = exchange(server.url(model, protocol), server.payload(model, rows, protocol), timeout=60)
                if reply.status != 200:
                    raise SystemExit(f"bench: {server.name} answered {reply.status} for {model}: {reply.data[:500]}")
                name = server.name if protocol == "rest" else f"{server.name} ({PROTOCOL_NAMES[protocol]})"
                answers[name] = server.outputs(reply, protocol)
        if grpc_servers:
            body = grpc_bodies({f"check-{model}": (model, rows)}, work, processes)[f"check-{model}"]
            for server in grpc_servers:
                answer = grpc_predict(server, body, work, processes)
                answers[f"{server.name} (gRPC)"] = np.asarray(next(iter(answer["outputs"].values())), np.float64)
        for name, outputs in answers.items():
            if outputs.shape != answers["numpy"].shape:
                raise SystemExit(f"bench: {name} {model}: shape {outputs.shape} ≠ numpy's")
        worst[model] = 0.0
        for a, b in itertools.combinations(answers, 2):
            diff = float(np.max(np.abs(answers[a] - answers[b])))
            if diff > TOLERANCE:
                raise SystemExit(f"bench: {model}: {a} and {b} differ by {diff:.3g} (> {TOLERANCE:g})")
            worst[model] = max(worst[model], diff)
    return worst


def grpc_bodies(wanted: dict[str, tuple[str, list[list[float]]]], work: Path, processes: Processes) -> dict[str, Path]:
    """Serialized PredictRequests of (model, rows) under the names of ``wanted``, written by
    ``perf/grpc_floor.py bodies`` (TensorFlow Serving's API package imports TensorFlow: not here)."""
    paths = {name: work / f"body-grpc-{name}.pb" for name in wanted}
    spec = [
        {"model": model, "input": INPUT_ALIAS[model], "rows": rows, "out": str(paths[name])}
        for name, (model, rows) in wanted.items()
        if not paths[name].exists()
    ]
    if spec:
        spec_path = work / "grpc-bodies.json"
        spec_path.write_text(json.dumps(spec))
        run_to_end([sys.executable, str(GRPC_TOOL), "bodies", str(spec_path)], work / "grpc-bodies.log", processes)
    return paths


def grpc_predict(server: Server, body: Path, work: Path, processes: Processes) -> dict[str, Any]:
    """One Predict of ``body`` on ``server``'s gRPC port, through TF Serving's stub; its decoded answer."""
    out = work / f"predict-{server.name}.json"
    command = [sys.executable, str(GRPC_TOOL), "predict", "--target", server.grpc_target, "--body", str(body)]
    run_to_end(command, work / "grpc-predict.log", processes, stdout=out)
    return json.loads(out.read_text().strip().splitlines()[-1])


@dataclass(frozen=True)
class Body:
    """A load's request body, in a file, and the HTTP headers it goes with (none for gRPC)."""

    path: Path
    headers: dict[str, str] = field(default_factory=dict)


def write_bodies(
    servers: Sequence[Server], scenarios: Sequence[Scenario], work: Path, processes: Processes
) -> dict[tuple[str, str], Body]:
    """One body per (server kind, scenario), the same rows for every server; keyed (kind, scenario key).
    Every gRPC server gets the same serialized PredictRequest, every server of a V2 protocol the same body."""
    bodies = {}
    grpc_scenarios = [scenario for scenario in scenarios if scenario.protocol == "grpc"]
    wanted = {f"{s.model}-{s.batch}": (s.model, input_rows(s.model, s.batch)) for s in grpc_scenarios}
    grpc_paths = grpc_bodies(wanted, work, processes) if wanted else {}
    for server in servers:
        for scenario in (s for s in scenarios if server.speaks(s)):
            if scenario.protocol == "grpc":
                bodies[(server.kind, scenario.key)] = Body(grpc_paths[f"{scenario.model}-{scenario.batch}"])
                continue
            payload = server.payload(scenario.model, input_rows(scenario.model, scenario.batch), scenario.protocol)
            path = work / f"body-{server.kind}-{scenario.protocol}-{scenario.model}-{scenario.batch}"
            path.write_bytes(payload.data)
            bodies[(server.kind, scenario.key)] = Body(path, payload.headers)
    return bodies


# ---------------------------------------------------------------------------------------------------------
# Load generation and the measured window


@dataclass
class Window:
    """One measured window of one server in one scenario."""

    round: int
    scenario: str
    server: str
    seconds: float
    requests: int
    good_rps: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    failed: int  # NOTE: answers that are not 2xx (REST) or not OK (gRPC)
    socket_errors: int
    server_cpu_ms_per_request: float | None
    client_cpu_ms_per_request: float | None
    rss_mib: float
    steal: float  # share of the machine's CPU time stolen by neighbours
    others: float  # share of the machine's CPU time used by processes other than the server and the client
    processes_changed: bool
    client: str
    load: dict[str, Any]

    @property
    def errors(self) -> int:
        return self.failed + self.socket_errors


@dataclass(frozen=True)
class Load:
    """What a load client reports of one window."""

    seconds: float
    requests: int  # NOTE: answered, well or not
    failed: int
    socket_errors: int
    p50_us: float
    p99_us: float
    client_cpu_s: float
    client: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Sample:
    """The server's processes' CPU times and the machine's, at one moment."""

    cpu: dict[int, float]
    machine: MachineCpu

    @staticmethod
    def take(pids: Sequence[int]) -> Sample:
        return Sample(cpu_seconds(pids), MachineCpu.read())


def run_wrk(url: str, body: Body, connections: int, seconds: float, threads: int, processes: Processes) -> dict:
    """Run ``wrk`` with ``perf/lua/post.lua`` for ``seconds``; return the counts its ``done()`` printed."""
    seconds = max(1, round(seconds))  # NOTE: wrk takes whole seconds only
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["--latency", "-s", str(LUA), url]
    headers = "\n".join(f"{name}: {value}" for name, value in body.headers.items())
    env = {**os.environ, "WRK_BODY": str(body.path), "WRK_HEADERS": headers}
    return run_client(command, env, "BENCH_JSON", processes, wait_s=seconds + 30)


def run_client(
    command: list[str],
    env: dict[str, str],
    marker: str,
    processes: Processes,
    wait_s: float,
    during: Callable[[], None] = lambda: None,
) -> dict:
    """Run a load client to its end (``during`` called while it runs) and return the JSON of the line it
    printed after ``marker``; abort the bench with its output when it failed."""
    with tempfile.TemporaryFile() as out:
        process = processes.start(command, out, env=env)
        try:
            during()
            process.wait(wait_s)
        finally:
            processes.stop(process)
        out.seek(0)
        text = out.read().decode(errors="replace")
    match = re.search(rf"^{marker} (\{{.*\}})$", text, re.MULTILINE)
    if process.returncode != 0 or not match:
        raise SystemExit(f"bench: {shlex.join(command[:2])} failed ({process.returncode}):\n{text[-3000:]}")
    return json.loads(match.group(1))


def wrk_window(
    server: Server, scenario: Scenario, body: Body, args: argparse.Namespace, pids: list[int], processes: Processes
) -> tuple[Load, Sample, Sample]:
    """A ``wrk`` warm-up, then the measured ``wrk`` run, with the samples taken around it."""
    url = server.url(scenario.model, scenario.protocol)
    run_wrk(url, body, scenario.concurrency, args.warmup, args.wrk_threads, processes)
    before, client_before = Sample.take(pids), _children_cpu()
    result = run_wrk(url, body, scenario.concurrency, args.duration, args.wrk_threads, processes)
    after, client_cpu = Sample.take(pids), _children_cpu() - client_before
    load = Load(
        seconds=result["duration_us"] / 1e6,
        requests=result["requests"],
        failed=result["non2xx"],
        socket_errors=sum(result[k] for k in ("connect", "read", "write", "timeout")),
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        client_cpu_s=client_cpu,
        client=f"wrk -t{min(args.wrk_threads, scenario.concurrency)} -c{scenario.concurrency}",
        raw=result,
    )
    return load, before, after


GRPC_CLIENT_START_S = 2.0
"""Time given to the gRPC client's processes to start and connect, before their warm-up counts."""


def grpc_window(
    server: Server, scenario: Scenario, body: Body, args: argparse.Namespace, pids: list[int], processes: Processes
) -> tuple[Load, Sample, Sample]:
    """One run of ``perf/grpc_floor.py load``: its warm-up, then the window, whose start and end are agreed
    in wall-clock time, so the samples here are taken at its moments."""
    client_processes, channels, calls = grpc_layout(scenario.concurrency)
    start = time.time() + GRPC_CLIENT_START_S + args.warmup
    command = [sys.executable, str(GRPC_TOOL), "load", "--target", server.grpc_target, "--body", str(body.path)]
    command += ["--processes", str(client_processes), "--channels", str(channels), "--calls", str(calls)]
    command += ["--start", f"{start:.3f}", "--seconds", f"{args.duration:g}"]
    samples: list[Sample] = []

    def sample_the_window() -> None:
        time.sleep(max(0.0, start - time.time()))
        samples.append(Sample.take(pids))
        time.sleep(max(0.0, start + args.duration - time.time()))
        samples.append(Sample.take(pids))

    result = run_client(command, server_env(), "GRPC_LOAD", processes, wait_s=60, during=sample_the_window)
    before, after = samples
    if result["late_s"] > 0.2:
        print(f"bench: the gRPC client began its window {result['late_s']:.2f} s late", flush=True)
    failed = sum(result["errors"].values())
    load = Load(
        seconds=result["seconds"],
        requests=result["ok"] + failed,
        failed=failed,
        socket_errors=0,
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        client_cpu_s=result["client_cpu_s"],
        client=f"grpc_floor.py load: {client_processes} × {channels} × {calls}",
        raw=result,
    )
    return load, before, after


def measure(
    server: Server,
    scenario: Scenario,
    body: Body,
    args: argparse.Namespace,
    round_index: int,
    processes: Processes,
) -> Window:
    """A warm-up, then one measured window of ``server`` under ``scenario``."""
    pids = server.pids()
    window = grpc_window if scenario.protocol == "grpc" else wrk_window
    load, before, after = window(server, scenario, body, args, pids, processes)
    pids_after = server.pids()
    server_cpu = sum(after.cpu[pid] - before.cpu[pid] for pid in after.cpu if pid in before.cpu)
    busy = after.machine.busy_seconds_since(before.machine)
    others_cpu = max(0.0, busy - server_cpu - load.client_cpu_s)
    good = max(0, load.requests - load.failed)
    per_request = (lambda cpu: 1000 * cpu / load.requests) if load.requests else (lambda cpu: None)
    return Window(
        round=round_index,
        scenario=scenario.key,
        server=server.name,
        seconds=load.seconds,
        requests=load.requests,
        good_rps=good / load.seconds,
        rows_per_s=good * scenario.batch / load.seconds,
        p50_ms=load.p50_us / 1000,
        p99_ms=load.p99_us / 1000,
        failed=load.failed,
        socket_errors=load.socket_errors,
        server_cpu_ms_per_request=per_request(server_cpu),
        client_cpu_ms_per_request=per_request(load.client_cpu_s),
        rss_mib=rss_mib(pids_after),
        steal=after.machine.steal_since(before.machine),
        others=after.machine.share_since(before.machine, others_cpu),
        processes_changed=set(pids_after) != set(pids),
        client=load.client,
        load=load.raw,
    )


def _children_cpu() -> float:
    """CPU seconds of this script's reaped children (wrk is the only one reaped during a window)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_inprocess(models: Path, args: argparse.Namespace, processes: Processes, logs: Path) -> dict[str, Any]:
    """Run ``perf/peers/inprocess.py`` on dense42 to its end; return its JSON."""
    out = logs / "inprocess.out"
    command = [sys.executable, str(PERF / "peers" / "inprocess.py"), str(models / "dense42" / "1")]
    command += ["--seconds", str(args.inprocess_seconds), "--batches", "1,32,1024"]
    run_to_end(command, logs / "inprocess.log", processes, stdout=out)
    return json.loads(out.read_text().strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# Summaries


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None (None if there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(windows: Sequence[Window], servers: Sequence[Server], scenarios: Sequence[Scenario]) -> dict:
    """Per scenario and server: medians over rounds, total errors, windows above the steal mark."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in scenarios:
        summary[scenario.key] = {}
        for server in servers:
            mine = [w for w in windows if w.scenario == scenario.key and w.server == server.name]
            if not mine:
                continue
            summary[scenario.key][server.name] = {
                "rounds": len(mine),
                "good_rps": median(w.good_rps for w in mine),
                "rows_per_s": median(w.rows_per_s for w in mine),
                "p50_ms": median(w.p50_ms for w in mine),
                "p99_ms": median(w.p99_ms for w in mine),
                "errors": sum(w.errors for w in mine),
                "server_cpu_ms_per_request": median(w.server_cpu_ms_per_request for w in mine),
                "client_cpu_ms_per_request": median(w.client_cpu_ms_per_request for w in mine),
                "rss_mib": median(w.rss_mib for w in mine),
                "steal": median(w.steal for w in mine),
                "others": median(w.others for w in mine),
                "windows_over_steal_mark": sum(w.steal > STEAL_MARK for w in mine),
            }
    return summary


def ratios(windows: Sequence[Window], servers: Sequence[Server], scenarios: Sequence[Scenario]) -> dict:
    """Per scenario, the medians over rounds of per-round ratios, for answers/s and CPU per request: each tfaas
    server against every other server in the scenario (its peers, the floor, the other tfaas servers), and,
    for a scenario of another protocol whose REST twin ran too, each tfaas server's answers over it against
    its REST (``NAME gRPC/REST``, ``NAME V2 JSON/REST``...)."""
    by = {(w.round, w.scenario, w.server): w for w in windows}
    rounds = sorted({w.round for w in windows})
    keys = {s.key for s in scenarios}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in scenarios:
        found[scenario.key] = {}
        for ours in (s for s in servers if s.kind == "tfaas" and s.speaks(scenario)):
            others = [s for s in servers if s.speaks(scenario) and s is not ours]
            others = [s for s in others if s.kind != "tfaas" or ours is servers[0]]  # NOTE: tfaas/variant, once
            for other in others:
                pairs = [(by.get((r, scenario.key, ours.name)), by.get((r, scenario.key, other.name))) for r in rounds]
                found[scenario.key][f"{ours.name}/{other.name}"] = round_ratios(pairs)
            twin = scenario.over("rest").key
            if scenario.protocol != "rest" and twin in keys:
                pairs = [(by.get((r, scenario.key, ours.name)), by.get((r, twin, ours.name))) for r in rounds]
                found[scenario.key][over_rest_pair(ours.name, scenario.protocol)] = round_ratios(pairs)
    return found


def over_rest_pair(server: str, protocol: str) -> str:
    """The name of the ratio of ``server``'s answers/s over ``protocol`` to its answers/s over REST."""
    return f"{server} {PROTOCOL_NAMES[protocol]}/REST"


def round_ratios(pairs: Sequence[tuple[Window | None, Window | None]]) -> dict[str, Any]:
    """The per-round ratios a/b of answers/s and of server CPU per request, and their medians."""
    both = [(a, b) for a, b in pairs if a and b]
    rps = [a.good_rps / b.good_rps if b.good_rps else None for a, b in both]
    cpu = [
        a.server_cpu_ms_per_request / b.server_cpu_ms_per_request
        if a.server_cpu_ms_per_request and b.server_cpu_ms_per_request
        else None
        for a, b in both
    ]
    return {"rps": median(rps), "cpu": median(cpu), "rps_rounds": rps}


def inprocess_summary(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (path, batch): medians over the rounds' in-process runs."""
    rows = []
    for path, batch in [(r["path"], r["batch"]) for r in runs[0]["results"]]:
        mine = [r for run in runs for r in run["results"] if (r["path"], r["batch"]) == (path, batch)]
        rows.append(
            {
                "path": path,
                "batch": batch,
                "calls_per_s": median(r["calls_per_s"] for r in mine),
                "rows_per_s": median(r["rows_per_s"] for r in mine),
                "cpu_ms_per_call": median(r["cpu_ms_per_call"] for r in mine),
                "steal": median(r["steal"] for r in mine),
            }
        )
    return rows


def evaluate_targets(
    summary: dict, ratio: dict, inprocess: Sequence[dict], servers: Sequence[Server], windows: Sequence[Window]
) -> list[str]:
    """The issues' targets that this run's scenarios and servers allow to judge, each line saying met / not
    met with its numbers, for every tfaas server: issue 6's (a, b), issue 12's gRPC ones and issue 15's."""
    names = {s.name for s in servers}
    limit = inprocess_figure(inprocess, 1024, "rows_per_s")
    lines = []
    for ours in (s.name for s in servers if s.kind == "tfaas"):
        lines += issue6_targets(ours, summary, ratio, limit, names)
        lines += issue12_targets(ours, summary, ratio, limit)
        lines += issue15_targets(ours, summary, ratio, inprocess, windows)
    return lines


def inprocess_figure(inprocess: Sequence[dict], batch: int, figure: str) -> float | None:
    """The in-process signature's ``figure`` (``rows_per_s``, ``calls_per_s``) at ``batch``."""
    return next((r[figure] for r in inprocess if r["path"] == "signature" and r["batch"] == batch), None)


def verdict(met: bool) -> str:
    return f"**{'met' if met else 'not met'}**"


def rps_ratio(ratio: dict, scenario: Scenario, pair: str) -> float | None:
    return ratio.get(scenario.key, {}).get(pair, {}).get("rps")


def issue6_targets(ours: str, summary: dict, ratio: dict, limit: float | None, names: set[str]) -> list[str]:
    """Issue 6: batch 1 at c32 ≥ 3× naive and ≥ 5× STS, p99 < 50 ms; batch 1024 ≥ half the in-process rows/s."""
    lines = []
    c32, b1024 = TARGET_SCENARIO.key, B1024.key
    if c32 in summary and ours in summary[c32] and {"naive", "sts"} <= names:
        naive, sts = (
            rps_ratio(ratio, TARGET_SCENARIO, f"{ours}/naive"),
            rps_ratio(ratio, TARGET_SCENARIO, f"{ours}/sts"),
        )
        p99 = summary[c32][ours]["p99_ms"]
        met = naive is not None and sts is not None and naive >= 3 and sts >= 5 and p99 < 50
        lines.append(
            f"(6a) {ours}, REST dense42 batch 1 at c32: ≥ 3× naive and ≥ 5× STS in req/s, p99 < 50 ms: "
            f"{verdict(met)} ({fmt(naive, 2)}× naive, {fmt(sts, 2)}× STS, p99 {fmt(p99, 1)} ms)"
        )
    if b1024 in summary and ours in summary[b1024] and limit:
        rows = summary[b1024][ours]["rows_per_s"]
        lines.append(
            f"(6b) {ours}, REST dense42 batch 1024: rows/s ≥ half the in-process signature's: "
            f"{verdict(rows >= 0.5 * limit)} ({fmt(rows, 0)} rows/s = {100 * rows / limit:.0f}% of {fmt(limit, 0)})"
        )
    return lines


def issue12_targets(ours: str, summary: dict, ratio: dict, limit: float | None) -> list[str]:
    """Issue 12: gRPC batch 1 at 32 calls ≥ 0.5× the gRPC floor's calls/s; gRPC batch 1024 ≥ 1.3× REST's
    rows/s and ≥ 0.7× the in-process limit."""
    lines = []
    c32, b1024 = grpc("dense42", 1, 32), grpc("dense42", 1024, 2)
    floor = rps_ratio(ratio, c32, f"{ours}/grpc-floor")
    if floor is not None:
        cpu = ratio[c32.key][f"{ours}/grpc-floor"]["cpu"]
        lines.append(
            f"(12a) {ours}, gRPC dense42 batch 1 at 32 calls: ≥ 0.5× the gRPC floor's calls/s: "
            f"{verdict(floor >= 0.5)} ({fmt(floor, 2)}×; server CPU per call {fmt(cpu, 2)}× the floor's)"
        )
    if b1024.key in summary and ours in summary[b1024.key]:
        over_rest = rps_ratio(ratio, b1024, over_rest_pair(ours, "grpc"))
        rows = summary[b1024.key][ours]["rows_per_s"]
        share = rows / limit if limit else None
        met = over_rest is not None and share is not None and over_rest >= 1.3 and share >= 0.7
        lines.append(
            f"(12b) {ours}, gRPC dense42 batch 1024: ≥ 1.3× REST's rows/s and ≥ 0.7× the in-process limit: "
            f"{verdict(met)} ({fmt(over_rest, 2)}× REST; {fmt(rows, 0)} rows/s = {fmt(share, 2)}× {fmt(limit, 0)})"
        )
    return lines


def issue15_targets(
    ours: str, summary: dict, ratio: dict, inprocess: Sequence[dict], windows: Sequence[Window]
) -> list[str]:
    """Issue 15 (REST): batch 1 at c32 ≥ 0.5× the transport floor, p99 ≤ 10 ms; batch 1 at c1 ≥ 0.75× the
    transport round trip plus one in-process call; batch 1024 ≥ 0.7× in-process rows/s in every round."""
    lines = []
    c1, c32 = rest("dense42", 1, 1), TARGET_SCENARIO
    floor = rps_ratio(ratio, c32, f"{ours}/rest-floor")
    if floor is not None:
        p99 = summary[c32.key][ours]["p99_ms"]
        lines.append(
            f"(15a) {ours}, REST dense42 batch 1 at c32: ≥ 0.5× the transport floor's req/s, p99 ≤ 10 ms: "
            f"{verdict(floor >= 0.5 and p99 <= 10)} ({fmt(floor, 2)}×, p99 {fmt(p99, 1)} ms)"
        )
    call = inprocess_figure(inprocess, 1, "calls_per_s")
    if c1.key in summary and {ours, "rest-floor"} <= set(summary[c1.key]) and call:
        trip = summary[c1.key]["rest-floor"]["good_rps"]
        limit = 1 / (1 / trip + 1 / call)
        rps = summary[c1.key][ours]["good_rps"]
        lines.append(
            f"(15b) {ours}, REST dense42 batch 1 at c1: ≥ 0.75× (transport round trip + one in-process call): "
            f"{verdict(rps >= 0.75 * limit)} ({fmt(rps, 0)} req/s = {rps / limit:.2f}× {fmt(limit, 0)}: "
            f"{1e6 / trip:.0f} µs + {1e6 / call:.0f} µs)"
        )
    rows_limit = inprocess_figure(inprocess, 1024, "rows_per_s")
    mine = [w.rows_per_s for w in windows if w.scenario == B1024.key and w.server == ours]
    if mine and rows_limit:
        shares = ", ".join(f"{rows / rows_limit:.2f}" for rows in mine)
        lines.append(
            f"(15c) {ours}, REST dense42 batch 1024: ≥ 0.7× in-process rows/s in every round: "
            f"{verdict(min(mine) >= 0.7 * rows_limit)} (rounds: {shares}× {fmt(rows_limit, 0)})"
        )
    return lines


def p99_knee(summary: dict, servers: Sequence[Server], scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """Per server: the highest dense42 batch-1 req/s among the concurrencies whose p99 stayed under 50 ms."""
    knees = {}
    batch1 = [s for s in scenarios if s.model == "dense42" and s.batch == 1 and s.protocol == "rest"]
    for server in servers:
        ok = [
            (summary[s.key][server.name]["good_rps"], s.concurrency)
            for s in batch1
            if server.name in summary[s.key] and summary[s.key][server.name]["p99_ms"] < 50
        ]
        if server.serves_models:
            knees[server.name] = max(ok) if ok else None
    return knees


# ---------------------------------------------------------------------------------------------------------
# Report


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals and thousands separators, or '–'."""
    return "–" if value is None else f"{value:,.{digits}f}"


def plural(count: int, noun: str, suffix: str = "s") -> str:
    """``1 round``, ``3 rounds``; ``2 processes`` with ``suffix="es"``."""
    return f"{count} {noun}{'' if count == 1 else suffix}"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk.strip(),
        "grpcio": importlib.metadata.version("grpcio"),
        "sts": _sts_versions(),
    }


def _sts_versions() -> str:
    """The versions installed in STS's virtual environment (without importing TensorFlow there)."""
    python = STS_VENV / "bin" / "python"
    if not python.exists():
        return "not installed"
    packages = ("simple_tensorflow_serving", "flask", "werkzeug")
    code = f"import importlib.metadata as m; print(*(m.version(p) for p in {packages!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.split()
    return ", ".join(f"{p} {v}" for p, v in zip(packages, out)) if len(out) == 3 else "unknown"


def tfaas_defaults() -> str:
    """tfaas's default worker, thread and batching settings, read from ``tfaas.config.Settings``."""
    import dataclasses

    from tfaas.config import Settings

    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    shown = [f"{name}={defaults[name]}" for name in ("workers", "threads", "enable_batching") if name in defaults]
    return ", ".join(shown)


V2_LOAD_TEXT = (
    "V2 REST: the same wrk script, `POST /v2/models/M/infer`, one FP32 input of shape [batch, width]: V2 JSON "
    "sends the REST body's numbers flat in `data`; V2 binary (Triton's binary tensor data extension) sends a JSON "
    "header with `binary_data_size`, then the float32 elements, with `Inference-Header-Content-Length`, and asks "
    "for the outputs in binary (`binary_data_output`). The REST floor is sent the same V2 bodies.",
    "",
)
"""The lines that say how V2 REST is loaded (in a report with V2 scenarios)."""


def markdown(report: dict[str, Any], scenarios: Sequence[Scenario]) -> str:
    """The RESULTS.md section for one run."""
    m, summary, ratio, servers = report["machine"], report["summary"], report["ratios"], report["servers"]
    clients = report["client_cpu_ms_per_request"]
    wrk_cpu = ", ".join(f"{fmt(clients[p], 3)} ms ({PROTOCOL_NAMES[p]})" for p in HTTP_PROTOCOLS if p in clients)
    out = [
        "## Throughput side by side (`python perf/bench.py`"
        + ("" if report["section"] == "bench" else f", section `{report['section']}`")
        + ")",
        "",
        f"{report['date']}, {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"TensorFlow {report['tensorflow']}, {m['wrk'].split(' [')[0]}, grpcio {m.get('grpcio', '?')}; "
        f"STS venv: {m['sts']}; tfaas at commit {report.get('commit', '?')}.",
        "",
        f"Command: `{report['command']}` ({plural(report['rounds'], 'round')} × {plural(len(scenarios), 'scenario')} × "
        f"the servers that speak its protocol, {report['warmup_s']:g} s warm-up + {report['duration_s']:g} s window "
        f"each; the whole run took {report['elapsed_min']:.1f} min).",
        "",
        "Servers (each on its own 127.0.0.1 ports, started once for the whole run):",
        "",
    ]
    out += [f"- **{s['name']}**: `{s['command']}`" for s in servers]
    out += [
        f"- tfaas defaults: {report['tfaas_defaults']}; the floors run as many workers ({report['workers']}).",
        "",
        f"Load: REST with wrk `-t{report['wrk_threads']}` (`perf/lua/post.lua`, one connection per `-c`); gRPC "
        "with `perf/grpc_floor.py load`, Python processes × channels (each its own TCP connection) × calls in flight "
        "on each, sending one serialized `PredictRequest` (float32 `tensor_content`) through grpcio's synchronous "
        "API, no deserialization of the answers (status codes only); every server of a protocol gets the same "
        "bytes. Both clients are closed-loop (latencies understate the tail under overload) and share the 2 "
        f"cores with the server: a median {wrk_cpu} of CPU per request for wrk, "
        f"{fmt(clients.get('grpc'), 3)} ms per call for the gRPC client (its own processes, over the window).",
        "",
        *(V2_LOAD_TEXT if set(clients) & set(V2_PROTOCOLS) else ()),
        "Every figure is the median over rounds. answers/s counts 2xx (REST) or OK (gRPC) answers; errors are "
        "the others plus socket errors (all rounds); server CPU ms/req is the server's own CPU time (user + "
        "system, all its processes) per request, client CPU likewise for the load client; RSS sums the "
        "server's processes at the end of the window; steal is the share of the machine's CPU time stolen by "
        f"neighbours during the window, ⚠ where a window had more than {STEAL_MARK:.0%}; others is the share "
        "used by other processes on this machine (neither the server nor the client).",
        "",
    ]
    out += side_by_side_table(summary, ratio, scenarios)
    out += side_by_side_table(summary, ratio, scenarios, ("rest", *V2_PROTOCOLS))
    for scenario in scenarios:
        out += scenario_table(scenario, summary.get(scenario.key, {}))
    out += ratio_table(ratio, scenarios)
    out += inprocess_table(report["inprocess"])
    knees = report["p99_knee"]
    if any(knees.values()):
        shown = "; ".join(f"{n} {fmt(k[0], 0)} (c{k[1]})" if k else f"{n} none" for n, k in knees.items())
        out += [f"Highest REST dense42 batch-1 req/s with p99 under 50 ms: {shown}.", ""]
    out += ["### Targets", ""]
    out += [f"- {line}" for line in report["targets"]] or ["- (not evaluated: scenario missing from this run)"]
    out += ["", f"Raw windows: `perf/results/{report['section']}-latest.json`. {report['notes']}".rstrip(), ""]
    return "\n".join(out)


def describe_command(server: Server) -> str:
    """The server's command with the ports and temporary paths shortened to placeholders."""
    text = " ".join(shlex.quote(part) for part in server.command)
    text = re.sub(r"/\S*/(models(-tf1)?|sts-models\.json)\b", r"DIR/\1", text)
    text = (
        text.replace(str(server.port), "P").replace(str(STS_VENV), "perf/.venv-sts").replace(sys.executable, "python")
    )
    if server.grpc_port and server.grpc_port != server.port:
        text = text.replace(str(server.grpc_port), "G")
    text = re.sub(r"\S*/bin/(tfaas|gunicorn)\b", r"\1", text).replace(f"{REPO}/", "")
    prefix = "NAIVE_MODELS=DIR/models " if server.kind == "naive" else ""
    prefix += f"PYTHONPATH=<tfaas at {server.commit}> " if server.commit else ""
    return prefix + text


def side_by_side_table(
    summary: dict, ratio: dict, scenarios: Sequence[Scenario], protocols: Sequence[str] = ("rest", "grpc")
) -> list[str]:
    """tfaas over REST and the other ``protocols`` for the same loads, beside each protocol's floor: one row
    per REST load that ran over another of them too."""
    keys = {s.key for s in scenarios}
    others = protocols[1:]
    loads = [s for s in scenarios if s.protocol == "rest" and any(s.over(p).key in keys for p in others)]
    if not loads:
        return []
    names = {p: PROTOCOL_NAMES[p] for p in protocols}
    unit = {p: "call" if p == "grpc" else "req" for p in protocols}
    rate_unit = {p: "calls/s" if p == "grpc" else "req/s" for p in protocols}
    head = ["load", *(f"{names[p]} {rate_unit[p]}" for p in protocols), *(f"{names[p]}/REST" for p in others)]
    head += [f"{names[p]} CPU ms/{unit[p]}" for p in protocols]
    head += [f"{names[p]} floor {rate_unit[p]} (CPU ms)" for p in protocols]
    head.append(f"tfaas/floor {', '.join(names.values())}")
    listed = list(names.values())
    v2_floor = ""
    if set(others) & set(V2_PROTOCOLS):
        v2_floor = " Each floor is sent its protocol's bodies (V2's: the REST floor)."
    out = [
        f"### tfaas over {', '.join(listed[:-1])} and {listed[-1]}, and the floors",
        "",
        "Answers/s (rows/s for batches) and server CPU per request, medians over rounds; "
        f"{', '.join(f'{names[p]}/REST' for p in others)} and tfaas/floor are medians of the per-round ratios of "
        f"answers/s.{v2_floor}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for load in loads:
        rows = {p: summary.get(load.over(p).key, {}) for p in protocols}

        def rate(row: dict, name: str, batch: int = load.batch) -> str:
            if name not in row:
                return "–"
            shown = fmt(row[name]["good_rps"], 0)
            return f"{shown} ({fmt(row[name]['rows_per_s'], 0)} rows/s)" if batch > 1 else shown

        def cpu(row: dict, name: str) -> str:
            return fmt(row[name]["server_cpu_ms_per_request"], 3) if name in row else "–"

        cells = [f"dense42 batch {load.batch}, {load.concurrency} in flight" if load.model == "dense42" else load.key]
        cells += [rate(rows[p], "tfaas") for p in protocols]
        cells += [fmt(rps_ratio(ratio, load.over(p), over_rest_pair("tfaas", p)), 2) for p in others]
        cells += [cpu(rows[p], "tfaas") for p in protocols]
        cells += [f"{rate(rows[p], FLOORS[p], 1)} ({cpu(rows[p], FLOORS[p])})" for p in protocols]
        floors = [fmt(rps_ratio(ratio, load.over(p), f"tfaas/{FLOORS[p]}"), 2) for p in protocols]
        cells.append(", ".join(floors))
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def scenario_table(scenario: Scenario, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown table of one scenario."""
    batched = scenario.batch > 1
    head = ["server", "answers/s", *(["rows/s"] if batched else []), "p50 ms", "p99 ms", "errors"]
    head += ["server CPU ms/req", "client CPU ms/req", "RSS MiB", "steal", "others"]
    out = [f"### {scenario.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        mark = " ⚠" if r["windows_over_steal_mark"] else ""
        cells = [name, fmt(r["good_rps"], 0), *([fmt(r["rows_per_s"], 0)] if batched else [])]
        cells += [fmt(r["p50_ms"], 1), fmt(r["p99_ms"], 1), str(r["errors"]), fmt(r["server_cpu_ms_per_request"], 3)]
        cells += [fmt(r["client_cpu_ms_per_request"], 3), fmt(r["rss_mib"], 0), f"{100 * r['steal']:.0f}%{mark}"]
        cells.append(f"{100 * r['others']:.0f}%")
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def ratio_table(ratio: dict, scenarios: Sequence[Scenario]) -> list[str]:
    """The Markdown table of the per-round ratios: medians, and each round's ratio of answers/s."""
    rows = [(s.key, pair, r) for s in scenarios for pair, r in ratio.get(s.key, {}).items()]
    if not rows:
        return []
    out = [
        "### Ratios (median of the per-round ratios)",
        "",
        "| scenario | a/b | answers/s | server CPU/req | answers/s, each round |",
        "|---|---|---|---|---|",
    ]
    for key, pair, r in rows:
        rounds = ", ".join(fmt(v, 2) for v in r["rps_rounds"])
        out.append(f"| {key} | {pair} | {fmt(r['rps'], 2)} | {fmt(r['cpu'], 2)} | {rounds} |")
    return [*out, ""]


def inprocess_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The Markdown table of the in-process limit."""
    out = [
        "### In-process limit (dense42, no HTTP, one thread)",
        "",
        "`signature`: the restored signature called on `tf.constant(x)`, `.numpy()` of the output; "
        "`servable`: the same through tfaas's `SavedModelServable.run`.",
        "",
        "| path | batch | calls/s | rows/s | CPU ms/call | steal |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["path"], str(r["batch"]), fmt(r["calls_per_s"], 0), fmt(r["rows_per_s"], 0)]
        cells += [fmt(r["cpu_ms_per_call"], 3), f"{100 * r['steal']:.0f}%"]
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def write_results_md(section: str, name: str = "bench") -> None:
    """Replace what lies between the ``name`` markers of ``perf/RESULTS.md`` (adding them at the end if absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Performance results\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = text.rstrip("\n") + "\n\n", "\n"
    RESULTS_MD.write_text(f"{head}{begin}\n{section.strip()}\n{end}{tail}")


# ---------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured window (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each window (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 3 s windows, 4 scenarios")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help='another tfaas server with extra flags, e.g. "tfaas-2w=--workers 2 --threads 4" (repeatable)',
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="KEY",
        help="only these scenarios, e.g. dense42-b1-c32 (REST), grpc-dense42-b1-c32, v2-dense42-b1-c32 (V2 JSON), "
        "v2bin-dense42-b1-c32 (V2 binary); any of " + ", ".join(s.key for s in KNOWN_SCENARIOS),
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=COMMIT",
        help="another tfaas server: this repository's code at COMMIT (e.g. before=HEAD~1), defaults (repeatable)",
    )
    parser.add_argument("--no-sts", action="store_true", help="leave Simple TensorFlow Serving out")
    parser.add_argument("--no-naive", action="store_true", help="leave the naive Flask app out")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads, the same for every server (default 1)")
    parser.add_argument("--inprocess-seconds", type=float, default=2.0, help="seconds per in-process loop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (models, logs, bodies)")
    parser.add_argument(
        "--section",
        default="bench",
        help="name of the RESULTS.md section and of perf/results/NAME-latest.json (default bench); e.g. defaults",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.inprocess_seconds = 1, 3.0, 1.0, 1.0
    return args


def chosen_scenarios(args: argparse.Namespace) -> tuple[Scenario, ...]:
    """The scenarios of this run: ``--scenario`` keys, else the quick or the default list."""
    if args.scenario:
        known = {s.key: s for s in KNOWN_SCENARIOS}
        unknown = [key for key in args.scenario if key not in known]
        if unknown:
            raise SystemExit(f"bench: unknown scenario {unknown}; known: {', '.join(known)}")
        return tuple(known[key] for key in args.scenario)
    return QUICK_SCENARIOS if args.quick else DEFAULT_SCENARIOS


def plan_servers(args: argparse.Namespace, models: Path, tf1: Path, work: Path) -> list[Server]:
    """tfaas, its variants and baselines, the two floors, naive and STS (unless left out), each with free ports."""
    variants = [parse_variant(text) for text in args.variant]
    baselines = [parse_variant(text) for text in args.baseline]
    peers = (0 if args.no_naive else 1) + (0 if args.no_sts else 1)
    ports = free_ports(2 * (1 + len(variants) + len(baselines)) + 2 + peers)
    pair = lambda: (ports.pop(0), ports.pop(0))  # noqa: E731
    servers = [tfaas_server("tfaas", [], pair(), models)]
    servers += [tfaas_server(name, flags, pair(), models) for name, flags in variants]
    for name, (commit,) in baselines:
        code = work / f"code-{name}"
        servers.append(tfaas_server(name, [], pair(), models, code, export_commit(commit, code)))
    workers = tfaas_workers(models)
    servers += [rest_floor_server(ports.pop(0), workers), grpc_floor_server(ports.pop(0), workers)]
    if not args.no_naive:
        servers.append(naive_server(ports.pop(0), models))
    if not args.no_sts:
        servers.append(sts_server(ports.pop(0), tf1, work))
    return servers


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=FLAGS`` (or ``NAME=COMMIT``) → (name, its words)."""
    name, sep, flags = text.partition("=")
    taken = ("tfaas", "naive", "sts", *FLOORS.values())
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in taken:
        raise SystemExit(f"bench: --variant and --baseline want NAME=... with a new name, got {text!r}")
    return name, shlex.split(flags)


def check_tools(args: argparse.Namespace) -> None:
    """Abort early if wrk or STS's virtual environment is missing."""
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (apt-get install wrk)")
    if not args.no_sts and not (STS_VENV / "bin" / "simple_tensorflow_serving").exists():
        raise SystemExit("bench: no STS venv; run `bash perf/peers/setup_sts.sh` first (or pass --no-sts)")


def run(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    """The whole benchmark; returns the report."""
    started = time.monotonic()
    scenarios = chosen_scenarios(args)
    about = {"machine": machine(), "tfaas_defaults": tfaas_defaults()}  # NOTE: first, so a failure costs nothing
    logs = work / "logs"
    logs.mkdir()
    print(f"bench: building models in {work}", flush=True)
    models, tf1 = build_models(work, processes)
    servers = plan_servers(args, models, tf1, work)
    for server in servers:
        start_server(server, processes, logs)
    for server in servers:
        wait_ready(server, processes)
        print(f"bench: {server.name} ready on port {server.port} ({len(server.pids())} processes)", flush=True)
    worst = sanity_check(servers, work, processes)
    print(f"bench: answers agree (largest difference {max(worst.values()):.2g})", flush=True)
    bodies = write_bodies(servers, scenarios, work, processes)
    windows: list[Window] = []
    inprocess_runs = []
    for round_index in range(args.rounds):
        inprocess_runs.append(run_inprocess(models, args, processes, logs))
        order = servers[round_index % len(servers) :] + servers[: round_index % len(servers)]
        for scenario in scenarios:
            for server in (s for s in order if s.speaks(scenario)):
                window = measure(server, scenario, bodies[(server.kind, scenario.key)], args, round_index, processes)
                windows.append(window)
                print_window(window)
    summary = summarize(windows, servers, scenarios)
    ratio = ratios(windows, servers, scenarios)
    inprocess = inprocess_summary(inprocess_runs)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python perf/bench.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]),
        "section": args.section,
        **about,
        "tensorflow": inprocess_runs[0]["tensorflow"],
        "servers": [{"name": s.name, "kind": s.kind, "command": describe_command(s)} for s in servers],
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "wrk_threads": args.wrk_threads,
        "elapsed_min": (time.monotonic() - started) / 60,
        "sanity_max_abs_diff": worst,
        "windows": [{**asdict(w), "errors": w.errors} for w in windows],
        "inprocess_runs": inprocess_runs,
        "inprocess": inprocess,
        "summary": summary,
        "ratios": ratio,
        "p99_knee": p99_knee(summary, servers, scenarios),
        "client_cpu_ms_per_request": {
            protocol: median(w.client_cpu_ms_per_request for w in windows if w.scenario in keys)
            for protocol, keys in protocol_keys(scenarios).items()
        },
        "workers": tfaas_workers(models),
        "commit": current_commit(),
        "targets": evaluate_targets(summary, ratio, inprocess, servers, windows),
        "notes": notes(windows),
    }


def protocol_keys(scenarios: Sequence[Scenario]) -> dict[str, set[str]]:
    """The keys of the scenarios of each protocol that has some."""
    keys = {p: {s.key for s in scenarios if s.protocol == p} for p in PROTOCOL_NAMES}
    return {p: mine for p, mine in keys.items() if mine}


def current_commit() -> str:
    """The checkout's commit (short), ``+`` where its ``tfaas`` files differ from it."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", "tfaas"]
    dirty = subprocess.run(status, capture_output=True)
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def notes(windows: Sequence[Window]) -> str:
    """Remarks on this run's windows: high steal, servers whose processes changed, errors."""
    text = []
    high = [w for w in windows if w.steal > STEAL_MARK]
    if high:
        text.append(f"{len(high)} of {len(windows)} windows had more than {STEAL_MARK:.0%} steal.")
    busy = [w for w in windows if w.others > STEAL_MARK]
    if busy:
        text.append(
            f"In {len(busy)} of {len(windows)} windows other processes used more than {STEAL_MARK:.0%} of the CPU."
        )
    changed = sorted({f"{w.server} ({w.scenario}, round {w.round + 1})" for w in windows if w.processes_changed})
    if changed:
        text.append("Processes came or went during: " + ", ".join(changed) + ".")
    return " ".join(text)


def print_window(w: Window) -> None:
    """One progress line per measured window."""
    print(
        f"round {w.round + 1} {w.scenario:<22} {w.server:<12} {w.good_rps:8.0f} req/s  p50 {w.p50_ms:7.1f} ms  "
        f"p99 {w.p99_ms:7.1f} ms  err {w.errors:<5} cpu {fmt(w.server_cpu_ms_per_request, 2):>6} ms/req  "
        f"rss {w.rss_mib:5.0f} MiB  steal {100 * w.steal:3.0f}%{' ⚠' if w.steal > STEAL_MARK else ''}  "
        f"others {100 * w.others:3.0f}%",
        flush=True,
    )


def estimated_minutes(args: argparse.Namespace) -> float:
    """How long the run should take: start-up, then every round's in-process loops and windows."""
    planned = {"tfaas": 1 + len(args.variant) + len(args.baseline), "rest-floor": 1, "grpc-floor": 1}
    planned |= {"naive": 0 if args.no_naive else 1, "sts": 0 if args.no_sts else 1}
    seconds = 0.0
    for scenario in chosen_scenarios(args):
        servers = sum(count for kind, count in planned.items() if scenario.protocol in PROTOCOLS[kind])
        extra = GRPC_CLIENT_START_S if scenario.protocol == "grpc" else 0.5
        seconds += servers * (args.warmup + args.duration + extra)
    return (90 + args.rounds * (seconds + 6 * args.inprocess_seconds + 10)) / 60


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark, write the JSON and the RESULTS.md section; stop everything started, whatever happens."""
    args = parse_args(argv)
    check_tools(args)
    print(f"bench: this run takes about {estimated_minutes(args):.0f} min", flush=True)
    processes = Processes()
    work = Path(tempfile.mkdtemp(prefix="tfaas-bench-"))
    # NOTE: SIGTERM becomes an exception and SIGINT one even where a shell started us ignoring it (`&`),
    # so the finally below stops every server we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ok = False
    try:
        report = run(args, processes, work)
        ok = True
    except KeyboardInterrupt:
        print("bench: interrupted; stopping the servers", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # NOTE: a second Ctrl-C must not cut the clean-up short
        processes.stop_all()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"bench: models, bodies and logs kept in {work}", file=sys.stderr)
    results_json = RESULTS_JSON.with_name(f"{args.section}-latest.json")
    results_json.parent.mkdir(parents=True, exist_ok=True)
    results_json.write_text(json.dumps(report, indent=1) + "\n")
    write_results_md(markdown(report, chosen_scenarios(args)), args.section)
    print(f"bench: wrote {results_json.relative_to(REPO)} and the {args.section} section of perf/RESULTS.md")
    for line in report["targets"]:
        print(line)


if __name__ == "__main__":
    main()
