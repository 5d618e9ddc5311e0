"""What a loaded model offers the transport: its signatures and a way to run one of them.

TensorFlow-free, so the routes and the JSON codecs can be typed and tested without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from tfaas.servables.model_params import ModelParams


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature.

    ``alias`` is the key in the signature's map (``x``), ``tensor_name`` the graph tensor (``x:0``),
    ``dtype`` TF's DataType name (``DT_FLOAT``), ``shape`` the dims with ``None`` for an unknown dim,
    or ``None`` altogether when even the rank is unknown.
    """

    alias: str
    tensor_name: str
    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class SignatureInfo:
    """A SignatureDef: its key, method name, and inputs and outputs by alias (sorted by alias)."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorInfo] = field(default_factory=dict)
    outputs: Mapping[str, TensorInfo] = field(default_factory=dict)


class QueuedCall(Protocol):
    """A model call waiting in a batcher's queue (``tfaas.batching.scheduler.Task``)."""

    enqueued: float
    started: float

    def wait(self) -> dict[str, np.ndarray]:
        """The call's outputs (raises its error), blocking until its batch ran."""
        ...


class Servable(Protocol):
    """A loaded model version, shared by all request threads (``run`` must be thread-safe).

    ``params`` is the version directory's TFaaS ``params.json`` (None when it has none) and ``labels`` the
    lines of the labels file it names ([] when there is none): TFaaS's routes list the one and pair the
    other with ``/image`` probabilities. Both are read once at load time; callers must not modify them.
    """

    params: ModelParams | None
    labels: list[str]

    @property
    def signatures(self) -> Mapping[str, SignatureInfo]:
        """Every signature of the version, by key."""
        ...

    def signature_def_map_json(self) -> dict[str, Any]:
        """The version's SignatureDefs exactly as TF Serving's metadata call prints them.

        That is the ``metadata.signature_def`` object of ``GET /v1/models/<name>/metadata``: protobuf JSON
        of a ``SignatureDefMap``, ``{"signature_def": {key: SignatureDef, ...}}``, internal keys such as
        ``__saved_model_init_op`` included. Computed once per version; callers must not modify it.
        """
        ...

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one signature on numpy inputs keyed by alias; return every output keyed by alias.

        Raises ``tfaas.errors.InvalidArgument`` for an unknown signature or inputs that do not fit it
        (both are the client's mistake); any other exception is a server fault.
        """
        ...

    def check_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs`` as ``run`` would feed them (cast to the signature's dtypes, shapes checked where ``run``
        checks them), raising the ``InvalidArgument`` that ``run`` would. The batcher checks each request
        this way before it joins a batch, so one bad request never fails the others of its batch."""
        ...

    def submit(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        on_done: Callable[[QueuedCall], None] | None = None,
    ) -> QueuedCall | None:
        """Queue the call for a batch and return it (``on_done`` is called from the batch thread once it
        ran), or ``None`` when this servable does not batch this call: the caller then calls ``run``.
        Raises what ``run`` raises for inputs the signature refuses, ``Unavailable`` when the queue is full."""
        ...
