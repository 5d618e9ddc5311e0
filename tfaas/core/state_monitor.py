"""``ServableStateMonitor``: the latest state of every version, kept from the event bus.

It backs the status API and lets callers wait for a state. Like TF Serving it remembers versions
that reached END (with their error, if any), so a failed load stays visible; unlike TF Serving it
forgets the oldest END entries beyond a bound, so a model updated every hour does not grow forever.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from tfaas.core.servable_id import ServableId
from tfaas.core.states import EventBus, ManagerState, ServableState

MAX_ENDED_VERSIONS = 10
"""How many END entries per model are remembered."""


class ServableStateMonitor:
    """Remembers the last state event of each (model, version) seen on a bus."""

    def __init__(self, bus: EventBus, max_ended_versions: int = MAX_ENDED_VERSIONS) -> None:
        self._cond = threading.Condition()
        self._states: dict[str, dict[int, ServableState]] = {}
        self._max_ended = max_ended_versions
        self._unsubscribe = bus.subscribe(self._on_event)

    def _on_event(self, event: ServableState) -> None:
        with self._cond:
            versions = self._states.setdefault(event.id.name, {})
            versions[event.id.version] = event
            self._forget_old_ended(versions)
            self._cond.notify_all()

    def _forget_old_ended(self, versions: dict[int, ServableState]) -> None:
        ended = sorted((s for s in versions.values() if s.state is ManagerState.END), key=lambda s: s.time)
        for state in ended[: max(0, len(ended) - self._max_ended)]:
            del versions[state.id.version]

    def version_states(self, name: str) -> dict[int, ServableState]:
        """States of every known version of ``name``, highest version first (empty if unknown)."""
        with self._cond:
            versions = self._states.get(name, {})
            return {v: versions[v] for v in sorted(versions, reverse=True)}

    def state(self, id: ServableId) -> ServableState | None:
        """The last state of one version, or None if it was never seen."""
        with self._cond:
            return self._states.get(id.name, {}).get(id.version)

    def model_names(self) -> list[str]:
        """Every model name that has had at least one version."""
        with self._cond:
            return sorted(self._states)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` (evaluated after each event) is true, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """Stop listening to the bus."""
        self._unsubscribe()
