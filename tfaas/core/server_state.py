"""``ServerState``: one decision for the whole server, from one source and every worker's reports.

Each worker process holds its own copy of each model version (TensorFlow is not fork-safe), so a version
serves only when every worker taking requests has it. This module decides, once per server:

- the **target** of each model: the versions its source aspires (its version policy, applied to one scan
  of the disk), plus, under the availability-preserving swap policy, the versions serving now until one
  aspired version serves in their place (so a broken new version never takes the old one down);
- what **serves**: the target versions AVAILABLE in every admitted worker (one that has taken requests);
  requests for the latest version go to the highest of them, on every worker;
- the **server's state** of each version (the status API's, readiness's): AVAILABLE when it serves,
  LOADING while on its way, END with the error when it failed, UNLOADING while a worker still holds it;
- **rotation**: a worker that holds fewer than the serving versions (one starting, or replacing one that
  died) loads them before it takes a connection; and a loaded worker loads or unloads only in its
  **window**, out of rotation, one worker at a time while another takes the traffic, so that the GIL a
  load takes never delays the requests being served. With one worker in rotation, or before anything
  serves (a cold start), loads happen in place.

Pure Python, no processes: the coordinator feeds it and ships each worker its :class:`Decision`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Hashable, Mapping, Protocol, Sequence

from tfaas.core.servable_id import ServableId
from tfaas.core.source import AspiredVersion
from tfaas.core.state_monitor import ServableStateMonitor
from tfaas.core.states import EventBus, ManagerState, ServableState
from tfaas.logs import servable_fields

log = logging.getLogger("tfaas.server_state")

WorkerId = Hashable
"""A worker's identity: its process id, or any key the coordinator chooses."""


class ModelLike(Protocol):
    """What this module reads of a model's configuration (``tfaas.config.ModelConfig``)."""

    swap_policy: str


class BasePathView(Protocol):
    """What this module reads of what the source found under a base path (``BasePathStatus``)."""

    versions: Collection[int]
    waiting: Mapping[int, str]

    def describe(self) -> str: ...


_HELD = (ManagerState.START, ManagerState.LOADING, ManagerState.AVAILABLE)
"""States of a version a worker's manager still wants (UNLOADING ones are already on their way out)."""


@dataclass(frozen=True)
class WorkerReport:
    """What one worker tells: whether it takes connections, and the last state of each version it knows."""

    listening: bool = False
    states: Mapping[ServableId, ServableState] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelDecision:
    """One model, as the server decided it, for one worker."""

    config: Any
    """The model's configuration (``tfaas.config.ModelConfig``), as the server serves it now."""
    incarnation: float
    """When the model came back after it was removed (0 before that): a worker that followed an older
    incarnation drops every version it holds, even those with the same numbers (they are other files)."""
    aspired: tuple[AspiredVersion, ...]
    """The versions this worker's manager should hold now."""
    serving: tuple[int, ...]
    """The versions that serve, highest first: requests for the latest go to the first."""
    loading: Mapping[int, str]
    """Versions on their way (version -> what they wait for): a request for one is worth a retry."""


@dataclass(frozen=True)
class Decision:
    """Everything a worker follows and reports about the server; equal decisions need not be sent again."""

    models: Mapping[str, ModelDecision]
    states: Mapping[str, Mapping[int, ServableState]]
    """The server's state of every known version, per model (ended versions bounded), highest first."""
    readiness_models: tuple[str, ...]
    not_ready: Mapping[str, str]
    rotation: bool
    """Whether this worker should take connections."""
    shed: int
    """Grows when another worker entered rotation: the worker lets its keep-alive connections go, so
    clients reconnect and spread over every worker again."""
    unloaded: tuple[str, ...] = ()
    """Models known to the server but withheld from serving until loaded again, sorted."""


@dataclass
class _Worker:
    report: WorkerReport = field(default_factory=WorkerReport)
    admitted: bool = False
    """Has taken connections: what serves must be AVAILABLE in it (stays so while it is connected)."""
    shed: int = 0


class ServerState:
    """The server's one decision; see the module docstring. Not thread-safe: the coordinator serializes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._models: dict[str, ModelLike] = {}
        self._readiness: tuple[str, ...] = ()
        self._unloaded: tuple[str, ...] = ()
        self._aspired: dict[str, tuple[AspiredVersion, ...]] = {}
        self._paths: dict[ServableId, AspiredVersion] = {}
        self._incarnations: dict[str, float] = {}
        self._workers: dict[WorkerId, _Worker] = {}
        self._window: WorkerId | None = None
        self._bus = EventBus()
        self._monitor = ServableStateMonitor(self._bus)
        self._base_path_status: Callable[[str], BasePathView | None] = lambda name: None

    # ---- inputs ---------------------------------------------------------------------------------

    def set_models(
        self, models: Mapping[str, ModelLike], readiness_models: Sequence[str], unloaded: Collection[str] = ()
    ) -> None:
        """The models served now (and those withheld, ``unloaded``); a name that comes back after it was removed
        starts a new incarnation."""
        for name in models:
            if name not in self._models:
                self._incarnations[name] = self._clock() if name in self._incarnations else 0.0
        for name in set(self._models) - set(models):
            self._aspired.pop(name, None)
        self._models = dict(models)
        self._readiness = tuple(sorted(readiness_models))
        self._unloaded = tuple(sorted(unloaded))

    def set_aspired(self, name: str, versions: Sequence[AspiredVersion]) -> None:
        """The complete list of versions the source aspires for ``name``."""
        self._aspired[name] = tuple(versions)
        self._paths.update((v.id, v) for v in versions)

    def set_base_path_status(self, status_of: Callable[[str], BasePathView | None]) -> None:
        """Where to read what the source last found under a model's base path (for "why not ready")."""
        self._base_path_status = status_of

    def report(self, worker: WorkerId, report: WorkerReport) -> None:
        """A worker's new report; a worker that reports listening is admitted from then on."""
        entry = self._workers.setdefault(worker, _Worker())
        if report.listening and not entry.report.listening:
            for other_id, other in self._workers.items():
                if other_id != worker:
                    other.shed += 1
        entry.report = report
        entry.admitted = entry.admitted or report.listening

    def remove_worker(self, worker: WorkerId) -> None:
        """A worker that is gone (it exited or died)."""
        self._workers.pop(worker, None)
        if self._window == worker:
            self._window = None

    # ---- the decision ---------------------------------------------------------------------------

    def decide(self) -> dict[WorkerId, Decision]:
        """Each worker's decision, from the inputs so far; records the server's state changes."""
        targets = {name: self._target(name) for name in self._models}
        serving = {name: self._serving(name, target) for name, target in targets.items()}
        self._record_states(targets, serving)
        self._assign_window(targets, serving)
        self._forget_paths()
        states = {name: self._monitor.version_states(name) for name in self._monitor.model_names()}
        not_ready = {name: self._why_not_serving(name, targets) for name in self._readiness if not serving.get(name)}
        return {
            worker_id: Decision(
                models={
                    name: self._model_decision(worker_id, name, targets[name], serving[name]) for name in self._models
                },
                states=states,
                readiness_models=self._readiness,
                not_ready=not_ready,
                rotation=self._rotation(worker_id, targets, serving),
                shed=worker.shed,
                unloaded=self._unloaded,
            )
            for worker_id, worker in self._workers.items()
        }

    def _forget_paths(self) -> None:
        """Keep the path of a version only while it is aspired or some worker holds it (a long-running server
        sees every version ever dropped in)."""
        wanted = {v.id for versions in self._aspired.values() for v in versions}
        wanted.update(id for worker in self._workers.values() for id in worker.report.states)
        for id in self._paths.keys() - wanted:
            del self._paths[id]

    def _target(self, name: str) -> tuple[AspiredVersion, ...]:
        """The versions ``name`` should have: the aspired ones, and the serving ones until one of those serves."""
        aspired = self._aspired.get(name, ())
        if not aspired or self._models[name].swap_policy != "availability":
            return aspired
        available = self._available_everywhere(name)
        if available & {v.id.version for v in aspired}:
            return aspired
        kept = [self._paths[ServableId(name, v)] for v in sorted(available) if ServableId(name, v) in self._paths]
        return (*aspired, *(v for v in kept if v not in aspired))

    def _available_everywhere(self, name: str) -> set[int]:
        """The versions of ``name`` AVAILABLE in every admitted worker (none without one)."""
        admitted = [w for w in self._workers.values() if w.admitted]
        if not admitted:
            return set()
        sets = [self._versions_in(w, name, (ManagerState.AVAILABLE,)) for w in admitted]
        return set.intersection(*sets)

    def _versions_in(self, worker: _Worker, name: str, states: Sequence[ManagerState]) -> set[int]:
        """The versions of ``name`` whose last state in ``worker`` (this incarnation) is one of ``states``."""
        since = self._incarnations.get(name, 0.0)
        return {
            id.version
            for id, s in worker.report.states.items()
            if id.name == name and s.state in states and s.time >= since
        }

    def _failed_in(self, worker: _Worker, name: str) -> dict[int, str]:
        """The versions of ``name`` whose last load in ``worker`` failed, with the error."""
        since = self._incarnations.get(name, 0.0)
        return {
            id.version: s.error
            for id, s in worker.report.states.items()
            if id.name == name and s.state is ManagerState.END and s.error and s.time >= since
        }

    def _serving(self, name: str, target: tuple[AspiredVersion, ...]) -> tuple[int, ...]:
        versions = self._available_everywhere(name) & {v.id.version for v in target}
        return tuple(sorted(versions, reverse=True))

    def _work(self, worker: _Worker, targets: Mapping[str, tuple[AspiredVersion, ...]]) -> bool:
        """Whether ``worker`` has a version to load (not failed) or one to unload."""
        for name, target in targets.items():
            wanted = {v.id.version for v in target}
            done = self._versions_in(worker, name, (ManagerState.AVAILABLE,)) | set(self._failed_in(worker, name))
            if wanted - done:
                return True
            if self._versions_in(worker, name, (*_HELD, ManagerState.UNLOADING)) - wanted:
                return True
        gone = {id.name for id, s in worker.report.states.items() if s.state in (*_HELD, ManagerState.UNLOADING)}
        return bool(gone - set(targets))

    def _assign_window(self, targets: Mapping[str, tuple[AspiredVersion, ...]], serving: Mapping[str, tuple]) -> None:
        """Keep or move the window: one admitted worker at a time changes what it holds, out of rotation."""
        holder = self._workers.get(self._window) if self._window is not None else None
        if holder is not None and not (holder.report.listening and not self._work(holder, targets)):
            return  # NOTE: still at work, or back at work's end but not yet listening again
        self._window = None
        if not any(serving.values()):
            return  # NOTE: nothing serves yet (a cold start): every worker loads in place
        for worker_id, worker in self._workers.items():
            others_listening = any(
                w.report.listening and w.admitted for i, w in self._workers.items() if i != worker_id
            )
            if worker.admitted and others_listening and self._work(worker, targets):
                self._window = worker_id
                return

    def _model_decision(
        self, worker_id: WorkerId, name: str, target: tuple[AspiredVersion, ...], serving: tuple[int, ...]
    ) -> ModelDecision:
        worker = self._workers[worker_id]
        # NOTE: no window open: nobody else takes requests in rotation, or nothing serves yet (in place)
        if not worker.admitted or self._window is None or worker_id == self._window:
            aspired = target
        else:  # NOTE: waits for its window: keeps what it holds, retries what failed
            keep = self._versions_in(worker, name, _HELD) | set(self._failed_in(worker, name))
            aspired = tuple(v for v in target if v.id.version in keep) + tuple(
                self._paths[ServableId(name, v)]
                for v in sorted(keep - {t.id.version for t in target})
                if ServableId(name, v) in self._paths
            )
        on_the_way = (ManagerState.START, ManagerState.LOADING)
        loading = {
            v.id.version: "is loading"
            for v in target
            if v.id.version not in serving and getattr(self._monitor.state(v.id), "state", None) in on_the_way
        }
        status = self._base_path_status(name)
        if status is not None:
            loading.update(status.waiting)
        return ModelDecision(
            config=self._models[name],
            incarnation=self._incarnations[name],
            aspired=aspired,
            serving=serving,
            loading=loading,
        )

    def _rotation(
        self, worker_id: WorkerId, targets: Mapping[str, tuple[AspiredVersion, ...]], serving: Mapping[str, tuple]
    ) -> bool:
        """In rotation: an admitted worker outside its window, or a new one once it holds what serves."""
        worker = self._workers[worker_id]
        if worker.admitted:
            return worker_id != self._window or not self._work(worker, targets)
        return all(
            set(versions) <= self._versions_in(worker, name, (ManagerState.AVAILABLE,))
            for name, versions in serving.items()
        )

    # ---- the server's states --------------------------------------------------------------------

    def _record_states(self, targets: Mapping[str, tuple[AspiredVersion, ...]], serving: Mapping[str, tuple]) -> None:
        """Publish a server state event for every version whose state (or error) changed (none while no worker
        is connected: at start and at shutdown, there is nobody to tell, and nothing serves)."""
        if not self._workers:
            return
        for id in self._known_versions(targets):
            state, error = self._server_state(id, targets, serving)
            last = self._monitor.state(id)
            if last is None or (last.state, last.error) != (state, error):
                if last is None and state is ManagerState.END and not error:
                    continue  # NOTE: never seen, already gone: nothing to tell
                self._bus.publish(id, state, error)
                fields = servable_fields(id.name, id.version)
                why = f": {error}" if error else ""
                log.info("Servable %s is %s on the server%s", id, state.name, why, extra=fields)

    def _known_versions(self, targets: Mapping[str, tuple[AspiredVersion, ...]]) -> set[ServableId]:
        known = {v.id for target in targets.values() for v in target}
        known |= {
            id for w in self._workers.values() for id, s in w.report.states.items() if s.state is not ManagerState.END
        }
        for name in self._monitor.model_names():
            known |= {s.id for s in self._monitor.version_states(name).values() if s.state is not ManagerState.END}
        return known

    def _server_state(
        self, id: ServableId, targets: Mapping[str, tuple[AspiredVersion, ...]], serving: Mapping[str, tuple]
    ) -> tuple[ManagerState, str | None]:
        """The server's state of one version: see the module docstring."""
        name, version = id.name, id.version
        if version in serving.get(name, ()):
            return ManagerState.AVAILABLE, None
        workers = list(self._workers.values())
        if version in {v.id.version for v in targets.get(name, ())}:
            errors = [e for w in workers for v, e in self._failed_in(w, name).items() if v == version]
            on_the_way = any(version in self._versions_in(w, name, _HELD) for w in workers)
            if errors and not on_the_way:
                return ManagerState.END, errors[0]
            return (ManagerState.LOADING if on_the_way else ManagerState.START), None
        if any(version in self._versions_in(w, name, (*_HELD, ManagerState.UNLOADING)) for w in workers):
            return ManagerState.UNLOADING, None
        last = self._monitor.state(id)
        return ManagerState.END, last.error if last is not None and last.state is ManagerState.END else None

    def _why_not_serving(self, name: str, targets: Mapping[str, tuple[AspiredVersion, ...]]) -> str:
        """Why ``name`` serves no version: one loading, one that failed, or what the disk shows."""
        states = self._monitor.version_states(name)
        loading = [v for v, s in states.items() if s.state in (ManagerState.START, ManagerState.LOADING)]
        if loading:
            return f"version {loading[0]} is loading"
        status = self._base_path_status(name)
        if status is None:
            return "its base path has not been read yet"
        failed = [s for s in states.values() if s.error and s.id.version in status.versions]
        if failed and not status.waiting:
            return f"version {failed[0].id.version} failed to load: {failed[0].error}"
        return status.describe()
