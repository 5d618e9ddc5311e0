"""Swap cost and memory: how long a new version takes to serve, and the server's RSS.

Starts ``tfaas serve`` on the example models (built if absent), then copies new versions of
``half_plus_two`` and ``dense42`` into the watched folders, ``--rounds`` times each, and reports:

- copy finished → version AVAILABLE (what a user waits for; includes the settle time),
- settled (the source aspired it) → AVAILABLE (the load itself), read from the server log,
- the RSS of the gunicorn master and its worker after the examples load, and after the swaps.

Run: ``python perf/swap.py [--rounds 5]``. Talks to 127.0.0.1 only and stops the server it started.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

MODELS = ("half_plus_two", "dense42")
LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def rss_mib(pid: int) -> float:
    """Resident set size of one process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_pids(master: int) -> list[int]:
    """The gunicorn master and its children."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def wait_until(predicate, timeout: float) -> float:
    """Poll ``predicate`` every 10 ms; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError("condition not met")


def state(url: str, model: str, version: int) -> str | None:
    response = requests.get(f"{url}/v1/models/{model}/versions/{version}", timeout=5)
    return response.json()["model_version_status"][0]["state"] if response.ok else None


def log_times(log: str, model: str, version: int) -> tuple[datetime, datetime]:
    """(aspired, loaded) timestamps of one version, from the server log."""
    aspired = re.search(rf"{LOG_TIME} .*Servable {model}: aspiring versions \[{version}\]", log)
    loaded = re.search(rf"{LOG_TIME} .*Loaded servable {{name: {model} version: {version}}}", log)
    parse = lambda m: datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
    return parse(aspired), parse(loaded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=18501)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tfaas-swap-"))
    subprocess.run([sys.executable, "-m", "tfaas", "examples", str(work / "src")], check=True)
    for model in MODELS:
        shutil.copytree(work / "src" / model / "1", work / "models" / model / "1")
    url = f"http://127.0.0.1:{args.port}"
    env = {
        **os.environ,
        "TFAAS_EXAMPLES_DIR": str(work / "models"),
        "TFAAS_HOST": "127.0.0.1",
        "TFAAS_REST_API_PORT": str(args.port),
    }
    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "tfaas", "serve"], env=env, stdout=log, stderr=log)
    try:
        for model in MODELS:
            wait_until(lambda m=model: _available(url, m, 1), 120)
        rss_loaded = {pid: rss_mib(pid) for pid in server_pids(server.pid)}
        waits: dict[str, list[float]] = {m: [] for m in MODELS}
        for version in range(2, args.rounds + 2):
            for model in MODELS:
                shutil.copytree(work / "src" / model / "1", work / "models" / model / str(version))
                copied = time.monotonic()
                waits[model].append(wait_until(lambda m=model, v=version: state(url, m, v) == "AVAILABLE", 30) - copied)
        rss_after = {pid: rss_mib(pid) for pid in server_pids(server.pid)}
        log = log_path.read_text(errors="replace")
        loads = {
            m: [(lambda t: (t[1] - t[0]).total_seconds())(log_times(log, m, v)) for v in range(2, args.rounds + 2)]
            for m in MODELS
        }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    report(args.rounds, waits, loads, rss_loaded, rss_after)
    shutil.rmtree(work)


def _available(url: str, model: str, version: int) -> bool:
    try:
        return state(url, model, version) == "AVAILABLE"
    except requests.ConnectionError:
        return False


def report(rounds, waits, loads, rss_loaded, rss_after) -> None:
    """Print a Markdown table for perf/RESULTS.md."""
    print(f"\n{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, {rounds} swaps per model\n")
    print("| model | copy finished → AVAILABLE, median (max) | settled → AVAILABLE, median (max) |")
    print("|---|---|---|")
    for model in waits:
        w, lo = waits[model], loads[model]
        print(
            f"| {model} | {statistics.median(w):.2f} s ({max(w):.2f} s) "
            f"| {statistics.median(lo) * 1000:.0f} ms ({max(lo) * 1000:.0f} ms) |"
        )
    print("\n| process | RSS after the examples loaded | RSS after the swaps |")
    print("|---|---|---|")
    for i, pid in enumerate(rss_loaded):
        print(f"| {'master' if i == 0 else 'worker'} | {rss_loaded[pid]:.0f} MiB | {rss_after.get(pid, 0):.0f} MiB |")


if __name__ == "__main__":
    main()
