"""The in-process limit: dense42 called in a loop with no HTTP, raw and through tfaas's servable.

Run by ``perf/bench.py``: ``python perf/peers/inprocess.py MODEL_DIR --seconds 2 --batches 1,32,1024``
(``MODEL_DIR`` is a version directory such as ``models/dense42/1``). For each batch size, two loops of
``--seconds`` each, one thread:

- ``signature``: ``model.signatures["serving_default"](inputs=tf.constant(x))["outputs"].numpy()``, the
  least any server has to do per request (numpy in, numpy out);
- ``servable``: the same through ``tfaas``'s own ``SavedModelServable.run`` (loaded by ``version_loader``),
  so its per-call overhead shows.

Prints one JSON object on its last line: the TensorFlow version and, per loop, calls/s, rows/s, the
process's CPU time per call and the share of the machine's CPU time stolen meanwhile.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tfaas.core.servable_id import ServableId
from tfaas.servables.loaders import version_loader

WARMUP_CALLS = 20


def steal_and_total() -> tuple[int, int]:
    """(steal, total) jiffies of the machine, from the first line of ``/proc/stat``."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return fields[7], sum(fields)


def timed_loop(call: Callable[[], object], seconds: float) -> dict[str, float]:
    """Call ``call`` for ``seconds`` after a short warm-up; return calls, wall time, CPU time and steal."""
    for _ in range(WARMUP_CALLS):
        call()
    steal0, total0 = steal_and_total()
    cpu0, start = time.process_time(), time.perf_counter()
    calls, deadline = 0, start + seconds
    while True:
        call()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    cpu = time.process_time() - cpu0
    steal1, total1 = steal_and_total()
    return {
        "calls": calls,
        "seconds": now - start,
        "cpu_seconds": cpu,
        "steal": (steal1 - steal0) / max(1, total1 - total0),
    }


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batches", default="1,32,1024")
    args = parser.parse_args()

    signature = tf.saved_model.load(args.model_dir).signatures["serving_default"]
    servable = version_loader(ServableId("dense42", 1), args.model_dir).load()
    rng = np.random.default_rng(0)
    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        x = rng.random((batch, 42), dtype=np.float32)
        loops = {
            "signature": lambda x=x: signature(inputs=tf.constant(x))["outputs"].numpy(),
            "servable": lambda x=x: servable.run("serving_default", {"inputs": x})["outputs"],
        }
        for path, call in loops.items():
            run = timed_loop(call, args.seconds)
            results.append(
                {
                    "path": path,
                    "batch": batch,
                    **run,
                    "calls_per_s": run["calls"] / run["seconds"],
                    "rows_per_s": run["calls"] * batch / run["seconds"],
                    "cpu_ms_per_call": 1000 * run["cpu_seconds"] / run["calls"],
                }
            )
    print(json.dumps({"tensorflow": tf.__version__, "results": results}))


if __name__ == "__main__":
    main()
