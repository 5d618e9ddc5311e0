"""Start TensorFlow in a worker: size its thread pools, import it, take its objects out of the GC, and load
the custom op libraries its models need.

Why the GC: importing TensorFlow leaves some 330,000 Python objects that live as long as the process.
CPython's full collections walk every one of them; measured here under load, each took 0.5–1.2 s,
holding the GIL, so every request in the worker stalled that long (the p99 of a busy server was the
collector). ``gc.freeze()`` right after the import moves them to a generation the collector never
walks, and a full collection then takes a few milliseconds. Models loaded later are not frozen, so
unloading a version still frees its reference cycles.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Sequence

log = logging.getLogger("tfaas.servables")


def start(intra_op: int, inter_op: int, workers: int) -> None:
    """Import TensorFlow with its pools sized, then freeze every object that exists so far out of the
    collector's reach.

    ``intra_op`` and ``inter_op`` are TF Serving's ``--tensorflow_{intra,inter}_op_parallelism``; 0 gives
    each of the ``workers`` processes its share of the cores (:func:`pool_size`). Call once per worker
    process, before the first model loads: TensorFlow fixes its pools when its runtime starts.
    """
    import tensorflow as tf

    intra, inter = pool_size(intra_op, workers), pool_size(inter_op, workers)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as error:  # NOTE: TensorFlow's runtime already runs (a second start in one process)
        log.warning("TensorFlow's thread pools keep their size: %s", error)
    gc.collect()
    gc.freeze()
    log.info(
        "TensorFlow %s started with %d intra-op and %d inter-op threads; %d objects frozen out of the GC",
        tf.__version__,
        intra,
        inter,
        gc.get_freeze_count(),
    )


def pool_size(setting: int, workers: int) -> int:
    """Threads of one TensorFlow pool in a worker: ``setting``, or for 0 the cores divided among the workers.

    NOTE: TF Serving's 0 lets TensorFlow take every core, right for its one process. Here each worker
    has its own pools: with one worker per core, 1 thread each gave 1.6x the batch-1024 rows/s of
    TensorFlow's choice and the same batch-1 req/s (perf/RESULTS.md, defaults section).
    """
    return setting or max(1, (os.cpu_count() or 1) // max(1, workers))


def load_op_libraries(paths: Sequence[str]) -> None:
    """Load each TensorFlow op library (``custom_op_paths``) in this process, before any model loads (a
    SavedModel whose graph uses an op no library registered fails to load). Raises ``RuntimeError`` naming
    the library that TensorFlow refused, and why: the worker cannot serve those models without it."""
    import tensorflow as tf

    for path in paths:
        try:
            tf.load_op_library(path)
        except tf.errors.OpError as error:
            message = getattr(error, "message", None) or str(error)
            raise RuntimeError(f"custom_op_paths: cannot load the op library {path}: {message}") from None
        log.info("Loaded the op library %s", path)
