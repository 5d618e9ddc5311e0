"""The ``Loader`` protocol: how the manager turns one version on disk into a servable object."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from tfaas.core.servable_id import ServableId


class Loader(Protocol):
    """Loads and unloads one servable version.

    The manager calls ``load`` and ``unload`` on its own thread pools, never on a request thread.
    ``load`` raises on failure (any exception); it may be called again after a failure (a retry), but
    never after ``unload``.
    """

    def load(self) -> Any:
        """Load the version and return the servable object requests will use."""
        ...

    def unload(self) -> None:
        """Release what ``load`` acquired. Called once, after the last request let go of it."""
        ...


LoaderFactory = Callable[[ServableId, str], Loader]
"""Builds the loader of one version from its id and its directory (TF Serving's SourceAdapter)."""
