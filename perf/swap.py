"""Swap cost, tail latency while a version loads, and memory per swap policy (issue 6).

Run: ``python perf/swap.py`` (about 4-5 minutes; rewrites the swap section of perf/RESULTS.md and prints
it) or ``python perf/swap.py --quick`` (about 2 minutes, one round of each phase; RESULTS.md is left
alone unless ``--write``). ``--keep`` keeps the work folder (server log, every request, py-spy output).

Servers are ``tfaas serve --config FILE`` on 127.0.0.1 (free ports in 8800-8899), default settings, JSON
log lines (lifecycle times come from them: aspired, Loaded, Unloaded). Models: ``half_plus_two`` and
``dense42`` (``python -m tfaas.examples``) and ``big``, a dense network 42 -> 4096 x 7 -> 1 (six 4096x4096
float32 matrices, 385 MiB). A new version is a hard-linked copy of version 1 staged beside the watched folder
and renamed into it; the default 1 s settle time then applies.

1. Memory: two servers, each serving ``big`` alone, one with ``swap_policy: availability``, one with
   ``swap_policy: resource``; swaps alternate between them while one prober connection per server sends a
   predict every 100 ms and counts failures; both workers' RSS is sampled every 20 ms.
2. The main server (``half_plus_two``, ``dense42``, ``big``): idle swaps of the examples, copy finished ->
   AVAILABLE and settled -> AVAILABLE.
3. Tail latency: a separate load-generator process (this file run as ``swap.py loadgen``: one thread and
   one keep-alive socket per connection, one request in flight each) sends batch-1 ``dense42:predict`` at
   concurrency 32 and records every request's send time, latency and status. Meanwhile new versions of
   ``big`` (another model loads) and ``dense42`` (the served model itself swaps) are dropped in, in
   alternating order. Per swap, p99 of: the steady window before it; requests answered while the version
   loads; requests in flight while the old version unloads; in flight during the whole swap; the second
   after. Failed requests, answered/s, steal and CPU (worker, load generator, other processes) per window.
4. One more swap of each under the same load with ``py-spy record --gil`` attached to the worker: which
   threads held the GIL, and at which source lines.

The load generator is Python, not wrk: wrk's Lua API gives no per-request timestamps. It uses raw sockets
and a minimal HTTP/1.1 reader, costing about 0.06 core per 1,000 requests/s (measured and reported); its own
scheduling delays are in the steady windows as much as in the swap windows they are compared with.
Every process started here is stopped by its PID in a ``finally`` (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from tfaas.examples import save_dense

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "RESULTS.md"
SECTION_TITLE = "## Swap cost and memory"
BEGIN, END = "<!-- swap:begin -->", "<!-- swap:end -->"
PORTS = range(8800, 8900)

BIG_WIDTH = 4096
BIG_HIDDEN = 6  # 4096x4096 matrices: 6 x 64 MiB
BIG_SEED = 6
DENSE42_INPUTS = 42
PREDICT = "/v1/models/{}:predict"
PROBE_INTERVAL = 0.1  # seconds between a prober connection's requests
SAMPLE_SECONDS = 0.02
STOP_TIMEOUT = 40.0
PY_SPY_RATE = 100  # samples per second


@dataclass(frozen=True)
class Plan:
    """How much to run: rounds of each phase and the load settings."""

    idle_rounds: int = 3
    memory_rounds: int = 4
    latency_rounds: int = 8
    connections: int = 32
    warmup_seconds: float = 4.0
    quiet_seconds: float = 1.0  # after a swap, before its successor's steady window starts
    steady_seconds: float = 2.0  # at least this long between steady-window start and the rename
    after_seconds: float = 1.0  # the "first second after" window


QUICK = Plan(idle_rounds=1, memory_rounds=1, latency_rounds=1)


# --------------------------------------------------------------------------------------------------
# Child-process commands: building the models, and the load generator.


def build_models(outdir: Path) -> None:
    """Write the examples (``python -m tfaas.examples``) and the big model's version 1 under ``outdir``."""
    subprocess.run([sys.executable, "-m", "tfaas.examples", str(outdir)], check=True)
    if not (outdir / "big" / "1").is_dir():
        subprocess.run([sys.executable, str(HERE), "build-big", str(outdir / "big" / "1")], check=True)


def save_big_model(path: str) -> None:
    """Save the big dense network (signature ``serving_default``: ``inputs`` [None, 42] -> ``outputs``)."""
    rng = np.random.default_rng(BIG_SEED)
    dims = [DENSE42_INPUTS, *[BIG_WIDTH] * (BIG_HIDDEN + 1), 1]
    layers = [
        (
            rng.standard_normal((fan_in, fan_out), dtype=np.float32) / np.float32(np.sqrt(fan_in)),
            np.zeros(fan_out, np.float32),
        )
        for fan_in, fan_out in zip(dims, dims[1:])
    ]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=os.path.dirname(path) or ".")
    save_dense(staging, layers)
    os.rename(staging, path)


def predict_body() -> bytes:
    """A batch-1 predict body for dense42 (and the big model): ``{"instances": [[42 floats]]}``."""
    rng = random.Random(42)
    return json.dumps({"instances": [[round(rng.uniform(-1, 1), 4) for _ in range(DENSE42_INPUTS)]]}).encode()


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (Content-Length framed); return (status, server closes the connection)."""
    while (head_end := buffer.find(b"\r\n\r\n")) < 0:
        _receive(sock, buffer)
    lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
    status, length, closes = int(lines[0].split(" ", 2)[1]), None, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            closes = value.strip().lower() == "close"
    if length is None:
        raise ConnectionError("response without Content-Length")
    total = head_end + 4 + length
    while len(buffer) < total:
        _receive(sock, buffer)
    del buffer[:total]
    return status, closes


def _receive(sock: socket.socket, buffer: bytearray) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("connection closed by the server")
    buffer += chunk


def _connection_loop(
    port: int, request: bytes, interval: float, stop: threading.Event, out: list[tuple[float, float, int]]
) -> None:
    """One keep-alive connection, one request in flight: append (send wall time, latency, status)."""
    wall0, clock0 = time.time(), time.perf_counter()
    sock: socket.socket | None = None
    buffer = bytearray()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffer.clear()
            sock.sendall(request)
            status, closes = _read_response(sock, buffer)
        except OSError:
            status, closes = 0, True
        done = time.perf_counter()
        out.append((wall0 + (started - clock0), done - started, status))
        if closes and sock is not None:
            sock.close()
            sock = None
        if status == 0:
            stop.wait(0.01)  # NOTE: the server is not there; do not spin
        elif interval:
            stop.wait(max(0.0, interval - (time.perf_counter() - started)))
    if sock is not None:
        sock.close()


def loadgen_main(argv: Sequence[str]) -> None:
    """``swap.py loadgen``: run the connections until SIGTERM (or ``--max-seconds``), then save them."""
    parser = argparse.ArgumentParser(prog="swap.py loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", action="append", required=True, help="MODEL:CONNECTIONS:INTERVAL_SECONDS")
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    body = predict_body()
    threads, records = [], []
    for index, target in enumerate(args.target):
        model, connections, interval = target.split(":")
        head = f"POST {PREDICT.format(model)} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        request = f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        for _ in range(int(connections)):
            out: list[tuple[float, float, int]] = []
            records.append((index, out))
            loop_args = (args.port, request, float(interval), stop, out)
            threads.append(threading.Thread(target=_connection_loop, args=loop_args, daemon=True))
    for thread in threads:
        thread.start()
    stop.wait(args.max_seconds)
    stop.set()
    for thread in threads:
        thread.join(35)
    rows = [(*row, index) for index, out in records for row in list(out)]
    table = np.array(rows, dtype=float).reshape(-1, 4)
    np.save(args.out, table[np.argsort(table[:, 0])])


# --------------------------------------------------------------------------------------------------
# Processes and /proc.


def free_port() -> int:
    """A port in 8800-8899 that nothing listens on now (tried from a random start, to avoid neighbours)."""
    start = random.randrange(len(PORTS))
    for offset in range(len(PORTS)):
        port = PORTS[(start + offset) % len(PORTS)]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8800-8899")


def stop_process(
    process: subprocess.Popen | None, first: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> None:
    """Stop one process started here: ``first`` (SIGTERM), then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(first)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def children(pid: int) -> list[int]:
    """The child processes of ``pid``."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_mib(pid: int) -> float:
    """Resident set size of one process, in MiB (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE") / 2**20
    except (OSError, IndexError):
        return 0.0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_counters() -> tuple[int, int, int]:
    """(steal, busy, total) jiffies of the whole machine from /proc/stat; busy = user, nice, system, irq, softirq."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return values[7], values[0] + values[1] + values[2] + values[5] + values[6], sum(values)


def machine() -> str:
    """``nproc`` and the CPU model, for the report."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return f"{os.cpu_count()} CPUs ({match.group(1).strip() if match else 'unknown CPU'})"


# --------------------------------------------------------------------------------------------------
# Sampling the machine and the worker every 20 ms.


@dataclass
class Sample:
    """One sample: wall time, machine jiffies (steal, busy, total), RSS (MiB) of the watched workers by PID,
    CPU seconds so far of the server's workers (together), the load generator and this process."""

    t: float
    steal: int
    busy: int
    total: int
    rss: dict[int, float]
    server: float
    loadgen: float
    me: float


class Sampler(threading.Thread):
    """Samples /proc every 20 ms; answers per-window questions afterwards."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.workers: tuple[int, ...] = ()  # NOTE: their CPU is sampled
        self.loadgen: int | None = None
        self.rss_of: tuple[int, ...] = ()  # NOTE: the workers whose RSS is sampled
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._halt.wait(SAMPLE_SECONDS):
            workers, loadgen = self.workers, self.loadgen
            rss = {pid: rss_mib(pid) for pid in self.rss_of}
            server = sum(cpu_seconds(pid) for pid in workers)
            sample = Sample(time.time(), *cpu_counters(), rss, server, cpu_seconds(loadgen), cpu_seconds(me))
            self.samples.append(sample)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def between(self, start: float, end: float) -> list[Sample]:
        """The samples taken in [start, end]."""
        return [s for s in self.samples if start <= s.t <= end]

    def _edges(self, start: float, end: float, least: float = 1.0) -> tuple[Sample, Sample] | None:
        """The samples bracketing [start, end], widened around its middle to at least ``least`` seconds
        (/proc/stat counts in 10 ms ticks, so shorter windows say little)."""
        if end - start < least:
            middle = (start + end) / 2
            start, end = middle - least / 2, middle + least / 2
        before = [s for s in self.samples if s.t <= start]
        after = [s for s in self.samples if s.t >= end]
        if not before or not after:
            return None
        return before[-1], after[0]

    def steal(self, start: float, end: float) -> float:
        """Share of all CPU time stolen by neighbours in the window (NaN when not sampled)."""
        edges = self._edges(start, end)
        if edges is None or edges[1].total == edges[0].total:
            return float("nan")
        return (edges[1].steal - edges[0].steal) / (edges[1].total - edges[0].total)

    def cores(self, start: float, end: float) -> Cores:
        """CPU cores used in the window by the workers, the load generator and everything else on the machine."""
        edges = self._edges(start, end)
        if edges is None:
            return Cores(float("nan"), float("nan"), float("nan"))
        first, last = edges
        seconds = last.t - first.t
        server, loadgen = (last.server - first.server) / seconds, (last.loadgen - first.loadgen) / seconds
        busy = (last.busy - first.busy) / os.sysconf("SC_CLK_TCK") / seconds
        return Cores(server, loadgen, busy - server - loadgen - (last.me - first.me) / seconds)


@dataclass(frozen=True)
class Cores:
    """CPU cores in use during a window: the server's workers, the load generator, other processes (not this one)."""

    server: float
    loadgen: float
    others: float

    def __str__(self) -> str:
        return f"{self.server:.2f} + {self.loadgen:.2f} + {max(self.others, 0):.2f}"


# --------------------------------------------------------------------------------------------------
# Servers: config, start, log events.


@dataclass(frozen=True)
class ModelSpec:
    """One served model: its name, the source version it copies, its swap policy."""

    name: str
    source: str
    policy: str = "availability"


HALF_PLUS_TWO = ModelSpec("half_plus_two", "half_plus_two")
DENSE42 = ModelSpec("dense42", "dense42")
BIG = ModelSpec("big", "big", "availability")
BIG_RESOURCE = ModelSpec("big", "big", "resource")
MAIN_MODELS = (HALF_PLUS_TWO, DENSE42, BIG)


def write_config(path: Path, models_dir: Path, port: int, models: Sequence[ModelSpec]) -> None:
    """A server's YAML settings: 127.0.0.1, JSON log lines, its models (default settle time and threads)."""
    lines = [f"host: 127.0.0.1\nrest_api_port: {port}\ngrpc_port: 0\nlog_format: json\nlog_level: info\nmodels:"]
    for model in models:
        lines.append(f"  - {{name: {model.name}, base_path: {models_dir / model.name}, swap_policy: {model.policy}}}")
    path.write_text("\n".join(lines) + "\n")


def _parse_log_line(line: str) -> tuple[float, int, str] | None:
    """(wall time, process id, message) of one server log line, JSON or text; ``None`` for anything else."""
    if line.startswith("{"):
        try:
            entry = json.loads(line)
            return _log_time(entry["time"]), int(entry["pid"]), entry["message"]
        except (ValueError, KeyError, TypeError):
            return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\S+) \[(\d+)\] \[\w+\] \S+: (.*)", line)
    return (_log_time(match.group(1)), int(match.group(2)), match.group(3)) if match else None


def _log_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class ServerLog:
    """A server's log file, read incrementally; finds lifecycle events by message."""

    def __init__(self, path: Path, server: subprocess.Popen) -> None:
        self.path, self.server = path, server
        self.events: list[tuple[float, int, str]] = []
        self._offset = 0
        self._partial = b""

    def refresh(self) -> None:
        with open(self.path, "rb") as file:
            file.seek(self._offset)
            data = self._partial + file.read()
            self._offset = file.tell()
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            parsed = _parse_log_line(line.decode("utf-8", "replace"))
            if parsed is not None:
                self.events.append(parsed)

    def find(self, pattern: str) -> dict[int, float]:
        """Process id -> time of its first event whose message matches ``pattern``."""
        regex = re.compile(pattern)
        found: dict[int, float] = {}
        for t, pid, message in self.events:
            if pid not in found and regex.search(message):
                found[pid] = t
        return found

    def wait(self, pattern: str, timeout: float, processes: int = 1) -> list[float]:
        """Wait until ``processes`` processes logged an event matching ``pattern``; return their times."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            found = self.find(pattern)
            if len(found) >= processes:
                return sorted(found.values())
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited (see {self.path})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log line matching {pattern!r} within {timeout} s (see {self.path})")
            time.sleep(0.01)


def aspired_re(model: str, version: int) -> str:
    return rf"^Servable {model}: aspiring versions \[{version}\]"


def loaded_re(model: str, version: int) -> str:
    return rf"^Loaded servable \{{name: {model} version: {version}\}}"


def serving_re(model: str, version: int) -> str:
    return rf"^Servable \{{name: {model} version: {version}\}} is AVAILABLE on the server"


def unloaded_re(model: str, version: int) -> str:
    return rf"^Unloaded servable \{{name: {model} version: {version}\}}"


@dataclass
class Server:
    """A running ``tfaas serve``: its process, port and log; ``root`` holds its watched and staging folders,
    ``src`` the model versions copied in."""

    process: subprocess.Popen
    port: int
    log: ServerLog
    root: Path
    src: Path
    models: tuple[ModelSpec, ...]
    versions: dict[str, int] = field(default_factory=dict)

    workers: tuple[int, ...] = ()


def start_server(src: Path, root: Path, models: Sequence[ModelSpec]) -> Server:
    """Start ``tfaas serve --config`` serving version 1 of ``models`` from ``root/models``."""
    for model in models:
        link_copy(src / model.source / "1", root / "models" / model.name / "1")
    port = free_port()
    write_config(root / "tfaas.yaml", root / "models", port, models)
    with open(root / "server.log", "wb") as log:
        command = [sys.executable, "-m", "tfaas", "serve", "--config", str(root / "tfaas.yaml")]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Server(process, port, ServerLog(root / "server.log", process), root, src, tuple(models))


@contextlib.contextmanager
def running_servers(work: Path, layouts: dict[str, Sequence[ModelSpec]]) -> Iterator[dict[str, Server]]:
    """Start one server per layout (side by side), wait until every model serves; stop them all afterwards."""
    started: dict[str, Server] = {}
    try:
        for name, models in layouts.items():
            started[name] = start_server(work / "src", work / name, models)
        for server in started.values():
            wait_ready(server)
        yield started
    finally:
        for server in started.values():
            stop_process(server.process)


def wait_ready(server: Server) -> None:
    """Wait until every worker serves version 1 of every model; note the workers (gunicorn boots them all
    before any loads a model)."""
    for model in server.models:
        server.log.wait(loaded_re(model.name, 1), 180)
    server.workers = tuple(server.log.find(r"^Booting worker with pid").keys())
    for model in server.models:
        server.log.wait(loaded_re(model.name, 1), 180, len(server.workers))
        server.versions[model.name] = 1
    live = children(server.process.pid)
    if not set(server.workers) <= set(live):  # NOTE: the lifecycle coordinator is a child too
        raise RuntimeError(f"gunicorn's workers {server.workers} are not all alive: {live}")


def link_copy(source: Path, target: Path) -> None:
    """Copy a version directory as hard links (instant; the files' ctime changes, as a copy's would)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, copy_function=os.link)


# --------------------------------------------------------------------------------------------------
# One swap.


@dataclass
class Swap:
    """The timeline of one version swap (wall times); ``steady_from`` starts its steady window."""

    model: str
    policy: str
    version: int
    steady_from: float
    renamed: float = 0.0
    aspired: float = 0.0
    loaded: float = 0.0
    unloaded_old: float = 0.0

    @property
    def end(self) -> float:
        """The later of the new version AVAILABLE and the old one unloaded."""
        return max(self.loaded, self.unloaded_old)


Step = tuple[Server, ModelSpec]
"""One swap to make: a new version of a model of a server."""


def stage(server: Server, model: ModelSpec) -> Path:
    """Put the model's next version in a staging folder beside the watched one; return it."""
    staged = server.root / "staging" / f"{model.name}-{server.versions[model.name] + 1}"
    link_copy(server.src / model.source / "1", staged)
    return staged


def swap(server: Server, model: ModelSpec, staged: Path, steady_from: float) -> Swap:
    """Rename the staged version into the watched folder; wait until it serves and the old one is gone."""
    old = server.versions[model.name]
    record = Swap(model.name, model.policy, old + 1, steady_from)
    record.renamed = time.time()
    os.rename(staged, server.root / "models" / model.name / str(old + 1))
    workers = len(server.workers)
    # NOTE: the coordinator aspires once and says when the server serves the version (every worker in
    # rotation has it); each worker loads and unloads in its window; the swap ends with the last unload.
    record.aspired = server.log.wait(aspired_re(model.name, old + 1), 30)[0]
    record.loaded = server.log.wait(serving_re(model.name, old + 1), 120)[0]
    record.unloaded_old = server.log.wait(unloaded_re(model.name, old), 120, workers)[-1]
    server.versions[model.name] = old + 1
    return record


def sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.time()))


def run_swaps(steps: Sequence[Step], plan: Plan, start: float) -> list[Swap]:
    """Make each swap in turn, each after a quiet gap and a steady stretch."""
    swaps, steady_from = [], start
    for server, model in steps:
        staged = stage(server, model)
        sleep_until(steady_from + plan.steady_seconds)
        swaps.append(swap(server, model, staged, steady_from))
        steady_from = swaps[-1].end + plan.quiet_seconds
    sleep_until(steady_from + plan.after_seconds)
    return swaps


def interleaved(steps: Sequence[Step], rounds: int) -> list[Step]:
    """A B, B A, A B ...: each round reverses the order, so neither always goes first."""
    order: list[Step] = []
    for index in range(rounds):
        order.extend(steps if index % 2 == 0 else reversed(steps))
    return order


# --------------------------------------------------------------------------------------------------
# The load generator, seen from here.


class LoadGen:
    """A ``swap.py loadgen`` child process; ``stop()`` returns its requests."""

    def __init__(self, server: Server, targets: Sequence[str], max_seconds: float) -> None:
        self.out = server.root / f"requests-{time.monotonic_ns()}.npy"
        command = [sys.executable, str(HERE), "loadgen", "--port", str(server.port), "--out", str(self.out)]
        command += ["--max-seconds", str(max_seconds), *(arg for t in targets for arg in ("--target", t))]
        self.log = open(server.root / "loadgen.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process: subprocess.Popen | None = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.time()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> Requests:
        """Stop the generator (SIGTERM, then SIGKILL) and read what it recorded."""
        stop_process(self.process)
        self.process = None
        self.log.close()
        return Requests(np.load(self.out))


@dataclass
class Requests:
    """Every request of a load-generator run: columns send (wall), latency (s), status, target index."""

    table: np.ndarray

    def select(self, target: int, start: float, end: float, how: str) -> np.ndarray:
        """Rows of ``target`` by their time in [start, end]: ``sent`` in it, ``answered`` in it, sent and
        answered ``within`` it, or in flight at some moment of it (``overlap``)."""
        t = self.table
        sent, done = t[:, 0], t[:, 0] + t[:, 1]
        chosen = {
            "sent": (sent >= start) & (sent < end),
            "answered": (done > start) & (done <= end),
            "within": (sent >= start) & (done <= end),
            "overlap": (sent <= end) & (done >= start),
        }[how]
        return t[(t[:, 3] == target) & chosen]


def p99_ms(rows: np.ndarray) -> float:
    """p99 latency of the successful requests among ``rows``, in ms (NaN when there are none)."""
    ok = rows[rows[:, 2] == 200, 1]
    return float(np.percentile(ok, 99)) * 1000 if len(ok) else float("nan")


def failures(rows: np.ndarray) -> int:
    return int(np.count_nonzero(rows[:, 2] != 200))


# --------------------------------------------------------------------------------------------------
# Phases.


def idle_phase(server: Server, plan: Plan) -> list[Swap]:
    """Swaps of the examples with no load: copy finished -> AVAILABLE, settled -> AVAILABLE."""
    return run_swaps(interleaved([(server, HALF_PLUS_TWO), (server, DENSE42)], plan.idle_rounds), plan, time.time())


@dataclass
class MemoryResult:
    """One big-model swap with the prober running: RSS before/peak/after, failed probes, gap."""

    swap: Swap
    before: float
    peak: float
    after: float
    probes: int
    failed: int
    statuses: dict[int, int]
    gap: float


def memory_phase(servers: dict[str, Server], sampler: Sampler, plan: Plan) -> list[MemoryResult]:
    """Swap the big model of each server (one per swap policy) in turn, each under a slow prober; sample
    the workers' RSS."""
    probers = {}
    sampler.rss_of = tuple(pid for server in servers.values() for pid in server.workers)
    steps = [(server, server.models[0]) for server in servers.values()]
    try:
        for name, server in servers.items():
            probers[name] = LoadGen(server, [f"big:1:{PROBE_INTERVAL}"], max_seconds=60 + 30 * plan.memory_rounds)
        swaps = run_swaps(interleaved(steps, plan.memory_rounds), plan, time.time() + 1.0)
    finally:
        requests = {name: prober.stop() for name, prober in probers.items()}
    by_policy = {server.models[0].policy: (name, server.workers) for name, server in servers.items()}
    results = []
    for record in swaps:
        name, workers = by_policy[record.policy]
        results.append(memory_result(record, sampler, requests[name], workers))
    return results


def memory_result(swap: Swap, sampler: Sampler, requests: Requests, workers: tuple[int, ...]) -> MemoryResult:
    """RSS (of all the server's workers together) and probe failures of one swap: before = median of the
    second before the aspire, peak = max from the aspire to 0.5 s after the swap ended, after = median of
    the 0.5 s after that."""

    def rss(start: float, end: float) -> list[float]:
        return [sum(s.rss.get(pid, 0.0) for pid in workers) for s in sampler.between(start, end)]

    before, during = rss(swap.aspired - 1.0, swap.aspired), rss(swap.aspired, swap.end + 0.5)
    after = rss(swap.end + 0.5, swap.end + 1.0)
    rows = requests.select(0, swap.aspired - 0.5, swap.end + 1.0, "overlap")
    bad = rows[rows[:, 2] != 200]
    statuses: dict[int, int] = {}
    for code in bad[:, 2].astype(int):
        statuses[int(code)] = statuses.get(int(code), 0) + 1
    gap = float(bad[:, 0].max() + bad[:, 1].max() - bad[:, 0].min()) if len(bad) else 0.0
    return MemoryResult(
        swap,
        statistics.median(before) if before else float("nan"),
        max(during, default=float("nan")),
        statistics.median(after) if after else float("nan"),
        len(rows),
        len(bad),
        statuses,
        gap,
    )


@dataclass(frozen=True)
class Window:
    """One window of a swap under load: p99 (ms) and count of its requests, their rate, steal and CPU."""

    p99: float
    n: int
    rate: float
    steal: float
    cores: Cores


@dataclass
class LatencyResult:
    """One swap under load: its windows (steady, loading, unloading, swap, after) and the failed requests."""

    swap: Swap
    windows: dict[str, Window]
    failed: int

    def ratio(self, window: str = "swap") -> float:
        """p99 in ``window`` / steady p99."""
        return self.windows[window].p99 / self.windows["steady"].p99


def latency_phase(server: Server, sampler: Sampler, plan: Plan) -> tuple[list[LatencyResult], Requests]:
    """Concurrency-``plan.connections`` dense42 load; big and dense42 versions dropped in, interleaved."""
    order = interleaved([(server, BIG), (server, DENSE42)], plan.latency_rounds)
    load = LoadGen(server, [f"dense42:{plan.connections}:0"], max_seconds=60 + 30 * len(order))
    sampler.loadgen = load.pid
    try:
        swaps = run_swaps(order, plan, time.time() + plan.warmup_seconds)
    finally:
        requests = load.stop()
        sampler.loadgen = None
    return [latency_result(s, sampler, requests, plan) for s in swaps], requests


def window_bounds(swap: Swap, plan: Plan) -> dict[str, tuple[float, float, str]]:
    """(start, end, how requests are chosen) of each window of a swap (see ``Requests.select``)."""
    return {
        "steady": (swap.steady_from, swap.aspired, "within"),
        "loading": (swap.aspired, swap.loaded, "answered"),
        "unloading": (swap.loaded, swap.unloaded_old, "overlap"),
        "swap": (swap.aspired, swap.end, "overlap"),
        "after": (swap.end, swap.end + plan.after_seconds, "sent"),
    }


def latency_result(swap: Swap, sampler: Sampler, requests: Requests, plan: Plan) -> LatencyResult:
    """Measure the windows of one swap: p99, requests answered per second, steal and CPU of each."""
    windows = {}
    for name, (start, end, how) in window_bounds(swap, plan).items():
        rows = requests.select(0, start, end, how)
        rate = len(requests.select(0, start, end, "answered")) / max(end - start, 1e-3)
        windows[name] = Window(p99_ms(rows), len(rows), rate, sampler.steal(start, end), sampler.cores(start, end))
    everything = requests.select(0, swap.aspired, swap.end + plan.after_seconds, "overlap")
    return LatencyResult(swap, windows, failures(everything))


# --------------------------------------------------------------------------------------------------
# Where the GIL goes during a swap (py-spy).


ROLES = (
    ("loading thread", "_execute_load"),
    ("unloading thread", "_execute_unload"),
    ("file-system source", "file_system.py"),
    ("batch threads", "_run_batches"),
    ("request threads", "asgi.py"),
)


@dataclass
class Profile:
    """GIL time by thread role while one version swapped under load (py-spy ``--gil`` samples)."""

    swap: Swap
    seconds: float
    gil: dict[str, int]
    leaves: dict[str, list[tuple[str, int]]]
    cpu_steady: dict[str, float]  # NOTE: cores per kind of thread in the second before the aspire
    cpu_loading: dict[str, float]  # NOTE: ... and from the aspire to AVAILABLE

    def span_share(self, milliseconds: float) -> float:
        """``milliseconds`` as a share of the recorded span."""
        return milliseconds / 1000 / self.seconds

    def share(self, who: str) -> float:
        """The share of all GIL-holding samples taken in threads of kind ``who``."""
        return self.gil.get(who, 0) / max(sum(self.gil.values()), 1)

    @property
    def load_ms(self) -> float:
        return (self.swap.loaded - self.swap.aspired) * 1000

    @property
    def unload_ms(self) -> float:
        return (self.swap.unloaded_old - self.swap.loaded) * 1000


def thread_cpu(pids: Sequence[int]) -> dict[int, tuple[str, float]]:
    """Thread id -> (name, CPU seconds so far) for every thread of ``pids``."""
    threads = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError):
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                    threads[int(task.name)] = ((task / "comm").read_text().strip(), seconds)
    return threads


class ThreadSampler(threading.Thread):
    """Per-thread CPU of some processes every 50 ms, to split a window's CPU by kind of thread."""

    def __init__(self, pids: Sequence[int]) -> None:
        super().__init__(daemon=True)
        self.pids = tuple(pids)
        self.snapshots: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.snapshots.append((time.time(), thread_cpu(self.pids)))
            self._halt.wait(0.05)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def cores(self, start: float, end: float, kinds: dict[int, str]) -> dict[str, float]:
        """Cores used in [start, end] per kind of thread: ``kinds`` (from py-spy), else TensorFlow's own
        threads (``tf_*``), else "other"."""
        before = [snap for t, snap in self.snapshots if t <= start]
        after = [(t, snap) for t, snap in self.snapshots if t >= end]
        if not before or not after:
            return {}
        first, (last_t, last) = before[-1], after[0]
        seconds = last_t - max(t for t, _ in self.snapshots if t <= start)
        cores: dict[str, float] = {}
        for tid, (comm, cpu) in last.items():
            kind = kinds.get(tid) or ("TensorFlow threads" if comm.startswith("tf_") else "other")
            used = cpu - first.get(tid, (comm, 0.0))[1]
            cores[kind] = cores.get(kind, 0.0) + used / seconds
        return cores


def role(stack: str) -> str:
    """The kind of thread a py-spy stack (root first, ``;``-separated) belongs to."""
    return next((name for name, marker in ROLES if marker in stack), "other")


def source_line(frame: str) -> str:
    """The source text of a py-spy frame ``function (path/file.py:line)``, looked up on ``sys.path``."""
    match = re.search(r"\((.+):(\d+)\)$", frame)
    if match is None:
        return ""
    for root in [str(HERE.parents[1]), *sys.path]:
        candidate = Path(root or ".") / match.group(1)
        if candidate.is_file():
            lines = candidate.read_text(errors="replace").splitlines()
            number = int(match.group(2))
            return lines[number - 1].split("#")[0].strip() if number <= len(lines) else ""
    return ""


def read_profile(path: Path, gil: dict[str, int], leaves: dict[str, dict[str, int]], kinds: dict[int, str]) -> None:
    """Add py-spy's raw output to the GIL-holding samples per role and per role and leaf frame, and the
    role of each thread id."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        who, frame = role(stack), stack.rsplit(";", 1)[-1]
        thread = re.match(r"thread \((0x[0-9a-fA-F]+|\d+)\)", stack)
        if thread and who != "other":
            kinds[int(thread.group(1), 0)] = who
        gil[who] = gil.get(who, 0) + int(count)
        leaf = leaves.setdefault(who, {})
        leaf[frame] = leaf.get(frame, 0) + int(count)


def profiled_swap(server: Server, model: ModelSpec, pyspy: str, rate: float) -> Profile:
    """Swap one model with py-spy recording each worker's GIL holders from before the rename to after the swap."""
    staged = stage(server, model)
    outputs = [server.root / f"py-spy-{model.name}-{pid}.txt" for pid in server.workers]
    recorders, threads = [], ThreadSampler(server.workers)
    threads.start()
    try:
        with open(server.root / "py-spy.log", "ab") as log:
            for pid, out in zip(server.workers, outputs):
                command = [pyspy, "record", "--pid", str(pid), "--rate", str(rate), "--gil", "--threads"]
                command += ["--nonblocking", "--duration", "60", "--format", "raw", "--output", str(out)]
                recorders.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        time.sleep(1.0)  # NOTE: py-spy attaching
        started = time.time()
        record = swap(server, model, staged, started)
        time.sleep(0.5)
    finally:
        for recorder in recorders:
            stop_process(recorder, signal.SIGINT)  # NOTE: py-spy writes its output on SIGINT
        threads.stop()
    gil: dict[str, int] = {}
    leaves: dict[str, dict[str, int]] = {}
    kinds: dict[int, str] = {}
    for out in outputs:
        if out.exists():
            read_profile(out, gil, leaves, kinds)
    top = {who: sorted(frames.items(), key=lambda item: -item[1])[:3] for who, frames in leaves.items()}
    steady = threads.cores(record.aspired - 1.0, record.aspired, kinds)
    loading = threads.cores(record.aspired, record.loaded, kinds)
    return Profile(record, time.time() - started, gil, top, steady, loading)


def profile_phase(server: Server, plan: Plan) -> list[Profile]:
    """One more swap of big and of dense42 under the same load, with py-spy attached (not in the tables)."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        return []
    load = LoadGen(server, [f"dense42:{plan.connections}:0"], max_seconds=120)
    profiles = []
    try:
        time.sleep(plan.warmup_seconds)
        for model in (BIG, DENSE42):
            profiles.append(profiled_swap(server, model, pyspy, PY_SPY_RATE))
            time.sleep(plan.quiet_seconds)
    finally:
        load.stop()
    return profiles


# --------------------------------------------------------------------------------------------------
# Report.


def median(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]  # NOTE: drop NaN
    return statistics.median(values) if values else float("nan")


def load_time_table(idle: list[Swap], memory: list[MemoryResult], latency: list[LatencyResult]) -> list[str]:
    """copy finished -> AVAILABLE and settled -> AVAILABLE per model and setting."""
    groups: dict[tuple[str, str, str], list[Swap]] = {}
    labelled = [(m.swap, "own server, 10 probes/s") for m in memory] + [(s, "idle") for s in idle]
    labelled += [(r.swap, "dense42 load, c32") for r in latency]
    for swap_, setting in labelled:
        groups.setdefault((swap_.model, swap_.policy, setting), []).append(swap_)
    lines = [
        "| model (swap policy) | while | swaps | copy finished → AVAILABLE, median (max) "
        "| settled → AVAILABLE, median (max) | old version unloaded, relative to AVAILABLE (median) |",
        "|---|---|---|---|---|---|",
    ]
    for (model, _, setting), swaps in groups.items():
        waits = [s.loaded - s.renamed for s in swaps]
        loads = [s.loaded - s.aspired for s in swaps]
        unloads = [s.unloaded_old - s.loaded for s in swaps]
        lines.append(
            f"| {model} ({swaps[0].policy}) | {setting} | {len(swaps)} | {median(waits):.2f} s ({max(waits):.2f} s) "
            f"| {median(loads) * 1000:.0f} ms ({max(loads) * 1000:.0f} ms) | {median(unloads) * 1000:+.0f} ms |"
        )
    return lines


def memory_table(results: list[MemoryResult]) -> list[str]:
    """Per swap policy: RSS before the first swap, peaks (first swap, highest), after the last; probe failures."""
    lines = [
        "| big model's swap policy | swaps | RSS of the workers before the first swap | peak in the first swap (Δ) "
        "| highest peak of all swaps (Δ) | after the last swap (Δ) | failed probes / probes | statuses "
        "| unavailable for, median (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for policy in ("availability", "resource"):
        mine = [r for r in results if r.swap.policy == policy]
        if not mine:
            continue
        base = mine[0].before
        highest = max(r.peak for r in mine)
        statuses: dict[int, int] = {}
        for r in mine:
            for code, count in r.statuses.items():
                statuses[code] = statuses.get(code, 0) + count
        codes = ", ".join(f"{code or 'no answer'} ×{count}" for code, count in sorted(statuses.items())) or "—"
        gaps = [r.gap * 1000 for r in mine]
        lines.append(
            f"| {policy} | {len(mine)} | {base:.0f} MiB | {mine[0].peak:.0f} MiB ({mine[0].peak - base:+.0f}) "
            f"| {highest:.0f} MiB ({highest - base:+.0f}) | {mine[-1].after:.0f} MiB ({mine[-1].after - base:+.0f}) "
            f"| {sum(r.failed for r in mine)} / {sum(r.probes for r in mine)} | {codes} "
            f"| {median(gaps):.0f} ms ({max(gaps):.0f} ms) |"
        )
    return lines


def by_model(results: list[LatencyResult]) -> dict[str, list[LatencyResult]]:
    """The results grouped by swapped model, in first-seen order."""
    groups: dict[str, list[LatencyResult]] = {}
    for result in results:
        groups.setdefault(result.swap.model, []).append(result)
    return groups


def window_median(results: list[LatencyResult], window: str, what: str) -> float:
    return median([getattr(r.windows[window], what) for r in results])


def latency_table(results: list[LatencyResult], pooled: dict[str, tuple[float, float]]) -> list[str]:
    """Per swapped model: medians over the rounds of each window's p99, the ratios, the failures."""
    lines = [
        "| version loading | rounds | steady p99 | p99 answered while loading (ratio) "
        "| p99 in flight while the old version unloads | p99 in flight during the whole swap | ratio, median (max) "
        "| pooled p99: steady → whole swap | p99 in the second after | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, mine in by_model(results).items():
        ratios = [r.ratio() for r in mine]
        p99 = {name: window_median(mine, name, "p99") for name in ("steady", "loading", "unloading", "swap", "after")}
        lines.append(
            f"| {model} | {len(mine)} | {p99['steady']:.1f} ms "
            f"| {p99['loading']:.1f} ms ({median([r.ratio('loading') for r in mine]):.2f}×) "
            f"| {p99['unloading']:.1f} ms | {p99['swap']:.1f} ms | {median(ratios):.2f}× ({max(ratios):.2f}×) "
            f"| {pooled[model][0]:.1f} → {pooled[model][1]:.1f} ms | {p99['after']:.1f} ms "
            f"| {sum(r.failed for r in mine)} |"
        )
    return lines


def conditions_table(results: list[LatencyResult]) -> list[str]:
    """Per swapped model: how long the windows were, request rates, CPU cores in use and steal (medians)."""
    lines = [
        "| version loading | load takes | old version's unload takes | answered/s: steady / loading / unloading "
        "| cores steady: workers + loadgen + others | cores loading | cores unloading | steal: steady / loading |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, mine in by_model(results).items():
        load = median([r.swap.loaded - r.swap.aspired for r in mine]) * 1000
        unload = median([r.swap.unloaded_old - r.swap.loaded for r in mine]) * 1000
        rates = " / ".join(f"{window_median(mine, w, 'rate'):.0f}" for w in ("steady", "loading", "unloading"))
        cores = [median_cores([r.windows[w].cores for r in mine]) for w in ("steady", "loading", "unloading")]
        steal = " / ".join(f"{window_median(mine, w, 'steal'):.0%}" for w in ("steady", "loading"))
        lines.append(
            f"| {model} | {load:.0f} ms | {unload:.0f} ms | {rates} | {cores[0]} | {cores[1]} | {cores[2]} | {steal} |"
        )
    return lines


def median_cores(values: list[Cores]) -> Cores:
    return Cores(*(median([getattr(c, f) for c in values]) for f in ("server", "loadgen", "others")))


def pooled_p99(results: list[LatencyResult], requests: Requests, plan: Plan) -> dict[str, tuple[float, float]]:
    """p99 over all rounds' steady windows and over all rounds' whole-swap windows, per swapped model."""
    pooled = {}
    for model, mine in by_model(results).items():
        parts: dict[str, list[np.ndarray]] = {"steady": [], "swap": []}
        for result in mine:
            bounds = window_bounds(result.swap, plan)
            for name, rows in parts.items():
                rows.append(requests.select(0, *bounds[name]))
        pooled[model] = (p99_ms(np.concatenate(parts["steady"])), p99_ms(np.concatenate(parts["swap"])))
    return pooled


def profile_table(profiles: list[Profile]) -> list[str]:
    """GIL-holding samples per thread kind during each profiled swap, and the lines the load and unload held it at."""
    roles = [name for name, _ in ROLES] + ["other"]
    lines = [
        "| swap (py-spy span) | load / unload, share of the span | GIL samples: " + " | ".join(roles) + " "
        "| top lines holding the GIL in the load and unload threads (samples) |",
        "|---|---|" + "---|" * len(roles) + "---|",
    ]
    for profile in profiles:
        s = profile.swap
        held = " | ".join(f"{profile.gil.get(r, 0)} ({profile.share(r):.0%})" for r in roles)
        frames = "; ".join(
            f"{frame} `{source_line(frame)}` ({count})"
            for who in ("loading thread", "unloading thread")
            for frame, count in profile.leaves.get(who, [])[:2]
        )
        lines.append(
            f"| {s.model} v{s.version} ({profile.seconds:.1f} s) | {profile.load_ms:.0f} ms / {profile.unload_ms:.0f} "
            f"ms, {profile.span_share(profile.load_ms):.0%} / {profile.span_share(profile.unload_ms):.0%} "
            f"| {held} | {frames} |"
        )
    return lines


CPU_KINDS = ("request threads", "batch threads", "loading thread", "TensorFlow threads", "unloading thread", "other")


def thread_cpu_table(profiles: list[Profile]) -> list[str]:
    """Cores per kind of thread in the second before the aspire and while the version loaded."""
    lines = [
        "| swap | " + " | ".join(CPU_KINDS) + " | all |",
        "|---|" + "---|" * (len(CPU_KINDS) + 1),
    ]
    for profile in profiles:
        cells = [
            f"{profile.cpu_steady.get(kind, 0.0):.2f} → {profile.cpu_loading.get(kind, 0.0):.2f}" for kind in CPU_KINDS
        ]
        total = f"{sum(profile.cpu_steady.values()):.2f} → {sum(profile.cpu_loading.values()):.2f}"
        lines.append(f"| {profile.swap.model} v{profile.swap.version} | " + " | ".join(cells) + f" | {total} |")
    return lines


def per_round_lines(results: list[LatencyResult]) -> list[str]:
    """One line per swap under load, for the printed summary."""
    lines = []
    for r in results:
        w, s = r.windows, r.swap
        lines.append(
            f"  {s.model:8} v{s.version}: p99 steady {w['steady'].p99:6.1f} ms (n={w['steady'].n}), "
            f"loading {w['loading'].p99:6.1f} ms (n={w['loading'].n}, {(s.loaded - s.aspired) * 1000:.0f} ms), "
            f"unloading {w['unloading'].p99:6.1f} ms ({(s.unloaded_old - s.loaded) * 1000:.0f} ms), "
            f"swap {w['swap'].p99:6.1f} ms, ratio {r.ratio():.2f}, after {w['after'].p99:.1f} ms, "
            f"failed {r.failed}, steal {w['steady'].steal:.0%}/{w['swap'].steal:.0%}, "
            f"cores steady {w['steady'].cores}, swap {w['swap'].cores}"
        )
    return lines


def verdict(results: list[LatencyResult], pooled: dict[str, tuple[float, float]]) -> str:
    """Whether p99 stayed within 2× the steady p99 during the whole swap: by the median of the per-round
    ratios and by the pooled p99; "borderline" where the two disagree."""
    failed = sum(r.failed for r in results)
    parts, verdicts = [], set()
    for model, mine in by_model(results).items():
        ratio, pooled_ratio = median([r.ratio() for r in mine]), pooled[model][1] / pooled[model][0]
        verdicts.add((ratio <= 2) + (pooled_ratio <= 2))
        parts.append(
            f"{model} {ratio:.2f}× by the median round, {pooled_ratio:.2f}× pooled "
            f"(the load alone {median([r.ratio('loading') for r in mine]):.2f}×)"
        )
    outcome = "met" if verdicts == {2} else "borderline"
    if failed or 0 in verdicts:
        outcome = "NOT met"
    return (
        "Target (p99 within 2× steady while a new version loads, no failed request): "
        f"{outcome}: {'; '.join(parts)}; {failed} failed"
    )


def reading(latency: list[LatencyResult], profiles: list[Profile]) -> list[str]:
    """What the tables say about where the tail comes from, computed from this run's numbers."""
    lines = []
    for model, mine in by_model(latency).items():
        rates = {w: window_median(mine, w, "rate") for w in ("steady", "loading", "unloading")}
        unload = median([r.swap.unloaded_old - r.swap.loaded for r in mine]) * 1000
        lines.append(
            f"- {model}: the load alone moves p99 {median([r.ratio('loading') for r in mine]):.2f}× and keeps "
            f"{rates['loading'] / rates['steady']:.0%} of the steady answer rate; while the old version unloads "
            f"(median {unload:.0f} ms) the server answers {rates['unloading']:.0f}/s against {rates['steady']:.0f}/s "
            f"steady, and the requests caught in it set the swap's p99 ({window_median(mine, 'unloading', 'p99'):.0f} "
            "ms)."
        )
    for profile in profiles:
        unload_frames = profile.leaves.get("unloading thread", [])
        if unload_frames:
            frame, count = unload_frames[0]
            lines.append(
                f"- py-spy, {profile.swap.model} v{profile.swap.version}: the old version's unload was "
                f"{profile.span_share(profile.unload_ms):.0%} of the recorded span but "
                f"{profile.share('unloading thread'):.0%} of its GIL-holding samples ({count} samples ≈ "
                f"{count * 1000 / PY_SPY_RATE:.0f} ms at {PY_SPY_RATE}/s; the unload took {profile.unload_ms:.0f} ms), "
                f"{count / max(profile.gil.get('unloading thread', 1), 1):.0%} of those at "
                f"`{source_line(frame) or frame}` ({frame}); the load was {profile.span_share(profile.load_ms):.0%} "
                f"of the span and {profile.share('loading thread'):.0%} of the GIL samples."
            )
        if profile.cpu_loading:
            before, during = profile.cpu_steady, profile.cpu_loading
            lines.append(
                f"- CPU, {profile.swap.model} v{profile.swap.version}: while it loaded, the request and batch threads "
                f"went from {before.get('request threads', 0) + before.get('batch threads', 0):.2f} to "
                f"{during.get('request threads', 0) + during.get('batch threads', 0):.2f} cores, the loading "
                f"thread(s) used {during.get('loading thread', 0):.2f} and TensorFlow's pools "
                f"{during.get('TensorFlow threads', 0):.2f}; the workers together {sum(before.values()):.2f} → "
                f"{sum(during.values()):.2f} of the machine's {os.cpu_count()} cores."
            )
    return lines


@dataclass
class Run:
    """Everything one invocation measured."""

    command: str
    plan: Plan
    started: datetime
    seconds: float
    revision: str
    settings: str
    rss_loaded: dict[str, float]
    rss_after: dict[str, float]
    idle: list[Swap]
    memory: list[MemoryResult]
    latency: list[LatencyResult]
    pooled: dict[str, tuple[float, float]]
    profiles: list[Profile]


def section(run: Run) -> str:
    """The swap section of perf/RESULTS.md."""
    plan = run.plan
    rss = [
        "| main server's process | RSS with its models loaded | RSS after phases 2-4 |",
        "|---|---|---|",
        *(f"| {name} | {mib:.0f} MiB | {run.rss_after.get(name, 0):.0f} MiB |" for name, mib in run.rss_loaded.items()),
    ]
    parts = [
        f"{SECTION_TITLE} (`{run.command}`)",
        BEGIN,
        f"{run.started:%Y-%m-%d %H:%M}, {machine()}, Python {sys.version.split()[0]}, tfaas at {run.revision}; "
        f"the run took {run.seconds / 60:.1f} min. Servers: `tfaas serve --config FILE` on 127.0.0.1 with JSON "
        f"log lines and otherwise the defaults: {run.settings}. The lifecycle coordinator aspires a new "
        "version once; each worker loads it in its window, out of rotation, one at a time while the other "
        "takes the traffic; it serves (AVAILABLE) once every worker has it; a swap runs from the aspire to "
        "the last worker's unload of the old version. The main server serves "
        "`half_plus_two`, `dense42` and `big` (42 → 4096 ×7 → 1, six "
        "4096×4096 float32 matrices, 385 MiB on disk; `swap_policy: availability`); for memory, two more servers "
        "each serve `big` alone, one with `swap_policy: availability`, one with `swap_policy: resource`. A new "
        "version is a hard-linked copy of version 1 renamed into the watched folder. Other work shares this "
        'machine: the "others" CPU column is every process but the workers, the load generator and this script.',
        "",
        "### Time to serve a new version",
        "",
        *load_time_table(run.idle, run.memory, run.latency),
        "",
        '"Copy finished" is the rename into the watched folder; "settled" is the source aspiring the version. '
        "Both ends come from the server's log timestamps. A negative unload time: the resource policy unloads "
        "the old version before loading the new one.",
        "",
        "### Tail latency while a version loads",
        "",
        f"Load: `POST /v1/models/dense42:predict`, batch 1, {plan.connections} keep-alive connections with one "
        f"request in flight each, from a separate Python process (`swap.py loadgen`), {plan.latency_rounds} rounds; "
        "each round drops a new version of `big` (another model loads) and of `dense42` (the served model itself "
        "swaps), in alternating order. Windows per swap, from the server's log timestamps: *steady* = requests "
        f"sent and answered between {plan.quiet_seconds:.0f} s after the previous swap and the aspire of this "
        "version (about 3 s); *answered while loading* = answered between the aspire and AVAILABLE; *old version "
        "unloads* = in flight at any moment between AVAILABLE and the old version's unload; *whole swap* = in "
        "flight at any moment between the aspire and the old version's unload; *second after* = sent in the "
        'second after the swap. "Ratio" is a window\'s p99 / the steady p99 of the same round; "pooled" is the '
        "p99 over all rounds' windows together (dense42's windows are short, so its per-round p99 is close to "
        "the window's maximum). The target is judged on the whole swap: the old version's unload is part of "
        "loading a new one.",
        "",
        *latency_table(run.latency, run.pooled),
        "",
        f"**{verdict(run.latency, run.pooled)}.**",
        "",
        "Conditions, medians over the rounds (CPU in cores of the 2; windows under 1 s are widened to 1 s "
        "for CPU and steal, /proc/stat counts in 10 ms ticks):",
        "",
        *conditions_table(run.latency),
        "",
    ]
    if run.profiles:
        parts += [
            "Where the workers' GIL went during one more swap of each, under the same load, with "
            f"`py-spy record --gil --threads --nonblocking --rate {PY_SPY_RATE}` attached (those swaps are not in "
            "the tables above): samples in which each kind of thread held the GIL, over the span py-spy recorded "
            "(from about 1.5 s before the aspire to 0.5 s after the swap). Counts, not times: py-spy catches up "
            "in bursts after it was itself kept off the CPU.",
            "",
            *profile_table(run.profiles),
            "",
            "CPU of the workers' threads in those swaps, in cores: the second before the aspire → from the aspire "
            "to AVAILABLE (per-thread /proc counters every 50 ms; a thread's kind is the one py-spy saw it in, "
            '`tf_*` threads are TensorFlow\'s own pools, "other" never held the GIL in a sample):',
            "",
            *thread_cpu_table(run.profiles),
            "",
        ]
    parts += ["Reading (generated from this run's numbers):", "", *reading(run.latency, run.profiles), ""]
    parts += [
        "### Memory: availability-preserving versus resource-preserving swap",
        "",
        f"One server per policy, each serving `big` alone; {plan.memory_rounds} swaps on each, alternating "
        f"between the servers, with no other load than one prober connection per server (a batch-1 predict every "
        f"{PROBE_INTERVAL * 1000:.0f} ms, counted when in flight from 0.5 s before the aspire to 1 s after the "
        "swap). The workers' RSS is sampled every 20 ms: before = median of the second before the aspire, peak "
        "= maximum until 0.5 s after the swap, after = median of the next 0.5 s; Δ is against the RSS before the "
        "first swap. The model's variables are 385 MiB.",
        "",
        *memory_table(run.memory),
        "",
        *rss,
        "",
        END,
    ]
    return "\n".join(parts)


def write_results(text: str, path: Path = RESULTS, title: str = SECTION_TITLE, end_marker: str = END) -> None:
    """Replace the section of RESULTS.md that starts with ``title`` (to its ``end_marker``, or to the next
    ``## `` heading or bench marker), leaving everything else as it is; append it if there is none."""
    old = path.read_text() if path.exists() else "# Performance results\n"
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(title)), None)
    if start is None:
        path.write_text(old.rstrip("\n") + "\n\n" + text + "\n")
        return
    end = next((i for i, line in enumerate(lines) if line.strip() == end_marker and i > start), None)
    if end is not None:
        end += 1
    else:
        stops = (i for i, line in enumerate(lines) if i > start and (line.startswith("## ") or "bench:begin" in line))
        end = next(stops, len(lines))
    rest = lines[end:]
    new = [*lines[:start], *text.splitlines(), *([""] if rest and rest[0].strip() else []), *rest]
    path.write_text("\n".join(new).rstrip("\n") + "\n")


# --------------------------------------------------------------------------------------------------
# Main.


def server_rss(server: Server) -> dict[str, float]:
    rss = {"gunicorn master": rss_mib(server.process.pid)}
    return rss | {f"worker {index}": rss_mib(pid) for index, pid in enumerate(server.workers, 1)}


def measure(work: Path, plan: Plan, command: str) -> Run:
    """Build the models, then run the memory phase (two servers) and the other phases (one server)."""
    started, clock, at_start = datetime.now(), time.monotonic(), revision()
    build_models(work / "src")
    sampler = Sampler()
    sampler.start()
    try:
        print("phase 1: memory, availability vs resource swaps of the big model (one server each)", flush=True)
        with running_servers(work, {"availability": (BIG,), "resource": (BIG_RESOURCE,)}) as servers:
            memory = memory_phase(servers, sampler, plan)
        with running_servers(work, {"main": MAIN_MODELS}) as servers:
            server = servers["main"]
            settings = effective_settings(server.root / "tfaas.yaml")
            sampler.workers = server.workers
            time.sleep(1.0)
            rss_loaded = server_rss(server)
            print("phase 2: idle swaps of the examples", flush=True)
            idle = idle_phase(server, plan)
            print(f"phase 3: tail latency under concurrency-{plan.connections} dense42 load", flush=True)
            latency, requests = latency_phase(server, sampler, plan)
            print("phase 4: one more swap of each under load, with py-spy attached", flush=True)
            profiles = profile_phase(server, plan)
            rss_after = server_rss(server)
    finally:
        sampler.stop()
    pooled = pooled_p99(latency, requests, plan)
    seconds = time.monotonic() - clock
    return Run(
        command,
        plan,
        started,
        seconds,
        at_start if revision() == at_start else f"{at_start} (HEAD moved to {revision()} during the run)",
        settings,
        rss_loaded,
        rss_after,
        idle,
        memory,
        latency,
        pooled,
        profiles,
    )


def effective_settings(config: Path) -> str:
    """The server settings a ``--config`` file gives at this checkout (defaults included), in words."""
    try:
        from tfaas.config import load_settings
        from tfaas.server.worker_count import choose_workers

        settings = load_settings(argparse.Namespace(config_file=str(config)), environ={})
    except Exception as error:  # NOTE: the report says so rather than failing after the run
        return f"settings unknown ({error})"
    return (
        f"{choose_workers(settings).count} gunicorn worker(s) (`workers: {settings.workers}`), "
        f"{settings.threads} threads each, "
        f"{settings.num_load_threads} load threads, `enable_batching: {settings.enable_batching}`, "
        f"`version_settle_seconds` {settings.version_settle_seconds:g} s, "
        f"`file_system_poll_wait_seconds` {settings.file_system_poll_wait_seconds:g} s"
    )


def revision() -> str:
    """The checkout's commit, and whether tfaas/ has uncommitted changes (what was measured)."""
    root = HERE.parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "tfaas"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown commit"
    changes = " with uncommitted changes in tfaas/" if dirty.stdout.strip() else ""
    return f"commit {commit.stdout.strip() or 'unknown'}{changes}"


def main(argv: Sequence[str] | None = None) -> None:
    """``python perf/swap.py [--quick] [--write] [--keep]``; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    internal: dict[str, Callable[[Sequence[str]], None]] = {
        "loadgen": loadgen_main,
        "build-big": lambda rest: save_big_model(rest[0]),
    }
    if argv and argv[0] in internal:
        internal[argv[0]](argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of each phase (a dev run, ~2 min)")
    parser.add_argument("--write", action="store_true", help="update perf/RESULTS.md even with --quick")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (server log, requests)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # NOTE: so the finally blocks stop our children
    plan = QUICK if args.quick else Plan()
    command = "python perf/swap.py" + (" --quick" if args.quick else "")
    work = Path(tempfile.mkdtemp(prefix="tfaas-swap-"))
    try:
        run = measure(work, plan, command)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = section(run)
    print("\n".join(per_round_lines(run.latency)))
    print("\n" + text)
    if not args.quick or args.write:
        write_results(text)
        print(f"\nwrote the swap section of {RESULTS}")


if __name__ == "__main__":
    main()
