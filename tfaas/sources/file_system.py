"""``FileSystemStoragePathSource``: aspires the version directories found under each model's base path.

Compatible with TF Serving's source of the same name (numeric version directories, leading zeros
allowed, version policies, an empty list for a base path without versions, nothing at all for a
missing base path), with three additions against its best-known pain points:

- *Completeness*: a version directory is a candidate only once its graph file and every variables
  shard named by its index are present (a half-uploaded SavedModel is never loaded).
- *Settling*: a complete directory is aspired only once nothing in it changed (``st_ctime``) for
  ``settle_seconds``, so a copy that is still writing files is never loaded.
- *Watching*: inotify events (watchdog) trigger a poll at once; periodic polling remains as the
  fallback for lost events and for network file systems that send none.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Sequence

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from tfaas.core.servable_id import ServableId
from tfaas.core.source import AspiredVersion, AspiredVersionsCallback
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.logs import servable_fields

logger = logging.getLogger("tfaas.sources")

_VERSION_DIR_NAME = re.compile(r"[0-9]+")
# NOTE: versions are int64 in TF Serving's protos; a longer number is not a version there either.
_MAX_VERSION = 2**63 - 1
_GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt", "model.pb")
_MODEL_PARTS = frozenset(
    {
        "variables",
        "assets",
        "assets.extra",
        "fingerprint.pb",
        "keras_metadata.pb",
        "params.json",
        "labels.txt",
    }
)
"""What a model directory may hold before its graph file arrives: such a directory is still being copied."""
_VARIABLES_SHARD = re.compile(r"variables\.data-([0-9]{5,})-of-([0-9]{5,})")

_EVENT_DEBOUNCE_SECONDS = 0.05
"""A poll runs this long after the last of a burst of events..."""
_EVENT_MAX_DELAY_SECONDS = 0.5
"""...but no later than this after the first one, so a long copy still gets polled now and then."""
_SETTLE_SLACK_SECONDS = 0.01
"""The settle poll runs this much after the settle instant, so the directory is settled by then."""
_JOIN_SECONDS = 5.0
"""How long ``stop`` waits for each thread."""
_CONFIG_APPLY_WAIT_SECONDS = 30.0
"""How long ``update_config`` waits for the poll thread to apply a new servable set."""

# NOTE: no opened/closed-without-write events (the loaders reading a model, and the source's own
# directory walks, must not trigger polls), no per-write modified events (every write ends with
# FileClosedEvent, which is enough).
_BASE_PATH_EVENTS: list[type[FileSystemEvent]] = [
    DirCreatedEvent,
    FileCreatedEvent,
    DirDeletedEvent,
    FileDeletedEvent,
    DirMovedEvent,
    FileMovedEvent,
    DirModifiedEvent,
    FileClosedEvent,
]
# NOTE: a missing base path can only appear by being created or moved (or symlinked) into place.
_ANCESTOR_EVENTS: list[type[FileSystemEvent]] = [
    DirCreatedEvent,
    FileCreatedEvent,
    DirMovedEvent,
    FileMovedEvent,
]


@dataclass(frozen=True)
class ServableSourceConfig:
    """One model the source watches: its name, its base path and which of its versions to serve.

    ``settle_seconds`` overrides the source's default for this model (``None`` keeps the default).
    ``removable``: the base path may be removed on purpose (a model of the model repository, deleted),
    so its absence is logged at INFO rather than as TF Serving's error.
    """

    name: str
    base_path: str
    version_policy: ServableVersionPolicy = field(default_factory=ServableVersionPolicy)
    settle_seconds: float | None = None
    removable: bool = False

    def __post_init__(self) -> None:
        """Reject a config that cannot work, when it is built rather than at the first poll."""
        if not self.name:
            raise ValueError("A servable needs a name")
        if not self.base_path:
            raise ValueError(f"Servable {self.name} needs a base path")
        if self.settle_seconds is not None and self.settle_seconds < 0:
            raise ValueError(f"settle_seconds of servable {self.name} must be >= 0: {self.settle_seconds}")


@dataclass(frozen=True)
class BasePathStatus:
    """What the last poll found under one model's base path: tells a model whose version is on its way
    (503, worth a retry) from one that has none (404), and says why a model does not serve."""

    base_path: str
    problem: str = ""
    """Why the base path could not be read (``"does not exist"``...); empty when it could."""
    versions: tuple[int, ...] = ()
    """The version directories found, highest first."""
    waiting: Mapping[int, str] = field(default_factory=dict)
    """The versions the policy will aspire once complete and settled, each with why it is not yet."""

    def describe(self) -> str:
        """Why no version of the model is aspired, as far as the disk tells: a waiting version first."""
        if self.waiting:
            version = max(self.waiting)
            return f"version {version} {self.waiting[version]}"
        if self.problem:
            return f"base path {self.base_path} {self.problem}"
        if not self.versions:
            return f"no version found under {self.base_path}"
        return f"no version under {self.base_path} is selected by its version policy (found {list(self.versions)})"


class _VersionDir(NamedTuple):
    """One version directory found under a base path."""

    version: int
    name: str
    """The directory's real name (``00000123`` for version 123)."""
    inode: int


@dataclass
class _ServableState:
    """What the poll thread remembers about one model between polls."""

    config: ServableSourceConfig
    base: str
    """The base path, absolute."""
    settle_seconds: float
    last_emitted: tuple[AspiredVersion, ...] | None = None
    base_missing: bool = False
    settled: dict[str, int] = field(default_factory=dict)
    """Version directory name -> inode, for the directories already found settled (never re-walked)."""
    observed: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    """Version directory name -> (inode, newest ctime, clock time it was first seen), while unsettled."""
    reported: dict[str, int] = field(default_factory=dict)
    """Messages logged by the previous poll (message -> level)."""
    status: BasePathStatus | None = None
    """What the last poll found (``None`` before the first); replaced whole, read by other threads."""

    def forget_versions_except(self, names: set[str]) -> None:
        """Drop the settle bookkeeping of version directories that disappeared."""
        for cache in (self.settled, self.observed):
            for name in [n for n in cache if n not in names]:
                del cache[name]

    def forget_version(self, name: str) -> None:
        """Drop the settle bookkeeping of one version directory (it became incomplete)."""
        self.settled.pop(name, None)
        self.observed.pop(name, None)

    def settle_time(self, version_dir: _VersionDir, now: float) -> float:
        """The ``clock`` time at which a complete version directory is settled (``<= now``: it is).

        Settled means nothing in it changed (``st_ctime``) for ``settle_seconds``. The result is cached
        per directory name and inode, so a settled directory is walked once, not at every poll.
        """
        name, inode = version_dir.name, version_dir.inode
        if self.settled.get(name) == inode:
            return -math.inf
        try:
            newest = _newest_ctime(os.path.join(self.base, name))
        except OSError:
            newest = now  # NOTE: something vanished during the walk: it is still changing.
        seen = self.observed.get(name)
        if seen is None or seen[:2] != (inode, newest):
            seen = (inode, newest, now)
            self.observed[name] = seen
        # NOTE: a ctime in the future (a file server's clock ahead of ours) would never be "old enough":
        # then the directory settles once its newest ctime has stayed the same for ``settle`` of our seconds.
        settle_at = min(newest, seen[2]) + self.settle_seconds
        if settle_at <= now:
            self.settled[name] = inode
            self.observed.pop(name, None)
        return settle_at

    def report(self, notes: dict[str, int]) -> None:
        """Log this poll's messages, except those the previous poll already logged.

        Polls run every second or so; logging the same missing base path or incomplete version at each of
        them would bury everything else.
        """
        for message, level in notes.items():
            if message not in self.reported:
                logger.log(level, "%s", message, extra=servable_fields(self.config.name))
        self.reported = notes


class _Handler(FileSystemEventHandler):
    """Forwards watchdog events to a function (runs on watchdog's thread: it must stay cheap)."""

    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        super().__init__()
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Forward the event."""
        self._on_event(event)


@dataclass
class _Watch:
    """One scheduled watch, shared by the servables that need it."""

    watch: ObservedWatch | None
    """``None`` when scheduling failed: those servables rely on polling."""
    inode: int
    owners: set[str] = field(default_factory=set)


class _Watches:
    """The watches of one source: each servable holds one (its base path, or the nearest existing ancestor).

    Watches are keyed by ``(path, recursive)`` because watchdog shares one emitter per key; a watch
    is rescheduled when its directory was replaced (another inode), since the old one died with it.
    Used by the poll thread only.
    """

    def __init__(self, observer: BaseObserver, base_handler: _Handler, ancestor_handler: _Handler) -> None:
        self._observer = observer
        self._base_handler = base_handler
        self._ancestor_handler = ancestor_handler
        self._watches: dict[tuple[str, bool], _Watch] = {}
        self._held: dict[str, tuple[str, bool]] = {}

    def hold(self, owner: str, path: str, recursive: bool, inode: int) -> None:
        """Make ``owner`` hold a watch on ``path`` (recursive for a base path), releasing its previous one."""
        key = (path, recursive)
        if self._held.get(owner) != key:
            self.release(owner)
        entry = self._watches.get(key)
        if entry is None or entry.inode != inode:
            owners: set[str] = set()
            if entry is not None:
                # NOTE: the directory was replaced: its watch died with the old one, for every owner.
                self._unschedule(entry)
                owners = entry.owners
            entry = _Watch(self._schedule(path, recursive), inode, owners)
            self._watches[key] = entry
        entry.owners.add(owner)
        self._held[owner] = key

    def release(self, owner: str) -> None:
        """Release ``owner``'s watch; unschedule it once nobody holds it."""
        key = self._held.pop(owner, None)
        entry = self._watches.get(key) if key is not None else None
        if entry is None:
            return
        entry.owners.discard(owner)
        if not entry.owners:
            del self._watches[key]
            self._unschedule(entry)

    def _schedule(self, path: str, recursive: bool) -> ObservedWatch | None:
        """Start watching ``path``; ``None`` (logged) if the system refuses."""
        handler = self._base_handler if recursive else self._ancestor_handler
        events = _BASE_PATH_EVENTS if recursive else _ANCESTOR_EVENTS
        try:
            return self._observer.schedule(handler, path, recursive=recursive, event_filter=events)
        except OSError as error:
            # NOTE: e.g. the inotify watch or instance limit; polling still finds every change.
            logger.error("Cannot watch %s for changes (%s); relying on polling for it", path, error)
            return None

    def _unschedule(self, entry: _Watch) -> None:
        """Stop a watch, if it was ever started."""
        if entry.watch is None:
            return
        with contextlib.suppress(KeyError):  # NOTE: the observer already dropped it (stopped).
            self._observer.unschedule(entry.watch)


class FileSystemStoragePathSource:
    """Polls (and watches) each model's base path and emits its complete, settled, policy-selected versions.

    The aspired-versions callback runs on the source's poll thread (and on the caller's thread for the
    first poll, inside ``start``), never concurrently with itself. For each model it gets the full
    list, highest version first, whenever that list changed, and at the first poll for every model
    whose base path exists.
    """

    def __init__(
        self,
        servables: Sequence[ServableSourceConfig],
        poll_wait_seconds: float = 1.0,
        settle_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Configure the source; nothing is read from disk before ``start``.

        ``poll_wait_seconds``: period of the fallback poll; 0 polls once at start, a negative value never
        polls periodically (watch events still trigger polls). ``settle_seconds``: how long nothing in a
        version directory must have changed before it is aspired. ``clock``: wall-clock time, compared
        with file ctimes.
        """
        if settle_seconds < 0:
            raise ValueError(f"settle_seconds must be >= 0, not {settle_seconds}")
        self._poll_wait_seconds = poll_wait_seconds
        self._settle_seconds = settle_seconds
        self._clock = clock
        self._callback: AspiredVersionsCallback | None = None
        self._states: dict[str, _ServableState] = _restate({}, _validated(servables), settle_seconds)[0]
        self._missing_bases: frozenset[str] = frozenset()
        self._cond = threading.Condition()
        # NOTE: the fields below are guarded by ``_cond``; states and watches belong to the poll thread.
        self._started = False
        self._stopping = False
        self._pending: dict[str, ServableSourceConfig] | None = None
        self._requested_generation = 0
        self._applied_generation = 0
        self._periodic_due: float | None = None
        self._settle_due: float | None = None
        self._event_due: float | None = None
        self._first_event: float | None = None
        self._observer: BaseObserver | None = None
        self._watches: _Watches | None = None
        self._thread: threading.Thread | None = None

    def set_aspired_versions_callback(self, callback: AspiredVersionsCallback) -> None:
        """Connect the source to its target (normally the manager); call before ``start``."""
        self._callback = callback

    def start(self) -> None:
        """Poll once, synchronously (the caller then knows the initial versions), then watch and poll."""
        with self._cond:
            if self._callback is None:
                raise RuntimeError("set_aspired_versions_callback must be called before start")
            if self._started:
                raise RuntimeError("FileSystemStoragePathSource already started")
            self._started = True
        self._start_observer()
        self._poll_and_reschedule()
        self._thread = threading.Thread(target=self._run, name="tfaas-fs-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and watching; waits a bounded time for the threads to end."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_SECONDS)
            if thread.is_alive():
                logger.warning("The file-system poll thread did not stop within %s s", _JOIN_SECONDS)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(_JOIN_SECONDS)

    def update_config(self, servables: Sequence[ServableSourceConfig]) -> None:
        """Replace the set of watched models.

        A model left out gets an empty aspired list at once (which unloads it); new ones are polled at once.
        Once started, this returns after the poll thread applied the change (bounded wait), except when
        called from the callback itself.
        """
        configs = _validated(servables)
        with self._cond:
            if not self._started:
                # NOTE: nothing was emitted yet, so nothing to unaspire; the first poll does the rest.
                self._states = _restate(self._states, configs, self._settle_seconds)[0]
                return
            self._pending = configs
            self._requested_generation += 1
            generation = self._requested_generation
            self._cond.notify_all()
            if threading.current_thread() is self._thread:
                return
            applied = self._cond.wait_for(
                lambda: self._applied_generation >= generation or self._stopping, _CONFIG_APPLY_WAIT_SECONDS
            )
        if not applied:
            logger.warning("New servable set not applied after %s s; it will be", _CONFIG_APPLY_WAIT_SECONDS)

    def base_path_status(self, name: str) -> BasePathStatus | None:
        """What the last poll found for model ``name`` (``None``: not a model of this source, or not polled yet)."""
        state = self._states.get(name)  # NOTE: no lock: the dict and each status are replaced whole
        return state.status if state is not None else None

    # --- Threads and scheduling -------------------------------------------------------------------

    def _start_observer(self) -> None:
        """Start watchdog's observer; without one the source still works, by polling only."""
        observer = Observer()
        try:
            observer.start()
        except (OSError, RuntimeError) as error:
            logger.error("Cannot watch the file system (%s); relying on polling only", error)
            return
        self._observer = observer
        self._watches = _Watches(observer, _Handler(self._on_base_event), _Handler(self._on_ancestor_event))

    def _run(self) -> None:
        """The poll thread: poll whenever a poll is due, until ``stop``."""
        while self._wait_until_due():
            self._poll_and_reschedule()

    def _wait_until_due(self) -> bool:
        """Block until a poll is due; ``False`` once ``stop`` was called."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                due = self._next_due()
                if due is not None and due <= now:
                    # NOTE: cleared before the poll, so events arriving during it trigger another one.
                    self._event_due = self._first_event = None
                    return True
                self._cond.wait(None if due is None else due - now)
            return False

    def _next_due(self) -> float | None:
        """When the next poll is due (``time.monotonic``), or ``None`` when none is scheduled."""
        if self._pending is not None:
            return -math.inf
        dues = [d for d in (self._periodic_due, self._settle_due, self._event_due) if d is not None]
        return min(dues, default=None)

    def _request_poll(self) -> None:
        """Schedule a poll soon, coalescing bursts of events (called on watchdog's thread)."""
        now = time.monotonic()
        with self._cond:
            if self._first_event is None:
                self._first_event = now
            self._event_due = min(now + _EVENT_DEBOUNCE_SECONDS, self._first_event + _EVENT_MAX_DELAY_SECONDS)
            self._cond.notify_all()

    def _on_base_event(self, event: FileSystemEvent) -> None:
        """Anything that changed under a base path may change its versions: poll."""
        self._request_poll()

    def _on_ancestor_event(self, event: FileSystemEvent) -> None:
        """Poll when a directory on the way to a missing base path appeared."""
        # NOTE: an ancestor may be a busy directory such as /tmp: only paths leading to a missing base count.
        paths = [os.fsdecode(p) for p in (event.src_path, event.dest_path) if p]
        if any(_leads_to(path, base) for path in paths for base in self._missing_bases):
            self._request_poll()

    def _poll_and_reschedule(self) -> None:
        """Poll every model, then schedule the next periodic and settle polls."""
        with self._cond:
            pending, generation = self._pending, self._requested_generation
            self._pending = None
        try:
            settle_at = self._poll(pending)
        except Exception:  # NOTE: a bug must not kill the poll thread; the next poll tries again.
            logger.exception("File-system poll failed")
            settle_at = None
        settle_delay = None if settle_at is None else settle_at - self._clock() + _SETTLE_SLACK_SECONDS
        with self._cond:
            now = time.monotonic()
            self._periodic_due = now + self._poll_wait_seconds if self._poll_wait_seconds > 0 else None
            self._settle_due = None if settle_delay is None else now + max(0.0, settle_delay)
            self._applied_generation = max(self._applied_generation, generation)
            self._cond.notify_all()

    # --- Polling ----------------------------------------------------------------------------------

    def _poll(self, pending: dict[str, ServableSourceConfig] | None) -> float | None:
        """Apply a pending servable set, poll every model; return the earliest pending settle time."""
        if pending is not None:
            self._apply_config(pending)
        now = self._clock()
        settle_times = []
        for state in list(self._states.values()):
            if self._stopping:
                break
            settle_at = self._poll_servable(state, now)
            if settle_at is not None:
                settle_times.append(settle_at)
        return min(settle_times, default=None)

    def _apply_config(self, configs: dict[str, ServableSourceConfig]) -> None:
        """Switch to a new servable set: unaspire the removed models and drop their watches."""
        self._states, removed = _restate(self._states, configs, self._settle_seconds)
        self._refresh_missing_bases()
        for state in removed:
            if self._watches is not None:
                self._watches.release(state.config.name)
            logger.info(
                "Servable %s was removed from the configuration; unaspiring it",
                state.config.name,
                extra=servable_fields(state.config.name),
            )
            self._deliver(state.config.name, [])

    def _poll_servable(self, state: _ServableState, now: float) -> float | None:
        """Poll one model and emit its aspired versions if they changed; return its earliest settle time."""
        notes: dict[str, int] = {}
        aspired, settle_at, status = self._scan(state, now, notes)
        state.report(notes)
        if aspired is not None:
            self._emit(state, aspired)
        # NOTE: after the emit, so a version leaves ``waiting`` only once the manager has it.
        state.status = status
        return settle_at

    def _scan(
        self, state: _ServableState, now: float, notes: dict[str, int]
    ) -> tuple[tuple[AspiredVersion, ...] | None, float | None, BasePathStatus]:
        """One model's aspired versions (``None``: base path unusable), its earliest settle time, and what
        was found."""
        name, base = state.config.name, state.base
        if not self._locate_base(state, notes):
            return None, None, BasePathStatus(base, "is not a directory" if os.path.exists(base) else "does not exist")
        try:
            versions = _version_dirs(base, name, notes)
        except OSError as error:
            if isinstance(error, FileNotFoundError) and state.config.removable:
                notes[_removal(state)] = logging.INFO  # NOTE: removed between the stat and the listing
            else:
                notes[f"Could not list base path {base} for servable {name}: {error}"] = logging.ERROR
            return None, None, BasePathStatus(base, f"cannot be listed: {error}")
        if not versions:
            notes[
                f"No versions of servable {name} found under base path {base}. "
                "Did you forget to name your leaf directory as a number (eg. '/1/')?"
            ] = logging.WARNING
        state.forget_versions_except({v.name for v in versions})
        ready: dict[int, str] = {}
        waiting: dict[int, str] = {}
        settle_times = []
        for version_dir in versions:
            ready_at = _ready_at(state, version_dir, now, notes, waiting)
            if ready_at is None:
                continue
            if ready_at <= now:
                ready[version_dir.version] = os.path.join(base, version_dir.name)
            else:
                settle_times.append(ready_at)
        policy = state.config.version_policy
        selected = policy.select(ready)
        aspired = tuple(AspiredVersion(ServableId(name, v), ready[v]) for v in selected)
        coming = set(policy.select([*ready, *waiting]))
        status = BasePathStatus(
            base, versions=tuple(v.version for v in versions), waiting={v: w for v, w in waiting.items() if v in coming}
        )
        return aspired, min(settle_times, default=None), status

    def _locate_base(self, state: _ServableState, notes: dict[str, int]) -> bool:
        """Watch the base path if it is a directory (else its nearest existing ancestor); ``False`` if not."""
        name, base = state.config.name, state.base
        try:
            info = os.stat(base)
            is_dir = stat.S_ISDIR(info.st_mode)
        except OSError:
            info, is_dir = None, False
        if state.base_missing != (not is_dir):
            state.base_missing = not is_dir
            self._refresh_missing_bases()
        if is_dir:
            self._hold_watch(name, base, True, info.st_ino)
            return True
        if info is None and state.config.removable:
            notes[_removal(state)] = logging.INFO
        else:
            suffix = ": not a directory" if info is not None else ""
            notes[f"Could not find base path {base} for servable {name}{suffix}"] = logging.ERROR
        ancestor = _nearest_directory(os.path.dirname(base))
        self._hold_watch(name, ancestor[0], False, ancestor[1])
        # NOTE: what was created between the stat and the watch sent no event to it: look again next poll.
        if _nearest_directory(base) != ancestor:
            self._request_poll()
        return False

    def _hold_watch(self, owner: str, path: str, recursive: bool, inode: int) -> None:
        """Make a servable hold a watch, when watching works at all."""
        if self._watches is not None:
            self._watches.hold(owner, path, recursive, inode)

    def _refresh_missing_bases(self) -> None:
        """Recompute the base paths the ancestor watches wait for."""
        # NOTE: replaced as a whole, so watchdog's thread always reads a consistent set without a lock.
        self._missing_bases = frozenset(s.base for s in self._states.values() if s.base_missing)

    # --- Emitting ---------------------------------------------------------------------------------

    def _emit(self, state: _ServableState, aspired: tuple[AspiredVersion, ...]) -> None:
        """Send a model's aspired versions if they differ from the last ones sent (or none were sent yet)."""
        if aspired == state.last_emitted:
            return
        name = state.config.name
        logger.info(
            "Servable %s: aspiring versions %s (%s)",
            name,
            [a.id.version for a in aspired],
            ", ".join(a.path for a in aspired) or "none",
            extra=servable_fields(name),
        )
        if self._deliver(name, list(aspired)):
            state.last_emitted = aspired

    def _deliver(self, name: str, aspired: list[AspiredVersion]) -> bool:
        """Call the callback; ``False`` if it raised (the next poll sends the list again)."""
        if self._stopping or self._callback is None:
            return False
        try:
            self._callback(name, aspired)
        except Exception:
            logger.exception("The aspired-versions callback failed for servable %s", name, extra=servable_fields(name))
            return False
        return True


# --- Pure helpers -----------------------------------------------------------------------------------


def _validated(servables: Sequence[ServableSourceConfig]) -> dict[str, ServableSourceConfig]:
    """Index the servable configs by name; two with one name is a configuration error."""
    configs: dict[str, ServableSourceConfig] = {}
    for config in servables:
        if config.name in configs:
            raise ValueError(f"Servable {config.name} is configured twice")
        configs[config.name] = config
    return configs


def _restate(
    states: dict[str, _ServableState], configs: dict[str, ServableSourceConfig], settle_seconds: float
) -> tuple[dict[str, _ServableState], list[_ServableState]]:
    """The states for a new servable set (kept for unchanged configs), and the states of removed models.

    A model whose config changed starts afresh, so its next poll emits its list even if it is unchanged.
    """
    new_states = {}
    for name, config in configs.items():
        old = states.get(name)
        if old is not None and old.config == config:
            new_states[name] = old
        else:
            settle = settle_seconds if config.settle_seconds is None else config.settle_seconds
            new_states[name] = _ServableState(config, os.path.abspath(config.base_path), settle)
    removed = [state for name, state in states.items() if name not in configs]
    return new_states, removed


def _removal(state: _ServableState) -> str:
    """The note for a removable servable whose base path is gone: news, not an error."""
    return f"Base path {state.base} of servable {state.config.name} was removed"


def _leads_to(path: str, base: str) -> bool:
    """Whether ``path`` is ``base`` or one of its ancestors."""
    return base == path or base.startswith(path.rstrip(os.sep) + os.sep)


def _nearest_directory(path: str) -> tuple[str, int]:
    """The deepest existing directory among ``path`` and its ancestors, with its inode."""
    while True:
        try:
            info = os.stat(path)
            if stat.S_ISDIR(info.st_mode):
                return path, info.st_ino
        except OSError:
            pass
        parent = os.path.dirname(path)
        if parent == path:
            return path, 0
        path = parent


def _version_dirs(base: str, name: str, notes: dict[str, int]) -> list[_VersionDir]:
    """The version directories under ``base``, highest version first.

    Only all-digit directory names count; for duplicates (``1`` and ``001``) one is used, with a warning.
    """
    found: dict[int, list[tuple[str, int]]] = {}
    with os.scandir(base) as entries:
        for entry in entries:
            if not _VERSION_DIR_NAME.fullmatch(entry.name) or int(entry.name) > _MAX_VERSION:
                continue
            try:
                # NOTE: follows symlinks, so a version directory may be a link to the real one.
                info = entry.stat()
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                found.setdefault(int(entry.name), []).append((entry.name, info.st_ino))
    versions = []
    for version, candidates in sorted(found.items(), reverse=True):
        # NOTE: deterministic choice: the canonical spelling if present, else the first name.
        chosen = min(candidates, key=lambda c: (c[0] != str(version), c[0]))
        if len(candidates) > 1:
            names = sorted(c[0] for c in candidates)
            notes[
                f"Duplicate version directories detected for servable {name} version {version}: {names}; "
                f"using {chosen[0]}"
            ] = logging.WARNING
        versions.append(_VersionDir(version, *chosen))
    return versions


def version_paths(base: str) -> dict[int, str]:
    """The version directories under ``base`` as the source reads them (version -> path, highest first);
    empty when ``base`` cannot be listed. For estimates made before the source runs (worker memory)."""
    try:
        return {v.version: os.path.join(base, v.name) for v in _version_dirs(base, base, {})}
    except OSError:
        return {}


def _ready_at(
    state: _ServableState, version_dir: _VersionDir, now: float, notes: dict[str, int], waiting: dict[int, str]
) -> float | None:
    """When a version directory is (or will be) settled, by ``clock``; ``None`` while it is incomplete.

    A version that is not ready yet is added to ``waiting``, with why.
    """
    name, path = state.config.name, os.path.join(state.base, version_dir.name)
    described = f"Version {version_dir.version} of servable {name} at {path}"
    try:
        missing = _incompleteness(path)
    except OSError as error:
        missing = f"unreadable ({error})"
    if missing is not None:
        state.forget_version(version_dir.name)
        notes[f"{described} is incomplete: {missing}"] = logging.INFO
        waiting[version_dir.version] = f"is incomplete: {missing}"
        return None
    settle_at = state.settle_time(version_dir, now)
    if settle_at > now:
        notes[f"{described} is still changing; waiting for it to settle"] = logging.INFO
        waiting[version_dir.version] = "is still changing"
    return settle_at


def _incompleteness(version_dir: str) -> str | None:
    """What is still missing from a version directory, or ``None`` when it is a complete model."""
    if not any(os.path.isfile(os.path.join(version_dir, f)) for f in _GRAPH_FILES):
        if set(os.listdir(version_dir)) - _MODEL_PARTS:
            # NOTE: something that is not a model mid-copy (a legacy export, say): aspire it once
            # settled, so that its load fails and the error shows in the status, not silence.
            return None
        return f"none of {', '.join(_GRAPH_FILES)}"
    variables = os.path.join(version_dir, "variables")
    if not os.path.isdir(variables):
        return None
    names = os.listdir(variables)
    if "variables.index" not in names:
        return "variables/ has no variables.index"
    shards: dict[int, set[int]] = {}
    for file_name in names:
        match = _VARIABLES_SHARD.fullmatch(file_name)
        if match:
            shards.setdefault(int(match[2]), set()).add(int(match[1]))
    if not shards:
        return "variables/ has no variables.data-* shard"
    for count, present in sorted(shards.items()):
        absent = sorted(set(range(count)) - present)
        if absent:
            return f"variables/ lacks shard(s) {absent} of {count}"
    return None


def _newest_ctime(path: str) -> float:
    """The newest ``st_ctime`` of a directory and everything in it (symlinks are not followed inside)."""
    newest = os.stat(path).st_ctime
    pending = [path]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                newest = max(newest, entry.stat(follow_symlinks=False).st_ctime)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return newest
