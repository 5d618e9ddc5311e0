"""``ServedModels``: which models the server serves, and which of their versions it aspires.

The model list is the configured models (the settings, a model config file reloaded on SIGHUP or when
it changes) plus the model repository's (a configured model wins a name clash), less the models unloaded
by name (the Open Inference Protocol's repository unload) until they are loaded again. The filesystem source
watches their base paths and applies each model's version policy. This is the one place that reads the
disk for the lifecycle: it runs once per server, in the coordinator, so every worker follows one scan.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Collection, Mapping, Sequence

from tfaas.config import ModelConfig, Settings, model_list_file, reload_models
from tfaas.core.source import AspiredVersionsCallback
from tfaas.errors import ConfigError
from tfaas.file_poller import FilePoller
from tfaas.model_repository import ModelRepository
from tfaas.sources.file_system import BasePathStatus, FileSystemStoragePathSource, ServableSourceConfig

log = logging.getLogger("tfaas.server_core")


class ServedModels:
    """The model list and its source; calls ``on_models(self)`` when the list changed (before the source
    reads the new models' base paths), ``on_aspired`` with each model's aspired versions."""

    def __init__(
        self,
        settings: Settings,
        on_aspired: AspiredVersionsCallback,
        on_models: Callable[[ServedModels], None],
        repository_models_at_start: Collection[str] | None = None,
    ) -> None:
        """``repository_models_at_start``: the model repository's models when the server started, which
        readiness waits for (default: those there now)."""
        self.settings = settings
        self._on_models = on_models
        self.models: Mapping[str, ModelConfig] = {}
        self.unloaded: frozenset[str] = frozenset()
        """Models of the list withheld from serving by name (:meth:`set_loaded`)."""
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
        self._source.set_aspired_versions_callback(on_aspired)
        self._started = False
        self._pollers = [p for p in (_config_poller(settings, self.reload_config), self._repository_poller()) if p]
        if repository_models_at_start is None:
            repository_models_at_start = [m.name for m in self.repository.model_configs()] if self.repository else []
        self._repository_at_start = frozenset(repository_models_at_start)
        self._apply(settings.models)

    def start(self) -> None:
        """Read the base paths (the first scan aspires versions), then watch them and the model list."""
        self._source.start()
        for poller in self._pollers:
            poller.start()
        self._started = True

    def stop(self) -> None:
        """Stop watching."""
        if self._started:
            for poller in self._pollers:
                poller.stop()
            self._source.stop()

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
        self._apply(models)
        log.info("Model config reloaded: %d configured models", len(models))
        return True

    def set_config(self, models: Sequence[ModelConfig]) -> None:
        """Serve ``models`` as the configured models from now on, in place of the model config file's (TF
        Serving's ``HandleReloadConfigRequest``): new models load, those left out unload. The file is read
        again only when it changes or on SIGHUP."""
        self._apply(models)
        log.info("Model config set by a reload request: %d configured models", len(models))

    def refresh_repository(self) -> None:
        """Serve the models now in the model repository (called on its changes, and after uploads)."""
        self._apply(self._configured)

    def set_loaded(self, name: str, loaded: bool) -> bool:
        """Serve ``name`` again (``loaded``), or withhold it from the served list until then: its versions
        unload, and it no longer counts for readiness. The model repository is read afresh first, so a model
        copied into it a moment ago serves at once. False (and nothing changes) when ``name`` is neither a
        configured model nor in the model repository.

        NOTE: a withheld model stays withheld across config reloads and repository changes; it is forgotten
        once it leaves both lists."""
        if name not in self._known(self._configured):
            return False
        with self._apply_lock:
            self.unloaded = self.unloaded - {name} if loaded else self.unloaded | {name}
        self._apply(self._configured)
        return True

    @property
    def readiness_models(self) -> list[str]:
        """The models readiness waits for, sorted: the configured ones, and the model repository's that
        were there when the server started. A model uploaded since never makes the server unready."""
        configured = {m.name for m in self._configured}
        return sorted(n for n in self.models if n in configured or n in self._repository_at_start)

    def base_path_status(self, name: str) -> BasePathStatus | None:
        """What the source last found under the base path of ``name`` (None before its first read)."""
        return self._source.base_path_status(name)

    def _repository_poller(self) -> FilePoller | None:
        if self.repository is None:
            return None
        # NOTE: adding or removing a model directory changes the root's mtime; versions inside a
        # model are the filesystem source's business.
        return FilePoller(
            str(self.repository.root), max(self.settings.file_system_poll_wait_seconds, 0.5), self.refresh_repository
        )

    def _known(self, configured: Sequence[ModelConfig]) -> dict[str, ModelConfig]:
        """``configured`` plus the repository's models (a configured model wins a name clash)."""
        models = {m.name: m for m in (self.repository.model_configs() if self.repository else ())}
        models.update((m.name, m) for m in configured)
        return models

    def _apply(self, configured: Sequence[ModelConfig]) -> None:
        """Serve ``configured`` plus the repository's models, less the unloaded ones."""
        with self._apply_lock:
            known = self._known(configured)
            self._configured = tuple(configured)
            # NOTE: a model deleted from the repository and uploaded again is an upload like any other.
            self._repository_at_start &= known.keys()
            unloaded = self.unloaded & known.keys()
            models = {name: model for name, model in known.items() if name not in unloaded}
            if models == self.models and unloaded == self.unloaded:
                return
            added, removed = sorted(models.keys() - self.models.keys()), sorted(self.models.keys() - models.keys())
            self.models, self.unloaded = models, unloaded
            self._on_models(self)
            self._source.update_config([_source_config(m, removable=m not in configured) for m in models.values()])
            if added or removed:
                log.info("Serving %d models (added %s, removed %s)", len(models), added, removed)


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
