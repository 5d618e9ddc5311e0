"""How many gunicorn workers to start: by default no more than the CPU cores, nor than fit in memory.

Every worker loads every model on its own (TensorFlow is not fork-safe: a loaded model cannot be shared
between processes), so a server takes about ``workers × (baseline + the models' versions)`` and its
shared libraries once. One worker
per core is what throughput wants; with many cores and large models it multiplies the models past the
memory, and the kernel's OOM killer then ends workers as fast as gunicorn replaces them. So ``workers: 0``
starts the smaller of:

- the CPU cores this process may run on (``os.sched_getaffinity``; a cgroup CPU quota is not read);
- the workers whose estimated memory fits in what is available: ``MemAvailable`` (``/proc/meminfo``) or
  the cgroup's memory limit if lower (v2: ``memory.max`` of the process's cgroup and its ancestors; v1:
  ``memory/memory.limit_in_bytes``), less a margin of 10% (at least 256 MiB) for the master (~55 MiB),
  request bodies and the page cache.

A worker's estimate: ``WORKER_BASELINE_BYTES`` + for each model, for each version it may hold at once,
``VERSION_OVERHEAD_BYTES + RSS_PER_DISK_BYTE ×`` the size on disk of its largest version directory; the
shared libraries' pages (``SHARED_LIBRARY_BYTES``) are counted once, not per worker. A model holds the
versions its policy keeps (``latest: N``: N; ``all``: every version on disk; ``specific``: the listed ones
on disk), and, with the availability-preserving swap policy, one more while a new version loads beside the
old. Counting that extra version for every model is an upper bound (every model swapping at once, as when a
repository is copied in); a model with no version on disk counts nothing, as the estimate is made once, at
start. The constants come from ``perf/memory.py`` (perf/RESULTS.md, memory section), measured with
weight-heavy dense models: a model whose graph is large against its variables may take more per byte.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tfaas.config import ModelConfig, Settings
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.model_repository import ModelRepository
from tfaas.sources.file_system import version_paths

MIB = 2**20
SHARED_LIBRARY_BYTES = 350 * MIB
"""Resident pages of the shared libraries (TensorFlow's above all) a worker maps: in every worker's VmRSS,
but in memory once, as all workers map the same files (and the kernel may drop them: they are clean)."""
WORKER_BASELINE_BYTES = 200 * MIB
"""A worker's own memory with TensorFlow imported, its app built and no model loaded (anonymous pages)."""
VERSION_OVERHEAD_BYTES = 10 * MIB
"""What a loaded version takes beyond its files' size (its graph, traced functions, warm-up)."""
RSS_PER_DISK_BYTE = 1.03
"""What a loaded version takes per byte of its version directory (the variables, held in memory)."""
MARGIN_FRACTION = 0.10
MIN_MARGIN_BYTES = 256 * MIB
_CGROUP_V1_UNLIMITED = 2**62
"""cgroup v1 writes "no limit" as a page-aligned 2**63 - 1; anything this large is no limit."""


@dataclass(frozen=True)
class Host:
    """Where the machine's CPUs and memory are read (injectable, so tests use files of their own)."""

    meminfo: Path = Path("/proc/meminfo")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    own_cgroup: Path = Path("/proc/self/cgroup")
    cpus: int | None = None
    """CPU cores to assume; ``None``: those this process may run on."""

    def cores(self) -> int:
        """The CPU cores this process may run on."""
        if self.cpus is not None:
            return self.cpus
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def available_memory(self) -> tuple[int | None, str]:
        """Bytes of memory available to the server and where the figure comes from (``None``: unknown)."""
        candidates = [c for c in (self._mem_available(), self._cgroup_limit()) if c is not None]
        return min(candidates) if candidates else (None, "unknown")

    def _mem_available(self) -> tuple[int, str] | None:
        try:
            lines = self.meminfo.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024, "MemAvailable"  # NOTE: /proc/meminfo counts in KiB
        return None

    def _cgroup_limit(self) -> tuple[int, str] | None:
        """The lowest memory limit of the process's cgroup and its ancestors."""
        limits = []
        for path in (*self._v2_limit_files(), self.cgroup_root / "memory" / "memory.limit_in_bytes"):
            try:
                text = path.read_text().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) < _CGROUP_V1_UNLIMITED:  # NOTE: v2 writes "max" for no limit
                limits.append((int(text), f"cgroup limit {path}"))
        return min(limits) if limits else None

    def _v2_limit_files(self) -> list[Path]:
        """``memory.max`` of the process's cgroup (``0::/path`` in /proc/self/cgroup) and of its ancestors."""
        try:
            lines = self.own_cgroup.read_text().splitlines()
        except OSError:
            return []
        relative = next((line[3:] for line in lines if line.startswith("0::")), "/")
        directory = self.cgroup_root / relative.strip("/")
        return [d / "memory.max" for d in (directory, *directory.parents) if d.is_relative_to(self.cgroup_root)]


@dataclass(frozen=True)
class MemoryFit:
    """How many workers fit in memory, and the figures behind it."""

    workers: int | None
    """At least 1; ``None`` when the memory available is unknown."""
    worker_bytes: int
    models: int
    available_bytes: int | None
    available_from: str

    def describe(self) -> str:
        """The estimate in words, for the log line."""
        per_worker = (
            f"~{_mib(self.worker_bytes)} per worker ({_mib(WORKER_BASELINE_BYTES)} baseline + "
            f"{_mib(self.worker_bytes - WORKER_BASELINE_BYTES)} for {self.models} model(s))"
        )
        if self.available_bytes is None:
            return f"memory available unknown, {per_worker}"
        return (
            f"{self.workers} fit in {_mib(self.available_bytes)} ({self.available_from}) less a margin and "
            f"{_mib(SHARED_LIBRARY_BYTES)} of shared libraries, {per_worker}"
        )


class WorkerChoice(NamedTuple):
    """The workers to start, and the line that says why (at ``level``)."""

    count: int
    level: int
    message: str


def choose_workers(settings: Settings, host: Host = Host()) -> WorkerChoice:
    """``settings.workers`` if set (with a warning if the estimate says they do not fit), else
    :func:`default_workers`."""
    if not settings.workers:
        count, reason = default_workers(settings, host)
        return WorkerChoice(count, logging.INFO, f"{_workers(count)}: {reason}")
    fit = memory_fit(settings, host)
    configured = f"{_workers(settings.workers)}: as configured (`workers: {settings.workers}`)"
    if fit.workers is None or settings.workers <= fit.workers:
        return WorkerChoice(settings.workers, logging.INFO, f"{configured}; {fit.describe()}")
    return WorkerChoice(
        settings.workers,
        logging.WARNING,
        f"{configured}, more than fit in memory by the estimate: {fit.describe()}; each worker loads every "
        "model, so the kernel may end workers for lack of memory (fewer workers, or `workers: 0`, avoid it)",
    )


def default_workers(settings: Settings, host: Host = Host()) -> tuple[int, str]:
    """The default worker count (``workers: 0``) and a one-line reason: the CPU cores this process may
    run on, or fewer if fewer fit in memory; at least 1."""
    cores, fit = host.cores(), memory_fit(settings, host)
    if fit.workers is None or cores <= fit.workers:
        return max(1, cores), f"one per CPU core ({cores}); {fit.describe()}"
    return fit.workers, f"fewer than the {cores} CPU cores, as {fit.describe()}"


def memory_fit(settings: Settings, host: Host = Host()) -> MemoryFit:
    """How many workers serving ``settings``' models fit in the memory available (see the module)."""
    models = served_models(settings)
    worker_bytes = WORKER_BASELINE_BYTES + sum(model_bytes(m) for m in models)
    available, source = host.available_memory()
    if available is None:
        return MemoryFit(None, worker_bytes, len(models), None, source)
    usable = available - max(MIN_MARGIN_BYTES, round(available * MARGIN_FRACTION)) - SHARED_LIBRARY_BYTES
    return MemoryFit(max(1, usable // worker_bytes), worker_bytes, len(models), available, source)


def served_models(settings: Settings) -> tuple[ModelConfig, ...]:
    """The configured models and those in the model repository now."""
    if not settings.model_repository:
        return settings.models
    repository = ModelRepository(settings.model_repository, settings.max_upload_bytes)
    return (*settings.models, *repository.model_configs())


def model_bytes(model: ModelConfig) -> int:
    """Estimated memory one worker takes for ``model``'s versions at most (0 if it has none on disk yet)."""
    versions = version_paths(model.base_path)
    held = versions_held(model.version_policy, list(versions))
    if not held:
        return 0
    swapping = 1 if model.swap_policy == "availability" else 0
    return (held + swapping) * version_bytes(list(versions.values()))


def version_bytes(version_dirs: list[str]) -> int:
    """Estimated memory one loaded version takes, from the largest of ``version_dirs`` (0 if none)."""
    if not version_dirs:
        return 0
    return VERSION_OVERHEAD_BYTES + round(RSS_PER_DISK_BYTE * max(directory_bytes(d) for d in version_dirs))


def versions_held(policy: ServableVersionPolicy, on_disk: list[int]) -> int:
    """How many versions ``policy`` serves at once with the versions ``on_disk`` (``latest: N``: N, as
    more may arrive)."""
    if policy.kind == "latest":
        return max(1, policy.num_versions)
    return len(policy.select(on_disk))


def directory_bytes(path: str) -> int:
    """The size of the files under ``path`` (a link to a directory at the top is followed)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(directory, name)).st_size
            except OSError:
                continue  # NOTE: removed meanwhile; the estimate is made once and need not be exact
    return total


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / MIB:.0f} MiB"
