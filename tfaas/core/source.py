"""The ``Source`` protocol: what tells the manager which versions of each model should be loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from tfaas.core.servable_id import ServableId


@dataclass(frozen=True)
class AspiredVersion:
    """One version a source wants served, and where it lives."""

    id: ServableId
    path: str


AspiredVersionsCallback = Callable[[str, list[AspiredVersion]], None]
"""``callback(model_name, versions)``: the *complete* list of aspired versions of one model.

A version left out of the list is no longer wanted and will be unloaded; an empty list unloads them all.
"""


class Source(Protocol):
    """Emits aspired versions. A source never loads anything itself."""

    def set_aspired_versions_callback(self, callback: AspiredVersionsCallback) -> None:
        """Connect the source to its target (normally the manager). Called once, before ``start``."""
        ...

    def start(self) -> None:
        """Begin emitting (an initial emission for every model, then on every change)."""
        ...

    def stop(self) -> None:
        """Stop emitting and release threads and watches."""
        ...
