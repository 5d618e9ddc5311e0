"""``LoaderHarness``: one version under management — its loader, state, servable and handles."""

from __future__ import annotations

import threading
from typing import Any

from tfaas.core.aspired_version_policy import HarnessState, VersionSnapshot
from tfaas.core.loader import Loader
from tfaas.core.servable_id import ServableId


class LoaderHarness:
    """Holds one version's loader and tracks the requests that use its servable.

    The manager changes ``state`` under its own lock; the handle count has a lock of its own so that
    requests never take the manager's lock.
    """

    def __init__(self, id: ServableId, loader: Loader) -> None:
        self.id = id
        self.loader = loader
        self.state = HarnessState.NEW
        self.is_aspired = True
        self.servable: Any = None
        self.error: str | None = None
        self.failed_attempts = 0
        self.retry_at = 0.0
        self._handles = 0
        self._draining = False
        self._cond = threading.Condition(threading.Lock())

    def snapshot(self) -> VersionSnapshot:
        """What the swap policy sees of this version."""
        return VersionSnapshot(self.id.version, self.state, self.is_aspired)

    def acquire(self) -> bool:
        """Take a handle for one request; False once the version has started draining."""
        with self._cond:
            if self._draining or self.servable is None:
                return False
            self._handles += 1
            return True

    def release(self) -> None:
        """Give back a handle taken by ``acquire``."""
        with self._cond:
            self._handles -= 1
            if self._handles == 0:
                self._cond.notify_all()

    def drain(self) -> None:
        """Refuse new handles and wait until every request holding one has finished.

        NOTE: the caller removes the version from the serving map first, so a request that is
        refused here finds the map already updated when it looks again.
        """
        with self._cond:
            self._draining = True
            while self._handles:
                self._cond.wait()

    @property
    def handles(self) -> int:
        """How many requests hold this version right now."""
        with self._cond:
            return self._handles
