"""``AspiredVersionsManager``: reconciles what sources aspire with what is loaded, and hands out handles.

Sources call ``set_aspired_versions``, which only records the request. A reconcile thread (woken by
new requests, finished loads and unloads, or every ``manage_interval`` seconds) then, per model:
flushes finished versions, applies the newest aspired list, re-arms failed loads whose back-off has
passed, and asks the model's swap policy for the next action. Loads and unloads run on their own
thread pools, so a slow load never blocks the reconcile loop, another model, or a request.

Requests read the serving map without taking a lock: it is an immutable snapshot, replaced whole
after every load and before every unload.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Mapping, Sequence

from tfaas.core.aspired_version_policy import (
    SWAP_POLICIES,
    Action,
    AspiredVersionPolicy,
    HarnessState,
    availability_preserving,
)
from tfaas.core.harness import LoaderHarness
from tfaas.core.loader import Loader
from tfaas.core.servable_handle import ServableHandle
from tfaas.core.servable_id import ServableId
from tfaas.core.states import EventBus, ManagerState
from tfaas.errors import NotFound, Unavailable
from tfaas.logs import servable_fields

log = logging.getLogger("tfaas.manager")


def _about(id: ServableId) -> dict[str, object]:
    """``extra=`` for a log line about one version: its model and version become fields of the line."""
    return servable_fields(id.name, id.version)


_HANDLE_ATTEMPTS = 8
"""Lookups a request makes when the version it found starts draining under it (a swap race)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off for failed loads: ``initial`` seconds, doubling up to ``maximum``.

    ``max_retries < 0`` retries for as long as the version stays aspired (a transient storage
    failure must not leave an old version serving forever, TF Serving issue #1738).
    """

    initial: float = 1.0
    maximum: float = 300.0
    max_retries: int = -1

    def next_delay(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure (inf: give up)."""
        if 0 <= self.max_retries < failed_attempts:
            return math.inf
        return min(self.maximum, self.initial * 2 ** (failed_attempts - 1))


@dataclass(frozen=True)
class _ServingEntry:
    """The READY versions of one model, and the highest of them."""

    versions: Mapping[int, LoaderHarness] = field(default_factory=dict)
    latest: LoaderHarness | None = None


AspiredList = Sequence[tuple[ServableId, Loader]]


@dataclass(frozen=True)
class _Pending:
    """An aspired list not applied yet; ``replace``: every version loaded now goes first, even one with the
    same id (the model was deleted and created again: same name and versions, other files)."""

    versions: AspiredList
    replace: bool = False


def _lower_priority(niceness: int) -> None:
    """Make the calling (load or unload) thread ``niceness`` nicer, so requests keep the CPU during a swap.

    NOTE: on Linux a thread has a niceness of its own (setpriority on its thread id); raising it needs no
    privilege. Where that fails (other systems), loads simply run at the process's priority.
    """
    if niceness > 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + niceness)


class AspiredVersionsManager:
    """Owns every version's lifecycle; see the module docstring for how it works."""

    def __init__(
        self,
        bus: EventBus,
        num_load_threads: int = 2,
        num_unload_threads: int = 1,
        retry: RetryPolicy = RetryPolicy(),
        manage_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        load_niceness: int = 0,
    ) -> None:
        self._bus = bus
        self._retry = retry
        self._interval = manage_interval
        self._clock = clock
        self._lock = threading.RLock()
        self._managed: dict[str, dict[int, LoaderHarness]] = {}
        self._pending: dict[str, AspiredList] = {}
        self._policies: dict[str, AspiredVersionPolicy] = {}
        self._serving: Mapping[str, _ServingEntry] = {}
        background = partial(_lower_priority, load_niceness)
        self._load_pool = ThreadPoolExecutor(max(1, num_load_threads), "tfaas-load", initializer=background)
        self._unload_pool = ThreadPoolExecutor(max(1, num_unload_threads), "tfaas-unload", initializer=background)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tfaas-manage-state", daemon=True)

    # ---- configuration and the source side ------------------------------------------------------

    def set_swap_policy(self, name: str, policy: str | AspiredVersionPolicy) -> None:
        """Choose ``availability`` (default) or ``resource`` swapping for one model."""
        with self._lock:
            self._policies[name] = SWAP_POLICIES[policy] if isinstance(policy, str) else policy

    def set_aspired_versions(self, name: str, versions: AspiredList, replace: bool = False) -> None:
        """Record the complete list of versions a source wants for ``name``; applied asynchronously.

        Only the newest request per model is kept: a newer list replaces one not yet applied (and inherits
        its ``replace``). With ``replace``, every version of ``name`` loaded now is unloaded before the list
        applies, so a version with an id already loaded is loaded again from its path.
        """
        with self._lock:
            earlier = self._pending.get(name)
            self._pending[name] = _Pending(list(versions), replace or (earlier is not None and earlier.replace))
        self._wake.set()

    # ---- the request side -----------------------------------------------------------------------

    def get_handle(self, name: str, version: int | None = None) -> ServableHandle:
        """A handle on ``version`` of ``name``, or on its highest AVAILABLE version when None.

        Raises ``Unavailable`` while the wanted version is still loading and ``NotFound`` otherwise.
        Takes no lock on the common path.
        """
        for _ in range(_HANDLE_ATTEMPTS):
            entry = self._serving.get(name)
            harness = None
            if entry is not None:
                harness = entry.latest if version is None else entry.versions.get(version)
            if harness is None:
                raise self._not_serving_error(name, version)
            if harness.acquire():
                return ServableHandle(harness)
        raise Unavailable(f"Servable {name} is swapping versions; try again")

    def available_versions(self, name: str) -> list[int]:
        """The versions of ``name`` that serve right now, highest first."""
        entry = self._serving.get(name)
        return sorted(entry.versions, reverse=True) if entry else []

    def loading_versions(self, name: str) -> list[int]:
        """The versions of ``name`` that are aspired and not loaded yet (waiting for a load, or loading),
        highest first."""
        with self._lock:
            managed = self._managed.get(name, {})
            pending = {id.version for id, _ in self._pending[name].versions} if name in self._pending else set()
            loading = {
                v for v, h in managed.items() if h.is_aspired and h.state in (HarnessState.NEW, HarnessState.LOADING)
            } | pending
        return sorted(loading, reverse=True)

    def _not_serving_error(self, name: str, version: int | None) -> Exception:
        loading = self.loading_versions(name)
        if version is None:
            if loading:
                return Unavailable(f"Model {name} is loading: no version is available yet")
            return NotFound(f"Servable not found for request: Latest({name})")
        if version in loading:
            return Unavailable(f"Version {version} of model {name} is loading")
        return NotFound(f"Servable not found for request: Specific({name}, {version})")

    # ---- running --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reconcile thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop reconciling, let running loads finish, then unload every loaded version.

        In-flight requests finish first: each unload drains its version's handles.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._load_pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            ready = [h for m in self._managed.values() for h in m.values() if h.state is HarnessState.READY]
            for harness in ready:
                self._begin_unload(harness)
        for harness in ready:
            self._execute_unload(harness)
        self._unload_pool.shutdown(wait=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.manage_state()
            except Exception:  # NOTE: the loop must survive any bug in one round
                log.exception("Reconciling servable versions failed")

    def manage_state(self) -> None:
        """One reconcile round over every model (the thread calls it; tests may call it directly)."""
        with self._lock:
            now = self._clock()
            for name in set(self._managed) | set(self._pending):
                # NOTE: events are published under the lock so that START always precedes the
                # LOADING a pool thread publishes; subscribers never call back into the manager.
                for id, state in self._flush(name) + self._apply_pending(name):
                    self._bus.publish(id, state)
                self._rearm_retries(name, now)
                action = self._policies.get(name, availability_preserving)(
                    [h.snapshot() for h in self._managed.get(name, {}).values()]
                )
                if action is not None:
                    self._execute(name, action)

    # ---- one round, per model (all under self._lock) --------------------------------------------

    def _flush(self, name: str) -> list[tuple[ServableId, ManagerState]]:
        """Forget versions that are done and no longer wanted."""
        managed = self._managed.get(name, {})
        events = []
        for version, harness in list(managed.items()):
            if harness.is_aspired:
                continue
            if harness.state is HarnessState.NEW:
                events.append((harness.id, ManagerState.END))  # aspired once, never loaded
            elif harness.state not in (HarnessState.DISABLED, HarnessState.ERROR):
                continue
            del managed[version]
        return events

    def _apply_pending(self, name: str) -> list[tuple[ServableId, ManagerState]]:
        """Apply the newest aspired list of ``name``, unless a re-aspired version is still unloading."""
        if name not in self._pending:
            return []
        managed = self._managed.setdefault(name, {})
        pending = self._pending[name]
        wanted = {id.version: (id, loader) for id, loader in pending.versions}
        events = []
        if pending.replace:
            if _replace_pending(managed):
                return []  # NOTE: postponed until every version loaded now is gone
            events = [(h.id, ManagerState.END) for h in managed.values() if h.state is HarnessState.NEW]
            managed.clear()  # NOTE: what is left failed or never loaded: the new list starts afresh
        if any(managed.get(v) and managed[v].state is HarnessState.UNLOADING for v in wanted):
            return []  # NOTE: postponed: a version coming back must finish leaving first
        del self._pending[name]
        for version, harness in managed.items():
            harness.is_aspired = version in wanted
        for version, (id, loader) in wanted.items():
            harness = managed.get(version)
            if harness is None or harness.state is HarnessState.DISABLED:
                managed[version] = LoaderHarness(id, loader)
                events.append((id, ManagerState.START))
        return events

    def _rearm_retries(self, name: str, now: float) -> None:
        """Make failed, still aspired versions whose back-off has passed loadable again."""
        for harness in self._managed.get(name, {}).values():
            if harness.state is HarnessState.ERROR and harness.is_aspired and harness.retry_at <= now:
                log.info(
                    "Retrying load of servable %s (attempt %d)",
                    harness.id,
                    harness.failed_attempts + 1,
                    extra=_about(harness.id),
                )
                harness.state = HarnessState.NEW

    def _execute(self, name: str, action: Action) -> None:
        harness = self._managed[name][action.version]
        if action.kind == "load":
            harness.state = HarnessState.LOADING
            self._load_pool.submit(self._execute_load, harness)
        else:
            self._begin_unload(harness)
            self._unload_pool.submit(self._execute_unload, harness)

    # ---- loads and unloads (on the pools) -------------------------------------------------------

    def _execute_load(self, harness: LoaderHarness) -> None:
        self._bus.publish(harness.id, ManagerState.LOADING)
        log.info("Loading servable %s", harness.id, extra=_about(harness.id))
        started = time.monotonic()
        try:
            servable = harness.loader.load()
        except Exception as exc:  # NOTE: any failure of a load is that version's, never the server's
            self._load_failed(harness, str(exc) or type(exc).__name__)
        else:
            with self._lock:
                harness.servable = servable
                harness.state = HarnessState.READY
                harness.error = None
                self._update_serving_map(harness.id.name)
            log.info("Loaded servable %s in %.3f s", harness.id, time.monotonic() - started, extra=_about(harness.id))
            self._bus.publish(harness.id, ManagerState.AVAILABLE)
        self._wake.set()

    def _load_failed(self, harness: LoaderHarness, error: str) -> None:
        with self._lock:
            harness.failed_attempts += 1
            harness.error = error
            harness.state = HarnessState.ERROR
            delay = self._retry.next_delay(harness.failed_attempts)
            harness.retry_at = self._clock() + delay
        when = "not retried" if math.isinf(delay) else f"retrying in {delay:g} s"
        log.error(
            "Loading servable %s failed (attempt %d, %s): %s",
            harness.id,
            harness.failed_attempts,
            when,
            error,
            extra=_about(harness.id),
        )
        self._bus.publish(harness.id, ManagerState.END, error)

    def _begin_unload(self, harness: LoaderHarness) -> None:
        """Take the version out of service (under the lock): new requests no longer find it."""
        harness.state = HarnessState.UNLOADING
        self._update_serving_map(harness.id.name)

    def _execute_unload(self, harness: LoaderHarness) -> None:
        self._bus.publish(harness.id, ManagerState.UNLOADING)
        harness.drain()
        try:
            harness.loader.unload()
        except Exception:
            log.exception("Unloading servable %s failed", harness.id, extra=_about(harness.id))
        with self._lock:
            harness.servable = None
            harness.state = HarnessState.DISABLED
        log.info("Unloaded servable %s", harness.id, extra=_about(harness.id))
        self._bus.publish(harness.id, ManagerState.END)
        self._wake.set()

    def _update_serving_map(self, name: str) -> None:
        """Rebuild the serving entry of ``name`` and publish a new map (copy-on-write)."""
        ready = {v: h for v, h in self._managed.get(name, {}).items() if h.state is HarnessState.READY}
        serving = dict(self._serving)
        if ready:
            serving[name] = _ServingEntry(ready, ready[max(ready)])
        else:
            serving.pop(name, None)
        self._serving = serving


def _replace_pending(managed: Mapping[int, LoaderHarness]) -> bool:
    """For a replacing list: take every version of the model out of the aspired set; True while one of
    them is still loaded, loading or unloading (the swap policy unloads them)."""
    for harness in managed.values():
        harness.is_aspired = False
    return any(h.state not in (HarnessState.NEW, HarnessState.DISABLED, HarnessState.ERROR) for h in managed.values())
