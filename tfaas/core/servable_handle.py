"""``ServableHandle``: a request's hold on one loaded version."""

from __future__ import annotations

from typing import Any

from tfaas.core.harness import LoaderHarness
from tfaas.core.servable_id import ServableId


class ServableHandle:
    """Keeps a version loaded while a request uses it; release it (or leave the ``with``) when done.

    A version is unloaded only after its last handle is released, so a request that started on
    version 1 finishes on version 1 even while version 2 takes over.
    """

    def __init__(self, harness: LoaderHarness) -> None:
        self._harness: LoaderHarness | None = harness
        self.id: ServableId = harness.id
        self.servable: Any = harness.servable

    def release(self) -> None:
        """Let go of the version; calling it twice is harmless."""
        harness, self._harness = self._harness, None
        if harness is not None:
            harness.release()

    def __enter__(self) -> ServableHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
