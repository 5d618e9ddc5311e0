"""Memory of a server's processes, and what one model version costs per worker (issue 11).

Run: ``python perf/memory.py`` (about 2-3 minutes; prints a markdown section) or ``python perf/memory.py
--write`` (also puts it into perf/RESULTS.md, between its markers). ``--keep`` keeps the work folder.

Three model sets, each served with 1 and with 2 workers (six servers, one after another):

- *no model*: an empty model repository; a worker with TensorFlow imported and its app built;
- *examples*: ``half_plus_two`` (version 2 served) and ``dense42`` (``python -m tfaas.examples``);
- *examples + big*: those and ``big``, the 385 MiB dense network of perf/swap.py.

Each server is ``python -m tfaas serve --config FILE`` from this checkout, on 127.0.0.1 (a free port in
8800-8899), with ``workers`` set and otherwise the defaults. Memory is read once the server is ready:
``/readyz`` answers 200; every worker that loads models has logged each model's ``Loaded servable``
(``/readyz`` is one worker's opinion); and no process's VmRSS moved by more than 2 MiB over 3 s. The
processes: the gunicorn master (the process started), its workers (gunicorn's "Booting worker with pid: N"
lines) and every other descendant ("other children"). Per process, from /proc: VmRSS, its anonymous and
file-backed parts (``RssAnon``, ``RssFile``: shared libraries are file pages that every worker maps, counted
in full in each one's VmRSS), PSS (shared pages divided among the processes mapping them: the sum over
processes is what the server really takes) and private memory (USS: what ending the process would free).

Every server is stopped by its PID (SIGTERM, then SIGKILL), and any descendant still alive after it by its
PID too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Sequence

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # NOTE: measure this checkout's tfaas, as the servers started here run it

import swap  # noqa: E402 - perf/swap.py, beside this file
from swap import BIG, DENSE42, HALF_PLUS_TWO, ModelSpec  # noqa: E402

from tfaas.config import load_settings  # noqa: E402
from tfaas.server.worker_count import (  # noqa: E402
    RSS_PER_DISK_BYTE,
    SHARED_LIBRARY_BYTES,
    VERSION_OVERHEAD_BYTES,
    WORKER_BASELINE_BYTES,
    choose_workers,
    directory_bytes,
    version_bytes,
)
from tfaas.sources.file_system import version_paths  # noqa: E402

SECTION_TITLE = "## Memory per worker and per model version"
BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"
MIB = 2**20
READY_TIMEOUT = 300.0
STABLE_SECONDS = 3.0
STABLE_MIB = 2.0
STABLE_TIMEOUT = 60.0
SAMPLE_SECONDS = 0.5
BOOTING = re.compile(r"^Booting worker with pid: (\d+)")

MODEL_SETS: dict[str, tuple[ModelSpec, ...]] = {
    "no model": (),
    "examples": (HALF_PLUS_TWO, DENSE42),
    "examples + big": (HALF_PLUS_TWO, DENSE42, BIG),
}
WORKER_COUNTS = (1, 2)
BASELINE_ESTIMATE = f"{WORKER_BASELINE_BYTES / MIB:.0f} + {SHARED_LIBRARY_BYTES / MIB:.0f} shared once"


# --------------------------------------------------------------------------------------------------
# /proc


@dataclass(frozen=True)
class Memory:
    """One process's memory, in MiB."""

    rss: float
    anon: float
    file: float
    pss: float
    private: float


def read_memory(pid: int) -> Memory | None:
    """VmRSS, RssAnon and RssFile (/proc/PID/status), Pss and Private_* (smaps_rollup); ``None`` if gone."""
    try:
        status = _kib_fields(Path(f"/proc/{pid}/status").read_text())
        rollup = _kib_fields(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except OSError:
        return None
    private = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
    return Memory(
        status["VmRSS"] / 1024,
        status.get("RssAnon", 0) / 1024,
        status.get("RssFile", 0) / 1024,
        rollup.get("Pss", 0) / 1024,
        private / 1024,
    )


def _kib_fields(text: str) -> dict[str, int]:
    """``Name:   123 kB`` lines as {name: KiB}."""
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (by the parent ids in /proc/PID/stat), parents first."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        children = sorted(pid for pid, parent in parents.items() if parent in frontier)
        found += children
        frontier = children
    return found


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------------------
# One server


@dataclass
class Reading:
    """A ready server's processes and their memory."""

    models: str
    workers_configured: int
    master: Memory
    workers: dict[int, Memory]
    others: dict[int, tuple[str, Memory]]
    ready_seconds: float
    stable: bool
    chosen: str = ""

    def worker_mean(self, what: str = "rss") -> float:
        return mean(getattr(m, what) for m in self.workers.values())

    def total(self, what: str) -> float:
        processes = [self.master, *self.workers.values(), *(m for _, m in self.others.values())]
        return sum(getattr(m, what) for m in processes)


@dataclass
class Server:
    """A ``tfaas serve`` started here."""

    process: subprocess.Popen
    port: int
    log: swap.ServerLog
    seen: set[int] = field(default_factory=set)


def write_config(work: Path, src: Path, models: Sequence[ModelSpec], workers: int, port: int) -> Path:
    """perf/swap.py's config (127.0.0.1, JSON log lines, ``models`` from ``src``) with ``workers`` and an
    empty model repository, so that the server with no model serves none (not the examples)."""
    config = work / "tfaas.yaml"
    swap.write_config(config, src, port, models)
    (work / "repository").mkdir(exist_ok=True)
    with open(config, "a") as file:
        file.write(f"workers: {workers}\nmodel_repository: {work / 'repository'}\n")
    return config


def start(work: Path, config: Path, port: int) -> Server:
    with open(work / "server.log", "wb") as log:
        command = [sys.executable, "-m", "tfaas", "serve", "--config", str(config)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Server(process, port, swap.ServerLog(work / "server.log", process))


def stop(server: Server) -> None:
    """Stop the master by its PID; then any of its descendants seen here that outlived it, by PID."""
    swap.stop_process(server.process)
    deadline = time.monotonic() + 10
    while (left := [pid for pid in server.seen if _is_descendant_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        print(f"process {pid} outlived its server; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_descendant_alive(pid: int) -> bool:
    """Still running (not a zombie); NOTE: only PIDs recorded as this server's descendants are asked."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def readyz(port: int) -> int:
    """The status of ``GET /readyz`` on a fresh connection (0: no answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def wait_ready(server: Server, models: Sequence[ModelSpec], workers: int) -> tuple[list[int], bool]:
    """Wait until the server is ready (see the module docstring); return its workers and whether the
    memory settled within ``STABLE_TIMEOUT``."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        server.log.refresh()
        booted = [int(m.group(1)) for _, _, message in server.log.events if (m := BOOTING.match(message))]
        if readyz(server.port) == 200 and len(booted) >= workers and _loaded_everywhere(server, booted, models):
            break
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited (see {server.log.path})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {READY_TIMEOUT:.0f} s (see {server.log.path})")
        time.sleep(0.2)
    return booted, settle(server)


def _loaded_everywhere(server: Server, workers: list[int], models: Sequence[ModelSpec]) -> bool:
    """Every worker that logged a model load has logged one of each model (True where workers load none)."""
    loads = [(pid, message) for _, pid, message in server.log.events if message.startswith("Loaded servable")]
    loading = {pid for pid, _ in loads if pid in workers}
    return all(
        any(f"name: {m.name} " in message for p, message in loads if p == pid) for pid in loading for m in models
    )


def settle(server: Server) -> bool:
    """Sample every process's VmRSS until none moved more than ``STABLE_MIB`` over ``STABLE_SECONDS``."""
    history: list[dict[int, float]] = []
    window = round(STABLE_SECONDS / SAMPLE_SECONDS) + 1
    deadline = time.monotonic() + STABLE_TIMEOUT
    while time.monotonic() < deadline:
        pids = [server.process.pid, *descendants(server.process.pid)]
        server.seen.update(pids[1:])
        history.append({pid: m.rss for pid in pids if (m := read_memory(pid)) is not None})
        recent = history[-window:]
        if len(recent) == window and all(
            max(s.get(pid, 0) for s in recent) - min(s.get(pid, 0) for s in recent) <= STABLE_MIB for pid in recent[-1]
        ):
            return True
        time.sleep(SAMPLE_SECONDS)
    return False


def measure_one(work: Path, src: Path, name: str, workers: int) -> Reading:
    """Serve the model set ``name`` with ``workers`` workers; read every process's memory once ready."""
    models = MODEL_SETS[name]
    work.mkdir(parents=True)
    port = swap.free_port()
    config = write_config(work, src, models, workers, port)
    started = time.monotonic()
    server = start(work, config, port)
    try:
        booted, stable = wait_ready(server, models, workers)
        ready_seconds = time.monotonic() - started
        master = read_memory(server.process.pid)
        others = {pid: (command_name(pid), read_memory(pid)) for pid in descendants(server.process.pid)}
        worker_memory = {pid: others.pop(pid, (None, None))[1] for pid in booted}
    finally:
        stop(server)
    if master is None or any(m is None for m in worker_memory.values()):
        raise RuntimeError(f"a process of the server ended before it was read (see {server.log.path})")
    reading = Reading(
        name,
        workers,
        master,
        {pid: m for pid, m in worker_memory.items() if m is not None},
        {pid: (comm, m) for pid, (comm, m) in others.items() if m is not None},
        ready_seconds,
        stable,
    )
    if workers == 1:
        settings = load_settings(argparse.Namespace(config_file=str(config)), environ={})
        reading.chosen = choose_workers(dataclasses.replace(settings, workers=0)).message
    return reading


# --------------------------------------------------------------------------------------------------
# The report


def served_version_dirs(src: Path, model: ModelSpec) -> list[str]:
    """The version directory ``model`` serves (the highest: the default policy), as a one-item list."""
    versions = version_paths(str(src / model.source))
    return [versions[max(versions)]]


def process_table(readings: list[Reading]) -> list[str]:
    rows = [
        "| models | workers | process | VmRSS | RssAnon | RssFile | PSS | private (USS) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in readings:
        processes = [("master", r.master), *((f"worker {i}", m) for i, m in enumerate(r.workers.values(), 1))]
        processes += [(f"other child ({comm})", m) for comm, m in r.others.values()]
        for label, m in processes:
            cells = " | ".join(f"{v:.0f}" for v in (m.rss, m.anon, m.file, m.pss, m.private))
            rows.append(f"| {r.models} | {r.workers_configured} | {label} | {cells} |")
        totals = " | ".join(f"**{r.total(w):.0f}**" for w in ("rss", "anon", "file", "pss", "private"))
        rows.append(f"| {r.models} | {r.workers_configured} | **all** | {totals} |")
    return rows


def per_version_table(readings: list[Reading], src: Path) -> list[str]:
    """What each model set adds to a worker, against the model set before it, and the estimate for it."""
    by = {(r.models, r.workers_configured): r for r in readings}
    names = list(MODEL_SETS)
    rows = [
        "| what a worker holds | on disk | VmRSS per worker, 1 worker / 2 workers | of it anonymous (1 / 2) "
        "| estimate (worker_count.py) |",
        "|---|---|---|---|---|",
    ]
    for before, after in zip([None, *names], names):
        added = [m for m in MODEL_SETS[after] if before is None or m not in MODEL_SETS[before]]
        dirs = [served_version_dirs(src, m) for m in added]
        label = "TensorFlow and the app, no model" if before is None else ", ".join(m.name for m in added)
        disk = f"{sum(directory_bytes(d[0]) for d in dirs) / MIB:.1f} MiB" if added else "-"
        estimate = f"{sum(version_bytes(d) for d in dirs) / MIB:.0f}" if added else BASELINE_ESTIMATE

        def growth(what: str, n: int, after: str = after, before: str | None = before) -> str:
            value = by[(after, n)].worker_mean(what) - (by[(before, n)].worker_mean(what) if before else 0)
            return f"{value:+.0f}" if before else f"{value:.0f}"

        cells = [" / ".join(growth(w, n) for n in WORKER_COUNTS) for w in ("rss", "anon")]
        rows.append(f"| {label} | {disk} | {' | '.join(cells)} | {estimate} |")
    return rows


def section(readings: list[Reading], src: Path, started: datetime, seconds: float, rev: str, command: str) -> str:
    by = {(r.models, r.workers_configured): r for r in readings}
    unstable = [f"{r.models} with {r.workers_configured}" for r in readings if not r.stable]
    chosen = [f'- {r.models}: "{r.chosen}"' for r in readings if r.chosen]
    big = by[("examples + big", 2)]
    parts = [
        f"{SECTION_TITLE} (`{command}`)",
        BEGIN,
        f"{started:%Y-%m-%d %H:%M}, {swap.machine()}, Python {sys.version.split()[0]}, tfaas at {rev}; the run "
        f"took {seconds / 60:.1f} min. Each server: `python -m tfaas serve --config FILE` on 127.0.0.1, `workers` "
        "as in the table, an empty model repository, otherwise the defaults; read once `/readyz` answered 200, "
        "every worker had logged each model's load and no process's VmRSS had moved more than "
        f"{STABLE_MIB:.0f} MiB for {STABLE_SECONDS:.0f} s. Models: *examples* = `half_plus_two` (version 2) and "
        "`dense42` (`python -m tfaas.examples`); *big* = perf/swap.py's dense network (six 4096×4096 float32 "
        "matrices). MiB; VmRSS counts the shared libraries' pages in every process that maps them (RssFile), "
        "PSS divides them among those processes (its sum is what the server takes), private (USS) is what "
        "ending the process would free. PSS and USS depend on what else on the machine maps the same "
        "libraries: with one worker and no other TensorFlow process running, a worker's library pages count "
        "as private (its USS is then ~550 MiB instead of ~190), so they vary between runs; VmRSS, RssAnon and "
        "RssFile do not.",
        "",
        *process_table(readings),
        "",
        "What one worker's memory grows by with each model set, against the one before it (means over the "
        "workers), beside the estimate `tfaas/server/worker_count.py` makes from the size on disk "
        f"(a {WORKER_BASELINE_BYTES / MIB:.0f} MiB baseline per worker, the anonymous part, and "
        f"{SHARED_LIBRARY_BYTES / MIB:.0f} MiB of shared libraries counted once, the file part; "
        f"{VERSION_OVERHEAD_BYTES / MIB:.0f} MiB + {RSS_PER_DISK_BYTE:g} × the version directory's size per "
        "loaded version; the worker count adds one more version per model for an availability-preserving "
        "swap, left out here):",
        "",
        *per_version_table(readings, src),
        "",
        f"With 2 workers, the examples and big, the server takes {big.total('rss'):.0f} MiB by VmRSS summed and "
        f"{big.total('pss'):.0f} MiB by PSS; each further worker adds about {big.worker_mean('anon'):.0f} MiB "
        "(its anonymous memory; the libraries' pages are shared): every worker holds its own copy of every model.",
        "",
        "The default worker count this checkout picks on this machine (`workers: 0`) for each model set:",
        "",
        *chosen,
        "",
        *([f"Memory did not settle within {STABLE_TIMEOUT:.0f} s for: {', '.join(unstable)}.", ""] if unstable else []),
        END,
    ]
    return "\n".join(parts)


def measure(work: Path) -> list[Reading]:
    """Build the models, then serve each model set with each worker count, one server at a time."""
    src = work / "src"
    swap.build_models(src)
    readings = []
    for name in MODEL_SETS:
        for workers in WORKER_COUNTS:
            slug = f"{name.replace(' ', '').replace('+', '-')}-{workers}"
            reading = measure_one(work / slug, src, name, workers)
            rss = ", ".join(f"{m.rss:.0f}" for m in reading.workers.values())
            print(
                f"{name}, {workers} worker(s): ready in {reading.ready_seconds:.1f} s; VmRSS of the workers {rss} "
                f"MiB, of the master {reading.master.rss:.0f} MiB",
                flush=True,
            )
            readings.append(reading)
    return readings


def main(argv: Sequence[str] | None = None) -> None:
    """``python perf/memory.py [--write] [--keep]``; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="put the section into perf/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (server logs)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # NOTE: so the finally blocks stop our servers
    started, clock, rev = datetime.now(), time.monotonic(), swap.revision()
    work = Path(tempfile.mkdtemp(prefix="tfaas-memory-"))
    try:
        readings = measure(work)
        text = section(readings, work / "src", started, time.monotonic() - clock, rev, "python perf/memory.py")
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + text)
    if args.write:
        swap.write_results(text, title=SECTION_TITLE, end_marker=END)
        print(f"\nwrote the memory section of {swap.RESULTS}")


if __name__ == "__main__":
    main()
