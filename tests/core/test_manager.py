"""The manager with fake loaders: swaps, policies, retries, handles and concurrency."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

import pytest

from tests.core.fakes import FakeLoader
from tfaas.core.manager import AspiredVersionsManager, RetryPolicy
from tfaas.core.servable_id import ServableId
from tfaas.core.state_monitor import ServableStateMonitor
from tfaas.core.states import EventBus, ManagerState, ServableState
from tfaas.errors import NotFound, Unavailable

AVAILABLE, END = ManagerState.AVAILABLE, ManagerState.END


class Rig:
    """A started manager with a monitor, a recorded event list and a shared action log."""

    def __init__(self, **kwargs) -> None:
        self.bus = EventBus()
        self.events: list[ServableState] = []
        self.bus.subscribe(self.events.append)
        self.monitor = ServableStateMonitor(self.bus)
        kwargs.setdefault("retry", RetryPolicy(initial=0.05, maximum=0.2))
        self.manager = AspiredVersionsManager(self.bus, manage_interval=0.02, **kwargs)
        self.log: list[str] = []
        self.loaders: dict[tuple[str, int], FakeLoader] = {}
        self.manager.start()

    def loader(self, name: str, version: int, **kwargs) -> FakeLoader:
        key = (name, version)
        if key not in self.loaders:
            self.loaders[key] = FakeLoader(ServableId(name, version), log=self.log, **kwargs)
        return self.loaders[key]

    def aspire(self, name: str, *versions: int, **kwargs) -> None:
        self.manager.set_aspired_versions(
            name, [(ServableId(name, v), self.loader(name, v, **kwargs)) for v in versions]
        )

    def state(self, name: str, version: int) -> ManagerState | None:
        event = self.monitor.state(ServableId(name, version))
        return event.state if event else None

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        assert self.monitor.wait_until(predicate, timeout), "condition not reached in time"

    def wait_state(self, name: str, version: int, state: ManagerState) -> None:
        self.wait(lambda: self.state(name, version) is state)


@pytest.fixture
def rig():
    rig = Rig()
    yield rig
    rig.manager.stop()


def served_version(manager: AspiredVersionsManager, name: str) -> int:
    with manager.get_handle(name) as handle:
        return handle.id.version


def test_load_then_serve(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    assert served_version(rig.manager, "m") == 1
    states = [e.state for e in rig.events]
    assert states == [ManagerState.START, ManagerState.LOADING, AVAILABLE]


def test_availability_swap_loads_new_before_unloading_old(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    rig.aspire("m", 2)
    rig.wait_state("m", 1, END)
    assert rig.log == ["load 1", "load 2", "unload 1"]
    assert served_version(rig.manager, "m") == 2
    assert rig.manager.available_versions("m") == [2]


def test_resource_swap_unloads_old_first():
    rig = Rig()
    try:
        rig.manager.set_swap_policy("m", "resource")
        rig.aspire("m", 1)
        rig.wait_state("m", 1, AVAILABLE)
        rig.aspire("m", 2)
        rig.wait_state("m", 2, AVAILABLE)
        assert rig.log == ["load 1", "unload 1", "load 2"]
    finally:
        rig.manager.stop()


def test_requests_never_fail_during_an_availability_swap(rig):
    rig.aspire("m", 1, delay=0.05)
    rig.wait_state("m", 1, AVAILABLE)
    failures: list[Exception] = []
    seen: set[int] = set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                with rig.manager.get_handle("m") as handle:
                    seen.add(handle.id.version)
                    assert handle.servable.id == handle.id
            except Exception as exc:  # noqa: BLE001 - any failure is what we look for
                failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for version in (2, 3, 4):
        rig.aspire("m", version, delay=0.05)
        rig.wait_state("m", version - 1, END)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert {1, 4} <= seen
    assert served_version(rig.manager, "m") == 4


def test_unload_waits_for_the_last_handle(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    handle = rig.manager.get_handle("m")
    rig.aspire("m", 2)
    rig.wait_state("m", 1, ManagerState.UNLOADING)
    time.sleep(0.2)
    assert rig.loaders[("m", 1)].unloads == 0, "unloaded while a request held it"
    assert served_version(rig.manager, "m") == 2, "new requests go to the new version"
    handle.release()
    rig.wait_state("m", 1, END)
    assert rig.loaders[("m", 1)].unloads == 1


def test_failed_load_keeps_old_version_and_is_retried(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    rig.aspire("m", 2, always_fail=True)
    rig.wait(lambda: rig.loaders[("m", 2)].loads >= 3 and rig.state("m", 2) is END)
    end = rig.monitor.state(ServableId("m", 2))
    assert end is not None and end.state is END and "cannot load m/2" in (end.error or "")
    assert served_version(rig.manager, "m") == 1
    assert rig.state("m", 1) is AVAILABLE


def test_flaky_load_succeeds_on_retry(rig):
    rig.aspire("m", 1, fail_times=2)
    rig.wait_state("m", 1, AVAILABLE)
    assert rig.loaders[("m", 1)].loads == 3
    errors = [e for e in rig.events if e.state is END]
    assert len(errors) == 2 and all(e.error for e in errors)


def test_retries_back_off_and_can_give_up():
    rig = Rig(retry=RetryPolicy(initial=0.05, maximum=0.05, max_retries=2))
    try:
        rig.aspire("m", 1, always_fail=True)
        rig.wait(lambda: rig.loaders[("m", 1)].loads == 3)
        time.sleep(0.3)
        assert rig.loaders[("m", 1)].loads == 3
    finally:
        rig.manager.stop()


def test_retry_delays_double_up_to_the_maximum():
    retry = RetryPolicy(initial=1, maximum=5)
    assert [retry.next_delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
    assert RetryPolicy(max_retries=1).next_delay(2) == float("inf")


def test_slow_load_of_one_model_does_not_block_another(rig):
    gate = threading.Event()
    rig.aspire("slow", 1, gate=gate)
    rig.wait_state("slow", 1, ManagerState.LOADING)
    rig.aspire("fast", 1)
    rig.wait_state("fast", 1, AVAILABLE)
    with pytest.raises(Unavailable, match="loading"):
        rig.manager.get_handle("slow")
    gate.set()
    rig.wait_state("slow", 1, AVAILABLE)


def test_unknown_model_and_version_are_not_found(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    with pytest.raises(NotFound, match=r"Servable not found for request: Latest\(nope\)"):
        rig.manager.get_handle("nope")
    with pytest.raises(NotFound, match=r"Servable not found for request: Specific\(m, 7\)"):
        rig.manager.get_handle("m", 7)


def test_specific_version_handle(rig):
    rig.aspire("m", 1, 2)
    rig.wait_state("m", 1, AVAILABLE)
    rig.wait_state("m", 2, AVAILABLE)
    with rig.manager.get_handle("m", 1) as handle:
        assert handle.id.version == 1
    assert served_version(rig.manager, "m") == 2, "latest is the highest available"
    assert rig.log[:2] == ["load 2", "load 1"], "newest loads first"


def test_removing_the_newest_version_brings_back_the_older(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    rig.aspire("m", 2)
    rig.wait_state("m", 1, END)
    rig.aspire("m", 1)
    rig.wait_state("m", 2, END)
    assert rig.state("m", 1) is AVAILABLE
    assert served_version(rig.manager, "m") == 1


def test_empty_list_unloads_everything(rig):
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)
    rig.aspire("m")
    rig.wait_state("m", 1, END)
    with pytest.raises(NotFound):
        rig.manager.get_handle("m")


def test_failed_version_that_leaves_is_forgotten_and_can_come_back(rig):
    rig.aspire("m", 1, always_fail=True)
    rig.wait(lambda: rig.loaders[("m", 1)].loads >= 1 and rig.state("m", 1) is END)
    rig.aspire("m")
    rig.loaders[("m", 1)].always_fail = False
    time.sleep(0.1)
    rig.aspire("m", 1)
    rig.wait_state("m", 1, AVAILABLE)


def test_stop_unloads_everything():
    rig = Rig()
    rig.aspire("a", 1)
    rig.aspire("b", 1, 2)
    rig.wait(lambda: all(rig.state(*k) is AVAILABLE for k in [("a", 1), ("b", 1), ("b", 2)]))
    rig.manager.stop()
    assert all(loader.unloads == 1 for loader in rig.loaders.values())
    assert all(rig.state(*key) is END for key in rig.loaders)


class PriorityRecordingLoader(FakeLoader):
    """Records the OS niceness of the thread that loads and unloads it."""

    seen: list[int]

    def load(self):
        self.seen.append(os.getpriority(os.PRIO_PROCESS, 0))
        return super().load()

    def unload(self) -> None:
        self.seen.append(os.getpriority(os.PRIO_PROCESS, 0))
        super().unload()


def test_loads_and_unloads_run_at_a_lower_priority_than_requests():
    rig = Rig(load_niceness=5)
    loader = PriorityRecordingLoader(ServableId("m", 1))
    loader.seen = []
    try:
        rig.manager.set_aspired_versions("m", [(ServableId("m", 1), loader)])
        rig.wait_state("m", 1, AVAILABLE)
        rig.manager.set_aspired_versions("m", [])
        rig.wait_state("m", 1, END)
    finally:
        rig.manager.stop()
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert loader.seen == [min(ours + 5, 19)] * 2, "load and unload threads are 5 nicer than the caller"
