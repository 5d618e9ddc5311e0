"""``BatchingLoader``: wraps a version's loader so that its servable batches concurrent requests.

With a ``parameters_file`` (a version's own ``batching_params.pbtxt``), the file is read at load time,
so a broken file fails that version's load with the parser's message, like any other load error.
"""

from __future__ import annotations

from tfaas.batching.batching_servable import BatchingServable, BatchObserver
from tfaas.batching.parameters import BatchingParameters, read_file
from tfaas.core.loader import Loader
from tfaas.core.servable_id import ServableId


class BatchingLoader:
    """``inner``'s servable behind a ``BatchingServable``; unloading first runs every queued request."""

    def __init__(
        self,
        inner: Loader,
        servable_id: ServableId,
        parameters: BatchingParameters,
        on_batch: BatchObserver | None = None,
        parameters_file: str | None = None,
    ) -> None:
        self._inner = inner
        self._id = servable_id
        self._parameters = parameters
        self._on_batch = on_batch
        self._parameters_file = parameters_file
        self._servable: BatchingServable | None = None

    def load(self) -> BatchingServable:
        """Load the version, and start its batch threads."""
        parameters = read_file(self._parameters_file) if self._parameters_file else self._parameters
        self._servable = BatchingServable(self._inner.load(), self._id, parameters, self._on_batch)
        return self._servable

    def unload(self) -> None:
        """Drain and stop the batch threads, then unload the version."""
        if self._servable is not None:
            self._servable.close()
            self._servable = None
        self._inner.unload()
