"""``ServerCore``: one worker's whole serving pipeline, built from the settings.

It wires, as TF Serving's ServerCore does, the filesystem source to the manager through a loader
factory (the source adapter), keeps the state monitor that backs the status API, and resolves a
request's model spec (latest, a version, or a label) to a handle. It knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable, Collection, Mapping, Sequence

from tfaas.batching.loader import BatchingLoader
from tfaas.batching.parameters import BatchingParameters
from tfaas.config import ModelConfig, Settings, model_list_file, reload_models
from tfaas.core.loader import Loader, LoaderFactory
from tfaas.core.manager import AspiredVersionsManager, RetryPolicy
from tfaas.core.servable_handle import ServableHandle
from tfaas.core.servable_id import ServableId
from tfaas.core.source import AspiredVersion
from tfaas.core.state_monitor import ServableStateMonitor
from tfaas.core.states import EventBus, ServableState
from tfaas.errors import ConfigError, InvalidArgument, NotFound, Unavailable
from tfaas.file_poller import FilePoller
from tfaas.metrics import Metrics, default_metrics
from tfaas.model_repository import ModelRepository
from tfaas.servables import warmup
from tfaas.sources.file_system import FileSystemStoragePathSource, ServableSourceConfig

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


class ServerCore:
    """Source → manager → servables for the configured models, plus status and labels."""

    def __init__(
        self,
        settings: Settings,
        loader_factory: LoaderFactory = version_loader,
        metrics: Metrics | None = None,
        repository_models_at_start: Collection[str] | None = None,
    ) -> None:
        """``repository_models_at_start``: the model repository's models when the server started, which
        readiness waits for (default: those there now)."""
        self.settings = settings
        self.bus = EventBus()
        self.monitor = ServableStateMonitor(self.bus)
        self.metrics = metrics if metrics is not None else default_metrics()
        self.metrics.watch(self.bus)
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
        self._models: dict[str, ModelConfig] = {}
        self._configured: tuple[ModelConfig, ...] = ()
        self._apply_lock = threading.Lock()
        self.repository = (
            ModelRepository(settings.model_repository, settings.max_upload_bytes) if settings.model_repository else None
        )
        self._source = FileSystemStoragePathSource(
            [],
            poll_wait_seconds=settings.file_system_poll_wait_seconds,
            settle_seconds=settings.version_settle_seconds,
        )
        self._source.set_aspired_versions_callback(self._on_aspired_versions)
        self._started = threading.Event()
        self._pollers = [p for p in (_config_poller(settings, self.reload_config), self._repository_poller()) if p]
        if repository_models_at_start is None:
            repository_models_at_start = [m.name for m in self.repository.model_configs()] if self.repository else []
        self._repository_at_start = frozenset(repository_models_at_start)
        self._apply_models(settings.models)

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start loading: the manager's thread, then the source (whose first poll aspires versions)."""
        self.manager.start()
        self._source.start()
        for poller in self._pollers:
            poller.start()
        self._started.set()

    def stop(self) -> None:
        """Stop watching, then unload every version once its in-flight requests have finished."""
        if self._started.is_set():
            for poller in self._pollers:
                poller.stop()
            self._source.stop()
            self.manager.stop()
        self.monitor.close()

    def reload_config(self) -> bool:
        """Re-read the model list and apply it: new models load, removed ones unload, the others
        keep serving (a changed label or policy applies at once). A list that does not parse or
        validate is refused with a logged error, and the one in force stays."""
        try:
            models = reload_models(self.settings)
        except ConfigError as exc:
            log.error("Refusing the new model config, keeping the one in force: %s", exc)
            return False
        if models is None:  # NOTE: TF Serving's words; an editor's half-written file must not unload everything
            log.info("Taking no action for empty config %s", model_list_file(self.settings))
            return True
        self._apply_models(models)
        log.info("Model config reloaded: %d configured models", len(models))
        return True

    def refresh_repository(self) -> None:
        """Serve the models now in the model repository (called on its changes, and after uploads)."""
        self._apply_models(self._configured)

    def _repository_poller(self) -> FilePoller | None:
        if self.repository is None:
            return None
        # NOTE: adding or removing a model directory changes the root's mtime; versions inside a
        # model are the filesystem source's business.
        return FilePoller(
            str(self.repository.root), max(self.settings.file_system_poll_wait_seconds, 0.5), self.refresh_repository
        )

    def _apply_models(self, configured: Sequence[ModelConfig]) -> None:
        """Serve ``configured`` plus the repository's models (a configured model wins a name clash)."""
        with self._apply_lock:
            models = {m.name: m for m in (self.repository.model_configs() if self.repository else ())}
            models.update((m.name, m) for m in configured)
            self._configured = tuple(configured)
            # NOTE: a model deleted from the repository and uploaded again is an upload like any other.
            self._repository_at_start &= models.keys()
            if models == self._models:
                return
            added, removed = sorted(models.keys() - self._models.keys()), sorted(self._models.keys() - models.keys())
            self._models = models
            for model in models.values():
                self.manager.set_swap_policy(model.name, model.swap_policy)
            self._source.update_config([_source_config(m, removable=m not in configured) for m in models.values()])
            if added or removed:
                log.info("Serving %d models (added %s, removed %s)", len(models), added, removed)

    def _on_aspired_versions(self, name: str, versions: list[AspiredVersion]) -> None:
        self.manager.set_aspired_versions(name, [(v.id, self._loader(v)) for v in versions])

    def _loader(self, version: AspiredVersion) -> Loader:
        """The version's loader, behind a batching one when its model is batched."""
        loader = self._loader_factory(version.id, version.path)
        model = self._models.get(version.id.name)
        if model is None or not batching_enabled(self.settings, model):
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
        """The configured models, sorted."""
        return sorted(self._models)

    def get_handle(self, spec: ModelSpec) -> ServableHandle:
        """Resolve a request's model spec to a handle on a loaded version (release it when done)."""
        version = spec.version
        if spec.label is not None:
            version = self._label_version(spec.name, spec.label)
        try:
            return self.manager.get_handle(spec.name, version)
        except NotFound:
            # NOTE: a version on disk that will load once it is complete and settled (a copy in progress) is
            # worth a retry; a model with no such version is not, however long one waits.
            waiting = self._waiting_versions(spec.name)
            wanted = max(waiting, default=None) if version is None else version
            if wanted in waiting:
                raise Unavailable(f"Model {spec.name} is loading: version {wanted} {waiting[wanted]}") from None
            raise

    def _waiting_versions(self, name: str) -> Mapping[int, str]:
        status = self._source.base_path_status(name)
        return status.waiting if status is not None else {}

    def version_labels(self, name: str) -> Mapping[str, int]:
        """The labels configured for ``name`` (empty for an unknown model)."""
        model = self._models.get(name)
        return model.version_labels if model else {}

    def _label_version(self, name: str, label: str) -> int:
        labels = self.version_labels(name)
        if label not in labels:
            raise InvalidArgument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def version_states(self, name: str, version: int | None = None) -> list[ServableState]:
        """States for the status API: every known version of ``name`` (highest first), or one.

        Raises ``NotFound`` with TF Serving's messages for an unknown model or version.
        """
        states = self.monitor.version_states(name)
        if not states:
            raise NotFound(f"Could not find any versions of model {name}")
        if version is None:
            return list(states.values())
        if version not in states:
            raise NotFound(f"Could not find version {version} of model {name}")
        return [states[version]]

    @property
    def readiness_models(self) -> list[str]:
        """The models readiness waits for, sorted: the configured ones, and the model repository's that
        were there when the server started. A model uploaded since never makes the server unready."""
        configured = {m.name for m in self._configured}
        return sorted(n for n in self._models if n in configured or n in self._repository_at_start)

    def is_ready(self) -> bool:
        """True once every model readiness waits for has at least one AVAILABLE version.

        NOTE: takes no lock (``wait_until_ready`` calls it under the state monitor's).
        """
        return all(self.manager.available_versions(name) for name in self.readiness_models)

    def not_ready(self) -> dict[str, str]:
        """Each model readiness waits for that has no AVAILABLE version, with why (empty once ready)."""
        return {
            name: self._why_not_serving(name)
            for name in self.readiness_models
            if not self.manager.available_versions(name)
        }

    def _why_not_serving(self, name: str) -> str:
        """Why ``name`` has no AVAILABLE version: a version loading, one on its way, one that failed, or
        what the disk shows."""
        loading = self.manager.loading_versions(name)
        if loading:
            return f"version {loading[0]} is loading"
        status = self._source.base_path_status(name)
        if status is None:
            return "its base path has not been read yet"
        failed = [s for s in self.monitor.version_states(name).values() if s.error and s.id.version in status.versions]
        if failed and not status.waiting:
            return f"version {failed[0].id.version} failed to load: {failed[0].error}"
        return status.describe()

    def wait_until_ready(self, timeout: float) -> bool:
        """Block until ``is_ready()`` or ``timeout`` seconds; for tests and start-up scripts."""
        return self.monitor.wait_until(self.is_ready, timeout)


def batching_enabled(settings: Settings, model: ModelConfig) -> bool:
    """Whether ``model`` is batched: its own ``batching`` wins over the server's ``enable_batching``."""
    return settings.enable_batching if model.batching is None else model.batching is not False


def _source_config(model: ModelConfig, removable: bool) -> ServableSourceConfig:
    """What the source watches for ``model``; ``removable`` for the model repository's, which a delete removes."""
    return ServableSourceConfig(
        name=model.name,
        base_path=model.base_path,
        version_policy=model.version_policy,
        settle_seconds=model.settle_seconds,
        removable=removable,
    )


def _config_poller(settings: Settings, reload: Callable[[], bool]) -> FilePoller | None:
    """A poller of the model config file when one is configured and polling is on."""
    path = model_list_file(settings)
    if not path or settings.model_config_file_poll_wait_seconds <= 0:
        return None
    return FilePoller(path, settings.model_config_file_poll_wait_seconds, reload)
