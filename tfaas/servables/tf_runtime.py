"""Start TensorFlow in a worker: size its thread pools, import it, and take its objects out of the GC.

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

log = logging.getLogger("tfaas.servables")


def start(intra_op: int, inter_op: int) -> None:
    """Import TensorFlow with its pools sized (TF Serving's ``--tensorflow_{intra,inter}_op_parallelism``;
    0: TensorFlow's choice), then freeze every object that exists so far out of the collector's reach.

    Call once per worker process, before the first model loads: TensorFlow fixes its pools when its
    runtime starts.
    """
    import tensorflow as tf

    if intra_op > 0:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op > 0:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    gc.collect()
    gc.freeze()
    log.info("TensorFlow %s started; %d objects frozen out of the GC", tf.__version__, gc.get_freeze_count())
