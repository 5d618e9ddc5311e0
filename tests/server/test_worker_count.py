"""Tests for tfaas.server.worker_count: the default worker count from the CPU cores, the memory available
(/proc/meminfo, cgroup limits: files of the test's own) and the models' version directories on disk."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from tfaas.config import ModelConfig, Settings
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.server.worker_count import (
    MARGIN_FRACTION,
    MIB,
    MIN_MARGIN_BYTES,
    RSS_PER_DISK_BYTE,
    SHARED_LIBRARY_BYTES,
    VERSION_OVERHEAD_BYTES,
    WORKER_BASELINE_BYTES,
    Host,
    choose_workers,
    default_workers,
    memory_fit,
    model_bytes,
)

GIB = 2**30
VARIABLES = 8 * MIB
"""Size of the variables file in each test model version (the graph file is 1 KiB)."""


def write_version(base: Path, version: int, variables: int = VARIABLES) -> Path:
    """A version directory with a 1 KiB graph file and a variables file of ``variables`` bytes."""
    directory = base / str(version)
    (directory / "variables").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"\0" * 1024)
    (directory / "variables" / "variables.data-00000-of-00001").write_bytes(b"\1" * variables)
    return directory


def one_version_bytes(variables: int = VARIABLES) -> int:
    """What the estimate charges for one loaded version of ``write_version``'s size."""
    return VERSION_OVERHEAD_BYTES + round(RSS_PER_DISK_BYTE * (variables + 1024))


def model(tmp_path: Path, name: str = "m", versions: tuple[int, ...] = (1,), **options) -> ModelConfig:
    for version in versions:
        write_version(tmp_path / name, version)
    return ModelConfig(name=name, base_path=str(tmp_path / name), **options)


def host(tmp_path: Path, mem_available: int | None, cpus: int = 4, cgroup: str = "0::/\n") -> Host:
    """A host whose /proc/meminfo says ``mem_available`` bytes (no file: ``None``) and whose process is in
    ``cgroup`` under an (empty) cgroup root of its own."""
    (tmp_path / "cgroup").mkdir(exist_ok=True)
    (tmp_path / "self_cgroup").write_text(cgroup)
    meminfo = tmp_path / "meminfo"
    if mem_available is not None:
        kib = math.ceil(mem_available / 1024)
        meminfo.write_text(f"MemTotal:       {2 * kib} kB\nMemFree:        {kib // 2} kB\nMemAvailable:   {kib} kB\n")
    return Host(meminfo=meminfo, cgroup_root=tmp_path / "cgroup", own_cgroup=tmp_path / "self_cgroup", cpus=cpus)


def memory_for(workers: float, per_worker: int) -> int:
    """Memory available in which ``workers`` workers of ``per_worker`` bytes fit after the margin and the
    shared libraries (a fractional count leaves slack against rounding)."""
    needed = round(workers * per_worker) + SHARED_LIBRARY_BYTES
    with_fraction = math.ceil(needed / (1 - MARGIN_FRACTION))
    return with_fraction if with_fraction * MARGIN_FRACTION >= MIN_MARGIN_BYTES else needed + MIN_MARGIN_BYTES


def per_worker(*models: int) -> int:
    """A worker's estimate with models holding these numbers of versions."""
    return WORKER_BASELINE_BYTES + sum(n * one_version_bytes() for n in models)


def test_one_worker_per_core_when_the_memory_allows(tmp_path):
    settings = Settings(models=(model(tmp_path),))

    count, reason = default_workers(settings, host(tmp_path, 64 * GIB, cpus=4))

    assert count == 4
    assert reason.startswith("one per CPU core (4); ")
    assert "(MemAvailable)" in reason


def test_fewer_workers_than_cores_when_the_models_do_not_fit(tmp_path):
    # NOTE: latest: 1 with the availability-preserving swap: two versions held at once during a swap.
    settings = Settings(models=(model(tmp_path),))

    count, reason = default_workers(settings, host(tmp_path, memory_for(3.5, per_worker(2)), cpus=32))

    assert count == 3
    assert reason.startswith("fewer than the 32 CPU cores, as 3 fit in ")


def test_at_least_one_worker_however_little_memory(tmp_path):
    settings = Settings(models=(model(tmp_path),))

    assert default_workers(settings, host(tmp_path, 100 * MIB, cpus=8))[0] == 1


def test_memory_unknown_gives_one_worker_per_core(tmp_path):
    settings = Settings(models=(model(tmp_path),))

    count, reason = default_workers(settings, host(tmp_path, None, cpus=3))

    assert count == 3
    assert "memory available unknown" in reason


def test_a_cgroup_v2_limit_below_mem_available_wins(tmp_path):
    settings = Settings(models=(model(tmp_path),))
    machine = host(tmp_path, 64 * GIB, cpus=32, cgroup="0::/system.slice/tfaas.service\n")
    service = tmp_path / "cgroup" / "system.slice" / "tfaas.service"
    service.mkdir(parents=True)
    (service / "memory.max").write_text(f"{memory_for(2.5, per_worker(2))}\n")
    (service.parent / "memory.max").write_text("max\n")  # NOTE: no limit on the slice

    count, reason = default_workers(settings, machine)

    assert count == 2
    assert f"cgroup limit {service / 'memory.max'}" in reason


def test_a_limit_on_an_ancestor_cgroup_counts(tmp_path):
    settings = Settings(models=(model(tmp_path),))
    machine = host(tmp_path, 64 * GIB, cpus=32, cgroup="0::/kubepods/pod1/container\n")
    (tmp_path / "cgroup" / "kubepods" / "pod1" / "container").mkdir(parents=True)
    (tmp_path / "cgroup" / "kubepods" / "pod1" / "memory.max").write_text(f"{memory_for(4.5, per_worker(2))}\n")

    assert default_workers(settings, machine)[0] == 4


def test_a_cgroup_v1_limit_counts_and_its_no_limit_value_does_not(tmp_path):
    settings = Settings(models=(model(tmp_path),))
    machine = host(tmp_path, 64 * GIB, cpus=32)
    limit = tmp_path / "cgroup" / "memory" / "memory.limit_in_bytes"
    limit.parent.mkdir()
    limit.write_text("9223372036854771712\n")
    assert default_workers(settings, machine)[0] == 32

    limit.write_text(f"{memory_for(5.5, per_worker(2))}\n")
    assert default_workers(settings, machine)[0] == 5


def test_the_largest_version_on_disk_is_charged_per_version_held(tmp_path):
    write_version(tmp_path / "m", 1, variables=1 * MIB)
    write_version(tmp_path / "m", 2, variables=VARIABLES)
    latest_two = ModelConfig(name="m", base_path=str(tmp_path / "m"), version_policy=ServableVersionPolicy("latest", 2))

    assert model_bytes(latest_two) == 3 * one_version_bytes()  # NOTE: 2 kept + 1 loading beside them


@pytest.mark.parametrize(
    ("policy", "swap_policy", "versions_charged"),
    [
        (ServableVersionPolicy("latest", 1), "availability", 2),
        (ServableVersionPolicy("latest", 1), "resource", 1),
        (ServableVersionPolicy("latest", 3), "resource", 3),  # NOTE: versions that arrive later are counted
        (ServableVersionPolicy("all"), "resource", 2),
        (ServableVersionPolicy("specific", versions=(2, 7)), "availability", 2),  # NOTE: 7 is not on disk
        (ServableVersionPolicy("specific", versions=(7,)), "availability", 0),
    ],
)
def test_versions_charged_follow_the_version_and_swap_policies(tmp_path, policy, swap_policy, versions_charged):
    config = model(tmp_path, versions=(1, 2), version_policy=policy, swap_policy=swap_policy)

    assert model_bytes(config) == versions_charged * one_version_bytes()


def test_a_model_with_no_version_yet_is_charged_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    missing = ModelConfig(name="missing", base_path=str(tmp_path / "missing"))

    assert model_bytes(ModelConfig(name="empty", base_path=str(tmp_path / "empty"))) == 0
    assert model_bytes(missing) == 0


def test_the_model_repositorys_models_count_beside_the_configured_ones(tmp_path):
    repository = tmp_path / "repository"
    write_version(repository / "uploaded", 1)
    settings = Settings(models=(model(tmp_path),), model_repository=str(repository))

    fit = memory_fit(settings, host(tmp_path, 64 * GIB))

    assert fit.models == 2
    assert fit.worker_bytes == per_worker(2, 2)


def test_configured_workers_are_used_as_given_and_logged_at_info_when_they_fit(tmp_path):
    settings = Settings(models=(model(tmp_path),), workers=2)

    choice = choose_workers(settings, host(tmp_path, memory_for(3.5, per_worker(2)), cpus=1))

    assert (choice.count, choice.level) == (2, logging.INFO)
    assert choice.message.startswith("2 workers: as configured (`workers: 2`); 3 fit in ")


def test_configured_workers_that_do_not_fit_are_used_with_a_warning(tmp_path):
    settings = Settings(models=(model(tmp_path),), workers=8)

    choice = choose_workers(settings, host(tmp_path, memory_for(3.5, per_worker(2)), cpus=16))

    assert (choice.count, choice.level) == (8, logging.WARNING)
    assert "more than fit in memory by the estimate: 3 fit in " in choice.message


def test_the_default_choice_is_logged_at_info_with_its_count_first(tmp_path):
    choice = choose_workers(Settings(models=(model(tmp_path),)), host(tmp_path, 64 * GIB, cpus=2))

    assert (choice.count, choice.level) == (2, logging.INFO)
    assert choice.message.startswith("2 workers: one per CPU core (2); ")


def test_the_real_host_gives_at_least_one_worker():
    count, reason = default_workers(Settings())

    assert count >= 1 and reason


def test_one_worker_is_one_worker_in_the_log_line(tmp_path):
    choice = choose_workers(Settings(workers=1), host(tmp_path, 64 * GIB))

    assert choice.message.startswith("1 worker: as configured (`workers: 1`); ")
