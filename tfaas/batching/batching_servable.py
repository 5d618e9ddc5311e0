"""``BatchingServable``: a servable whose concurrent ``run`` calls share one model call.

Each request's inputs are checked on its own thread first (``check_inputs``), so a bad request fails
alone, never the batch it would have joined. A request then becomes a task of as many rows as its
inputs' dim 0, queued by signature, dtypes and inner dims, so a batch can always be joined with
``np.concatenate``. A batch thread joins the tasks' inputs, pads them to an allowed batch size (rows
copied from the first row), runs the model once, and hands every task its rows of every output.

Requests that cannot share a batch run as they are, on their own thread, exactly as without
batching: inputs of rank 0 or of different dim 0, and requests of more than ``max_batch_size`` rows
(more than a full batch already; TF Serving refuses them without ``enable_large_batch_splitting``),
and every request of a signature found to have an output without one row per input row (TF Serving
fails such batches; here the batch is rerun one request at a time, and the signature is not batched
again, so turning batching on server-wide never breaks such models). A batch of
one task that needs no padding is also run as it is, so a lone request's answer is the unbatched one.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Hashable, Mapping

import numpy as np

from tfaas import request_timing
from tfaas.batching.parameters import BatchingParameters
from tfaas.batching.scheduler import BatchScheduler, Task
from tfaas.core.servable_id import ServableId
from tfaas.errors import InvalidArgument
from tfaas.servables.model_params import ModelParams
from tfaas.servables.servable import Servable, SignatureInfo

log = logging.getLogger("tfaas.batching")

BatchObserver = Callable[[ServableId, int, int], None]
"""Told of every batch run: the servable, its rows, and its size after padding."""


class BatchingServable:
    """``inner`` with batched ``run``; every other member is ``inner``'s."""

    def __init__(
        self,
        inner: Servable,
        servable_id: ServableId,
        parameters: BatchingParameters,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self.inner = inner
        self.id = servable_id
        self.path: str = getattr(inner, "path", "")
        self.params: ModelParams | None = inner.params
        self.labels: list[str] = inner.labels
        self.parameters = parameters
        self._on_batch = on_batch
        self._unbatchable: set[str] = set()  # NOTE: signatures found to have an output without a batch dim
        self._scheduler = BatchScheduler(parameters, self._process, name=f"{servable_id.name}-{servable_id.version}")

    @property
    def signatures(self) -> Mapping[str, SignatureInfo]:
        return self.inner.signatures

    def signature_def_map_json(self) -> dict[str, Any]:
        return self.inner.signature_def_map_json()

    def check_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.check_inputs(signature_name, inputs)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inner.run``, through a batch when the request can share one (see the module docstring).

        Raises what ``inner.run`` raises, and ``Unavailable`` when the queue is full.
        """
        task = self.submit(signature_name, inputs)
        if task is None:
            return self.inner.run(signature_name, inputs)
        try:
            return task.wait()
        finally:
            note_queue(task)

    def submit(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], on_done: Callable[[Task], None] | None = None
    ) -> Task | None:
        """Queue the request for a batch and return its task, or ``None`` for a request that cannot share
        one, which the caller runs with ``run``. ``on_done`` is called on the batch thread once the
        task has its result; :meth:`Task.wait` then gives it (or raises its error) without blocking.

        Raises ``InvalidArgument`` for inputs the signature refuses and ``Unavailable`` when the queue is full.
        """
        checked = self.inner.check_inputs(signature_name, inputs)
        rows = _rows(checked)
        if rows is None or rows > self.parameters.max_batch_size or signature_name in self._unbatchable:
            return None
        task = Task(rows, (signature_name, checked), on_done)
        self._scheduler.schedule(_queue_key(signature_name, checked), task)
        return task

    def close(self) -> None:
        """Run every queued request, then stop the batch threads (before ``inner`` is unloaded)."""
        self._scheduler.close()

    def _process(self, tasks: list[Task]) -> None:
        """Run one batch: join, pad, run once, split; every task gets its rows or the batch's error."""
        signature_name = tasks[0].payload[0]
        rows = sum(task.size for task in tasks)
        padded = self.parameters.padded_size(rows)
        if len(tasks) == 1 and padded == rows:
            self._run_alone(tasks[0])
        else:
            try:
                outputs = self.inner.run(signature_name, _joined(tasks, padded - rows))
                for task, part in zip(tasks, _split(outputs, tasks, padded, signature_name)):
                    task.finish(part)
            except InvalidArgument:
                # NOTE: a request whose values (not shapes) make TF fail would fail the whole batch, as in
                # TF Serving; rerun each one alone so only that request gets the error.
                for task in tasks:
                    self._run_alone(task)
            except NotBatchable as error:
                log.warning("%s; its requests now run one by one", error)
                self._unbatchable.add(signature_name)
                for task in tasks:
                    self._run_alone(task)
            except Exception as error:
                for task in tasks:
                    task.fail(error)
        if self._on_batch is not None:
            self._on_batch(self.id, rows, padded)

    def _run_alone(self, task: Task) -> None:
        signature_name, inputs = task.payload
        try:
            task.finish(self.inner.run(signature_name, inputs))
        except Exception as error:
            task.fail(error)


def note_queue(task: Task) -> None:
    """Add how long ``task`` waited for its batch to start to the current request's ``queue`` stage."""
    started = task.started or None  # NOTE: 0 for a task whose batch never ran: no interval to place
    request_timing.add("queue", max(task.started - task.enqueued, 0.0), started)


class NotBatchable(Exception):
    """A signature's outputs do not have one row per input row, so a batch cannot be split back."""


def _rows(inputs: Mapping[str, np.ndarray]) -> int | None:
    """The dim 0 every input shares, or None when the inputs cannot be batched (rank 0, or unequal)."""
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    if len(sizes) != 1:
        return None
    (size,) = sizes
    return size or None  # NOTE: an empty request has nothing to batch


def _queue_key(signature_name: str, inputs: Mapping[str, np.ndarray]) -> Hashable:
    """Requests with equal keys can be joined: same signature, and per input the same dtype and inner dims."""
    return (signature_name, tuple(sorted((alias, array.dtype.str, array.shape[1:]) for alias, array in inputs.items())))


def _joined(tasks: list[Task], padding: int) -> dict[str, np.ndarray]:
    """Every input of ``tasks`` joined along dim 0, plus ``padding`` copies of the first row."""
    aliases = tasks[0].payload[1].keys()
    joined = {}
    for alias in aliases:
        parts = [task.payload[1][alias] for task in tasks]
        if padding:
            parts.append(np.repeat(parts[0][:1], padding, axis=0))
        joined[alias] = np.concatenate(parts)
    return joined


def _split(
    outputs: Mapping[str, np.ndarray], tasks: list[Task], padded: int, signature_name: str
) -> list[dict[str, np.ndarray]]:
    """Each task's rows of every output; ``NotBatchable`` when an output is not one row per input row."""
    for alias, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != padded:
            raise NotBatchable(
                f"Signature {signature_name!r} cannot be batched: output {alias!r} has shape {list(array.shape)}, "
                f"not one row per input row ({padded})"
            )
    parts, start = [], 0
    for task in tasks:
        end = start + task.size
        parts.append({alias: array[start:end] for alias, array in outputs.items()})
        start = end
    return parts
