"""``ServerCore``: one worker's serving pipeline, following the server's one lifecycle decision.

As TF Serving's ServerCore, it turns aspired versions into loaded ones through a loader factory (the source
adapter) and a manager, and resolves a request's model spec (latest, a version, or a label) to a handle.
What to aspire is not its own choice: its :class:`Lifecycle` (the coordinator, in another process under
gunicorn or on threads of this one) sends it a :class:`~tfaas.core.server_state.Decision`, and it answers
status, readiness and "which version is the latest" from that decision, so every worker tells the same
truth. It reports its own versions' states back. It knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Mapping, Protocol, Sequence

from tfaas.batching.loader import BatchingLoader
from tfaas.batching.parameters import BatchingParameters
from tfaas.config import ModelConfig, Settings
from tfaas.core.loader import Loader, LoaderFactory
from tfaas.core.manager import AspiredVersionsManager, RetryPolicy
from tfaas.core.servable_handle import ServableHandle
from tfaas.core.servable_id import ServableId
from tfaas.core.server_state import Decision, ModelDecision, WorkerReport
from tfaas.core.source import AspiredVersion
from tfaas.core.state_monitor import ServableStateMonitor
from tfaas.core.states import EventBus, ServableState
from tfaas.errors import InvalidArgument, NotFound, Unavailable
from tfaas.metrics import Metrics, default_metrics
from tfaas.model_repository import ModelRepository
from tfaas.servables import warmup

if TYPE_CHECKING:
    from tfaas.tracing.spans import Tracing

log = logging.getLogger("tfaas.server_core")

PER_VERSION_BATCHING_FILE = "batching_params.pbtxt"
"""A version's own batching parameters, read with ``enable_per_model_batching_parameters`` (TF Serving's name)."""


def version_loader(id: ServableId, path: str) -> Loader:
    """The default loader factory: a SavedModel, or a TFaaS frozen graph, by what the directory holds."""
    from tfaas.servables.loaders import version_loader as choose  # NOTE: keeps TF out of import time

    return choose(id, path)


@dataclass(frozen=True)
class ModelSpec:
    """What a request asks for: a model, and at most one of a version or a label."""

    name: str
    version: int | None = None
    label: str | None = None


class Lifecycle(Protocol):
    """A worker's side of the server's lifecycle: decisions in, reports and requests out."""

    def connect(self, apply: Callable[[Decision], None]) -> None:
        """Start: from now on ``apply`` gets every new decision for this worker (on a thread of its own)."""

    def report(self, report: WorkerReport) -> None:
        """Tell the coordinator this worker's states (the newest report replaces the older ones)."""

    def reload_config(self) -> bool:
        """Re-read the model config file; False if it was refused."""

    def set_model_config(self, models: Sequence[ModelConfig]) -> None:
        """Serve ``models`` as the configured models (in place of the config file's); returns once applied."""

    def refresh_repository(self) -> None:
        """Re-read the model repository (after an upload or a delete); returns once applied."""

    def set_model_loaded(self, name: str, loaded: bool) -> bool:
        """Serve the configured or repository model ``name`` again, or withhold it from the served models until
        then; returns once applied (False: no such model)."""

    def close(self) -> None:
        """Stop."""


class Rotation(Protocol):
    """Whether a worker takes new connections (``tfaas.server.rotation.Rotation`` under gunicorn)."""

    @property
    def listening(self) -> bool:
        """Its listeners are open, or closed with their connections still leaving."""

    @property
    def leaving(self) -> bool:
        """It is leaving: it takes no new connection (``listening`` until its connections left)."""

    def set(self, listening: bool) -> None: ...

    def shed_connections(self) -> None: ...


class InProcess:
    """The rotation of a server with no listener of its own (tests, an embedding app): always in."""

    listening = True
    leaving = False

    def set(self, listening: bool) -> None:
        """Nothing to open or close."""

    def shed_connections(self) -> None:
        """No connections of its own."""


NO_DECISION = Decision(models={}, states={}, readiness_models=(), not_ready={}, rotation=False, shed=0)
"""What a worker follows before the coordinator's first decision: nothing serves, nothing is ready."""


class ServerCore:
    """Manager and servables for what the server decided, plus the server's status, readiness and labels."""

    def __init__(
        self,
        settings: Settings,
        loader_factory: LoaderFactory = version_loader,
        metrics: Metrics | None = None,
        repository_models_at_start: Collection[str] | None = None,
        lifecycle: Lifecycle | None = None,
        rotation: Rotation | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``lifecycle``: the coordinator to follow (default: one on threads of this process, deciding from
        ``settings`` and ``repository_models_at_start``, the model repository's models readiness waits for).
        ``rotation``: this worker's listener (default: none, always in rotation). ``tracing``: this worker's
        spans of requests and loads (default: none; closing it is its maker's)."""
        self.settings = settings
        self.bus = EventBus()
        self.monitor = ServableStateMonitor(self.bus)
        """This worker's own version states (what it reports); the server's are :meth:`states`."""
        self.metrics = metrics if metrics is not None else default_metrics()
        self.metrics.watch(self.bus)
        self.tracing = tracing
        if tracing is not None:
            tracing.watch(self.bus)
        # NOTE: process-wide, as there is one ServerCore per worker process.
        warmup.configure(
            warmup.WarmupOptions(settings.num_request_iterations_for_warmup, self.metrics, settings.first_call_warmup)
        )
        self.manager = AspiredVersionsManager(
            self.bus,
            num_load_threads=settings.num_load_threads,
            num_unload_threads=settings.num_unload_threads,
            load_niceness=settings.load_thread_niceness,
            retry=RetryPolicy(
                initial=settings.load_retry_initial_seconds,
                maximum=settings.load_retry_max_seconds,
                max_retries=settings.max_num_load_retries,
            ),
        )
        self._loader_factory = loader_factory
        self.repository = (
            ModelRepository(settings.model_repository, settings.max_upload_bytes) if settings.model_repository else None
        )
        if lifecycle is None:
            from tfaas.coordinator import LocalLifecycle  # NOTE: the coordinator imports this module's neighbours

            lifecycle = LocalLifecycle(settings, repository_models_at_start)
        self.lifecycle = lifecycle
        self.rotation: Rotation = rotation if rotation is not None else InProcess()
        self._decision = NO_DECISION
        self._changed = threading.Condition()
        self._applied: dict[str, tuple[AspiredVersion, ...]] = {}
        self._incarnations: dict[str, float] = {}
        self._shed = 0
        self._rotation_lock = threading.Lock()
        self._deferred: Decision | None = None
        self._started = False

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the manager, then follow the coordinator's decisions, reporting every state change."""
        self.manager.start()
        self.bus.subscribe(lambda event: self.report())
        self.lifecycle.connect(self._apply)
        self.report()
        self._started = True

    def stop(self) -> None:
        """Stop following, then unload every version once its in-flight requests have finished."""
        if self._started:
            self.lifecycle.close()
            self.manager.stop()
        self.monitor.close()
        self.metrics.tally.flush()

    def report(self) -> None:
        """Tell the coordinator whether this worker takes new connections and the state of each of its versions.

        NOTE: a worker that is leaving takes none: were it still counted, the coordinator could send another
        worker out of rotation before this one is back, and the port would have no listener at all.
        """
        states = {s.id: s for name in self.monitor.model_names() for s in self.monitor.version_states(name).values()}
        taking = self.rotation.listening and not self.rotation.leaving
        self.lifecycle.report(WorkerReport(listening=taking, states=states))
        with self._changed:
            self._changed.notify_all()

    def reload_config(self) -> bool:
        """Ask the coordinator to re-read the model config file (new models load, removed ones unload);
        False when the file was refused (the config in force stays)."""
        return self.lifecycle.reload_config()

    def set_model_config(self, models: Sequence[ModelConfig]) -> None:
        """Ask the coordinator to serve ``models`` as the configured models, in place of the config file's
        (new ones load, those left out unload); returns once it applied them, not once they serve."""
        self.lifecycle.set_model_config(models)

    def refresh_repository(self) -> None:
        """Ask the coordinator to serve the models now in the model repository (after an upload or delete)."""
        self.lifecycle.refresh_repository()

    def set_model_loaded(self, name: str, loaded: bool) -> bool:
        """Ask the coordinator to serve ``name`` (a configured or repository model) again, or to withhold it
        from the served models until then; returns once it applied that, not once it serves or unloaded.
        False when there is no such model."""
        return self.lifecycle.set_model_loaded(name, loaded)

    def _apply(self, decision: Decision) -> None:
        """Follow a new decision: route requests by it, then load and unload what it aspires here."""
        for name, model in decision.models.items():
            self.manager.set_swap_policy(name, model.config.swap_policy)
        if decision.states != self._decision.states:
            self.metrics.follow_server(decision.states)
        with self._changed:
            self._decision = decision
            self._changed.notify_all()
        with self._rotation_lock:
            self.rotation.set(decision.rotation)
            if decision.shed > self._shed:
                self._shed = decision.shed
                if decision.rotation:  # NOTE: one leaving rotation sheds its connections once its listener closed
                    self.rotation.shed_connections()
            # NOTE: a window's loads wait until the listener closed: they must not hold the GIL of a
            # process still taking connections (rotation_changed() applies them).
            self._deferred = decision if not decision.rotation and self.rotation.listening else None
            if self._deferred is None:
                self._aspire_all(decision)

    def rotation_changed(self) -> None:
        """The listener opened, began to leave or closed: apply the loads a window deferred (once closed), and
        tell the coordinator."""
        with self._rotation_lock:
            if self._deferred is not None and not self.rotation.listening:
                deferred, self._deferred = self._deferred, None
                self._aspire_all(deferred)
        self.report()

    def _aspire_all(self, decision: Decision) -> None:
        """Hand the manager what ``decision`` aspires here; unaspire the models it no longer has."""
        for name, model in decision.models.items():
            self._aspire(name, model)
        for name in set(self._applied) - set(decision.models):
            del self._applied[name]
            self.manager.set_aspired_versions(name, [])

    def _aspire(self, name: str, model: ModelDecision) -> None:
        """Hand the manager the versions ``model`` aspires here, when they changed (all afresh when the
        model is a new incarnation: deleted and created again under its name)."""
        replace = model.incarnation > self._incarnations.setdefault(name, model.incarnation)
        self._incarnations[name] = max(model.incarnation, self._incarnations[name])
        if not replace and self._applied.get(name) == model.aspired:
            return
        self._applied[name] = model.aspired
        loaders = [(v.id, self._loader(v, model.config)) for v in model.aspired]
        self.manager.set_aspired_versions(name, loaders, replace=replace)

    def _loader(self, version: AspiredVersion, model: ModelConfig) -> Loader:
        """The version's loader, behind a batching one when its model is batched."""
        loader = self._loader_factory(version.id, version.path)
        if not batching_enabled(self.settings, model):
            return loader
        per_version = os.path.join(version.path, PER_VERSION_BATCHING_FILE)
        return BatchingLoader(
            loader,
            version.id,
            model.batching if isinstance(model.batching, BatchingParameters) else self.settings.batching_parameters,
            self.metrics.observe_batch,
            per_version if self.settings.enable_per_model_batching_parameters and os.path.isfile(per_version) else None,
        )

    # ---- requests -------------------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        """The models the server serves, sorted."""
        return sorted(self._decision.models)

    def get_handle(self, spec: ModelSpec) -> ServableHandle:
        """Resolve a request's model spec to a handle on a version the server serves (release it when done).

        The latest is the server's: the highest version that every worker in rotation serves.
        """
        model = self._decision.models.get(spec.name)
        version = spec.version if spec.label is None else self._label_version(spec.name, spec.label)
        if model is None:
            raise _not_found(spec.name, version)
        if version is None and model.serving:
            version = model.serving[0]
        elif version is None or version not in model.serving:
            raise _not_serving(spec.name, version, model)
        try:
            return self.manager.get_handle(spec.name, version)
        except NotFound:  # NOTE: serves elsewhere, and here in a moment (this worker follows a step behind)
            raise Unavailable(f"Model {spec.name} is loading: version {version} is loading") from None

    def model_config(self, name: str) -> ModelConfig | None:
        """The configuration the server serves ``name`` with (None for an unknown model)."""
        model = self._decision.models.get(name)
        return model.config if model else None

    def version_labels(self, name: str) -> Mapping[str, int]:
        """The labels configured for ``name`` (empty for an unknown model)."""
        config = self.model_config(name)
        return config.version_labels if config else {}

    def _label_version(self, name: str, label: str) -> int:
        labels = self.version_labels(name)
        if label not in labels:
            raise InvalidArgument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def states(self, name: str) -> Mapping[int, ServableState]:
        """The server's state of every known version of ``name``, highest first (empty if unknown)."""
        return self._decision.states.get(name, {})

    def version_states(self, name: str, version: int | None = None) -> list[ServableState]:
        """States for the status API: every known version of ``name`` (highest first), or one.

        Raises ``NotFound`` with TF Serving's messages for an unknown model or version.
        """
        states = self.states(name)
        if not states:
            raise NotFound(f"Could not find any versions of model {name}")
        if version is None:
            return list(states.values())
        if version not in states:
            raise NotFound(f"Could not find version {version} of model {name}")
        return [states[version]]

    def available_versions(self, name: str) -> list[int]:
        """The versions of ``name`` the server serves, highest first."""
        model = self._decision.models.get(name)
        return list(model.serving) if model else []

    @property
    def unloaded_models(self) -> list[str]:
        """The models withheld from serving by name (:meth:`set_model_loaded`), sorted."""
        return list(self._decision.unloaded)

    @property
    def readiness_models(self) -> list[str]:
        """The models readiness waits for, sorted: the configured ones, and the model repository's that
        were there when the server started. A model uploaded since never makes the server unready."""
        return list(self._decision.readiness_models)

    def is_ready(self) -> bool:
        """True once the coordinator decided and every model readiness waits for serves."""
        return self._decision is not NO_DECISION and not self._decision.not_ready

    def not_ready(self) -> dict[str, str]:
        """Each model readiness waits for that serves no version, with why (empty once ready)."""
        if self._decision is NO_DECISION:
            return {"*": "the server's lifecycle has not decided yet"}
        return dict(self._decision.not_ready)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` (checked at each decision and state change) or ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def wait_until_ready(self, timeout: float) -> bool:
        """Block until ``is_ready()`` or ``timeout`` seconds; for tests and start-up scripts."""
        return self.wait_until(self.is_ready, timeout)


def _not_found(name: str, version: int | None) -> NotFound:
    """TF Serving's words for a model or version that does not exist."""
    if version is None:
        return NotFound(f"Servable not found for request: Latest({name})")
    return NotFound(f"Servable not found for request: Specific({name}, {version})")


def _not_serving(name: str, version: int | None, model: ModelDecision) -> Exception:
    """503 for a version on its way (worth a retry), 404 for one that will not come by waiting."""
    wanted = max(model.loading, default=None) if version is None else version
    if wanted in model.loading:
        return Unavailable(f"Model {name} is loading: version {wanted} {model.loading[wanted]}")
    return _not_found(name, version)


def batching_enabled(settings: Settings, model: ModelConfig) -> bool:
    """Whether ``model`` is batched: its own ``batching`` wins over the server's ``enable_batching``."""
    return settings.enable_batching if model.batching is None else model.batching is not False
