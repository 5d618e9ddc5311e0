"""Servable states, the events that announce them, and the bus that carries the events."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tfaas.core.servable_id import ServableId


class ManagerState(enum.IntEnum):
    """A version's externally visible state, with TF Serving's ``ModelVersionStatus.State`` numbers.

    A version moves only forward: START → LOADING → AVAILABLE → UNLOADING → END. A failed load goes
    straight to END, carrying the error.
    """

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class ServableState:
    """One state event: ``id`` entered ``state`` at ``time`` (seconds since the epoch).

    ``error`` is set only with END, when the version ended because it failed (TF Serving's non-OK
    ``health``).
    """

    id: ServableId
    state: ManagerState
    error: str | None = None
    time: float = 0.0


Subscriber = Callable[[ServableState], None]


class EventBus:
    """Publishes ``ServableState`` events to subscribers, synchronously on the publisher's thread.

    NOTE: a subscriber must not publish from inside its callback; keep callbacks short and non-blocking.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it again."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, id: ServableId, state: ManagerState, error: str | None = None) -> ServableState:
        """Stamp an event with the current time and hand it to every subscriber."""
        event = ServableState(id, state, error, time.time())
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
        return event
