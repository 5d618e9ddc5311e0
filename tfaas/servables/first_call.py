"""First-call warm-up: each side-effect-free signature runs once on zeros before its version serves.

Why: TensorFlow optimizes a function's graph and builds its kernels on the function's first call.
For dense42 that first call took 12–23 ms on an idle core against 0.3–1 ms after, and more under
load; with batching, every request queued behind that first batch waits for it. In the swap
benchmark (perf/RESULTS.md) the requests in flight while a served model swapped to a new version
had a p99 several times the steady one. TF Serving leaves this to a warmup file
(``assets.extra/tf_serving_warmup_requests``); a version that has one replays it instead.

A signature is called only when nothing in it, nested functions included, has a side effect but
reading variables: TF Serving's test model ``counter`` adds to a variable on every call, and a
warm-up must not count. Inputs are zeros of each input's dtype and shape, 1 for unknown dims;
signatures with string or other non-numeric inputs, or an input of unknown rank, are left cold.
A failing call is logged and the version loads as usual: the warm-up only saves time.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import numpy as np

from tfaas.logs import servable_fields
from tfaas.servables.servable import Servable, SignatureInfo

log = logging.getLogger("tfaas.warmup")

_HARMLESS_STATEFUL_OPS = frozenset(
    {"VarHandleOp", "ReadVariableOp", "VariableV2", "Variable", "StatefulPartitionedCall", "Placeholder"}
)
"""Ops TensorFlow marks stateful that only hold or read state (the calls' bodies are checked too)."""


def warm_first_calls(servable: Servable, functions: Mapping[str, Any], model: str, version: int) -> list[str]:
    """Run each signature of ``servable`` that qualifies once; return the names of those that ran."""
    warmed = []
    for name, info in servable.signatures.items():
        inputs = zero_inputs(info)
        function = functions.get(name)
        if inputs is None or function is None or not side_effect_free(function):
            continue
        started = time.perf_counter()
        try:
            servable.run(name, inputs)
        except Exception as error:  # NOTE: zeros may be a value the model refuses; it only stays cold
            log.info("Signature %s not warmed on zeros: %s", name, error, extra=servable_fields(model, version))
            continue
        warmed.append(name)
        log.info(
            "Warmed signature %s with a first call in %.1f ms",
            name,
            (time.perf_counter() - started) * 1e3,
            extra=servable_fields(model, version),
        )
    return warmed


def zero_inputs(info: SignatureInfo) -> dict[str, np.ndarray] | None:
    """One batch of zeros for every input of ``info``, or ``None`` when an input has no numeric dtype or rank."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import dtypes

    inputs = {}
    for alias, tensor in info.inputs.items():
        try:
            dtype = dtypes.as_dtype(types_pb2.DataType.Value(tensor.dtype))
        except (ValueError, TypeError):  # NOTE: a dtype name this TensorFlow does not know
            return None
        if tensor.shape is None or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            return None
        inputs[alias] = np.zeros([1 if dim is None else dim for dim in tensor.shape], dtype=dtype.as_numpy_dtype)
    return inputs


def side_effect_free(function: Any) -> bool:
    """Whether every op of ``function``'s graph and of the functions it calls is stateless or only reads state."""
    from tensorflow.python.framework import op_def_registry

    graph_def = function.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for library_function in graph_def.library.function:
        ops.update(node.op for node in library_function.node_def)
    called = {library_function.signature.name for library_function in graph_def.library.function}
    for op in ops - called - _HARMLESS_STATEFUL_OPS:
        op_def = op_def_registry.get(op)
        if op_def is None or op_def.is_stateful:
            return False
    return True
