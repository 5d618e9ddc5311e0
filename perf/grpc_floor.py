"""gRPC for the benchmarks (issue 12): the gRPC floor, the multi-process load client, and predict bodies.

Run::

    python perf/grpc_floor.py                        # compare server designs: aio, aio on uvloop, sync
    python perf/grpc_floor.py compare --seconds 5 --rounds 5 --processes 2 --channels 1 --calls 16
    python perf/grpc_floor.py serve --port P --workers 2   # the floor as perf/bench.py runs it, until SIGTERM
    python perf/grpc_floor.py load --target 127.0.0.1:P --body FILE --processes 2 --channels 4 --calls 4 \\
        --start EPOCH_SECONDS --seconds 8                  # one measured window; prints GRPC_LOAD {...}
    python perf/grpc_floor.py bodies SPEC_JSON             # write serialized PredictRequests
    python perf/grpc_floor.py predict --target 127.0.0.1:P --body FILE   # one Predict, its outputs as JSON

**The floor** (``serve``): the least a gRPC server of tfaas's design can cost. One unary method,
``/tensorflow.serving.PredictionService/Predict`` (so the same client and bodies load it and tfaas),
answers any request's bytes with ``b"ok"`` (no protobuf at all), in ``--workers`` processes that each run
their own server bound with ``SO_REUSEPORT`` to the port, with the options of a tfaas worker's gRPC server
(:func:`tfaas.server.grpc_listener.server_options`: message sizes, connections that leave at 1 s; that
module imports TensorFlow, so a floor worker's RSS is a tfaas worker's without models, and it freezes what
the imports made out of the garbage collector as a tfaas worker does). The designs: ``aio-uvloop``
(``grpc.aio`` on uvloop: tfaas's), ``aio`` (on asyncio's default loop), ``sync`` (grpcio's thread-pool
server, ``--threads`` threads).

**The load client** (``load``): ``--processes`` processes, each with ``--channels`` channels (each its own
TCP connection: a local subchannel pool) and ``--calls`` calls in flight on each channel, sending the same
serialized request bytes with grpcio's synchronous API (``future()`` and a done-callback that sends the next
call: 0.15 ms of client CPU per call here, against 0.18-0.20 ms for ``grpc.aio`` on either loop). Each
process warms up from its start, opens its window at ``--start`` (wall-clock seconds since the epoch, so
that the caller can read the server's CPU at the same moments) and counts the calls that end in the
window: OK ones, errors by status code, latency of each (from send to answer), and its own CPU time over
the window (every thread of the process). The client is Python: on this machine it costs about as much
CPU per call as the floor's server, and it shares the cores with the server, so calls/s is what *this*
client reaches; the server's CPU per call is the figure that carries over, and the client's own CPU per
call is reported beside it.

``bodies`` and ``predict`` use ``tensorflow-serving-api`` (so TensorFlow is imported): the inputs as
``TensorProto`` with ``tensor_content`` (float32, as ``tf.make_tensor_proto`` writes a numpy array), and
the answer read with the stub a client uses.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SERVICE, METHOD_NAME = "tensorflow.serving.PredictionService", "Predict"
METHOD = f"/{SERVICE}/{METHOD_NAME}"
DESIGNS = ("aio-uvloop", "aio", "sync")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # NOTE: this checkout's tfaas (its server options), not another installed one
CALL_TIMEOUT_S = 10.0
CLIENT_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # NOTE: else a process's channels to one target share one connection
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]

# ---------------------------------------------------------------------------------------------------------
# The floor


def _handler(grpc: Any, aio: bool) -> Any:
    """The one generic handler: bytes in, ``b"ok"`` out (no (de)serializers)."""

    if aio:

        async def answer(request: bytes, context: Any) -> bytes:
            return b"ok"

    else:

        def answer(request: bytes, context: Any) -> bytes:
            return b"ok"

    method = grpc.unary_unary_rpc_method_handler(answer)
    return grpc.method_handlers_generic_handler(SERVICE, {METHOD_NAME: method})


def _serve_worker(design: str, port: int, threads: int) -> None:
    """One floor worker on ``127.0.0.1:port`` (``SO_REUSEPORT``, tfaas's server options) until SIGTERM."""
    import grpc

    from tfaas.config import Settings
    from tfaas.server.grpc_listener import server_options

    gc.freeze()  # NOTE: as a tfaas worker does once TensorFlow is imported (tf_runtime.start): what the imports
    # made stays out of the collector's passes
    settings = Settings()
    options = server_options(settings)
    concurrent = settings.grpc_max_threads or None
    if design == "sync":
        pool = ThreadPoolExecutor(threads)
        server = grpc.server(
            pool, handlers=[_handler(grpc, aio=False)], options=options, maximum_concurrent_rpcs=concurrent
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        signal.sigwait({signal.SIGTERM})
        server.stop(0)
        return
    if design == "aio-uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        server = grpc.aio.server(
            handlers=[_handler(grpc, aio=True)], options=options, maximum_concurrent_rpcs=concurrent
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(0)

    asyncio.run(main())


def serve(design: str, port: int, workers: int, threads: int) -> None:
    """Run ``workers`` floor processes (forked before any gRPC import) until this process gets SIGTERM,
    which it passes on to each of them by PID."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # NOTE: inherited, so sigwait/loop sees it
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=_serve_unblocked, args=(design, port, threads)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    signal.sigwait({signal.SIGTERM})
    for proc in procs:
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.join(10)


def _serve_unblocked(design: str, port: int, threads: int) -> None:
    if design != "sync":  # NOTE: the event loop's signal handler needs SIGTERM delivered; sigwait needs it blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _serve_worker(design, port, threads)


# ---------------------------------------------------------------------------------------------------------
# The load client


def load(
    target: str, body: bytes, processes: int, channels: int, calls: int, start: float, seconds: float
) -> dict[str, Any]:
    """One window of load from ``processes`` client processes (see the module docstring): the merged counts,
    latency percentiles (µs) and the clients' CPU seconds over the window."""
    import numpy as np

    fork = multiprocessing.get_context("fork")  # NOTE: nothing of gRPC exists in this process to be forked
    out: multiprocessing.Queue = fork.Queue()
    args = (target, body, channels, calls, start, seconds, out)
    procs = [fork.Process(target=_load_process, args=args) for _ in range(processes)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=max(0.0, start - time.time()) + seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(30)
    latencies = np.concatenate([np.frombuffer(r["latencies_us"], np.uint32) for r in results])
    errors: dict[str, int] = {}
    for r in results:
        for code, count in r["errors"].items():
            errors[code] = errors.get(code, 0) + count
    percentile = (lambda q: float(np.percentile(latencies, q))) if len(latencies) else (lambda q: 0.0)
    return {
        "ok": sum(r["ok"] for r in results),
        "errors": errors,
        "seconds": seconds,
        "p50_us": percentile(50),
        "p99_us": percentile(99),
        "max_us": float(latencies.max()) if len(latencies) else 0.0,
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "late_s": max(r["late_s"] for r in results),
        "warmup_calls": sum(r["warmup_calls"] for r in results),
    }


class _Slots:
    """The calls in flight of one client process: each slot sends its next call from the done-callback of
    the last, until the window's end; counts what ends inside the window."""

    def __init__(self, stubs: list[Any], body: bytes, calls: int, start: float, end: float) -> None:
        self._body, self._start, self._end = body, start, end
        self._lock = threading.Lock()
        self._active = len(stubs) * calls
        self.finished = threading.Event()
        self.ok = 0
        self.warmup_calls = 0
        self.errors: dict[str, int] = {}
        self.latencies_us = array("I")
        self._slots = [stub for stub in stubs for _ in range(calls)]

    def begin(self) -> None:
        for stub in self._slots:
            self._send(stub)

    def _send(self, stub: Any) -> None:
        sent = time.time()
        future = stub.future(self._body, timeout=CALL_TIMEOUT_S)
        future.add_done_callback(lambda f: self._done(stub, f, sent))

    def _done(self, stub: Any, future: Any, sent: float) -> None:
        now = time.time()
        code = future.code()
        with self._lock:
            if self._start <= now < self._end:
                if code.name == "OK":
                    self.ok += 1
                    self.latencies_us.append(min(int((now - sent) * 1e6), 0xFFFFFFFF))
                else:
                    self.errors[code.name] = self.errors.get(code.name, 0) + 1
            elif now < self._start:
                self.warmup_calls += 1
        if now < self._end:
            self._send(stub)
            return
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self.finished.set()


def _load_process(target: str, body: bytes, channels: int, calls: int, start: float, seconds: float, out: Any) -> None:
    """One client process: warm up, then the window from ``start``; puts its counts on ``out``."""
    import grpc

    opened = [grpc.insecure_channel(target, CLIENT_OPTIONS) for _ in range(channels)]
    slots = _Slots([channel.unary_unary(METHOD) for channel in opened], body, calls, start, start + seconds)
    slots.begin()
    time.sleep(max(0.0, start - time.time()))
    late, cpu = time.time() - start, time.process_time()
    time.sleep(max(0.0, start + seconds - time.time()))
    cpu = time.process_time() - cpu
    slots.finished.wait(CALL_TIMEOUT_S + 5)
    for channel in opened:
        channel.close()
    out.put(
        {
            "ok": slots.ok,
            "errors": slots.errors,
            "latencies_us": slots.latencies_us.tobytes(),
            "cpu_s": cpu,
            "late_s": late,
            "warmup_calls": slots.warmup_calls,
        }
    )


# ---------------------------------------------------------------------------------------------------------
# Predict bodies and answers (TensorFlow Serving's API package)


def write_bodies(spec_path: Path) -> None:
    """For each ``{"model", "rows", "out"}`` of the JSON list at ``spec_path``: a serialized PredictRequest
    of ``rows`` (float32 ``tensor_content``) for the model's ``serving_default`` input, written to ``out``."""
    import numpy as np
    from tensorflow_serving.apis import predict_pb2

    for item in json.loads(spec_path.read_text()):
        rows = np.asarray(item["rows"], dtype=np.float32)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = item["model"]
        request.model_spec.signature_name = "serving_default"
        tensor = request.inputs[item["input"]]
        tensor.dtype = 1  # NOTE: DT_FLOAT
        for size in rows.shape:
            tensor.tensor_shape.dim.add().size = size
        tensor.tensor_content = rows.astype("<f4").tobytes()
        Path(item["out"]).write_bytes(request.SerializeToString())


def predict(target: str, body: Path) -> dict[str, Any]:
    """One Predict of ``body`` through ``PredictionServiceStub``: the served spec and the outputs as lists."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest.FromString(body.read_bytes())
    with grpc.insecure_channel(target, CLIENT_OPTIONS) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    return {
        "model": response.model_spec.name,
        "version": response.model_spec.version.value,
        "outputs": {alias: tf.make_ndarray(tensor).tolist() for alias, tensor in response.outputs.items()},
    }


# ---------------------------------------------------------------------------------------------------------
# The design comparison (the default command)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _server_pids(process: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [process.pid, *(int(pid) for pid in children)]


def _compare_window(pids: list[int], port: int, args: argparse.Namespace) -> tuple[float, float, float]:
    """One window of the comparison: (calls/s, server CPU ms per call, client CPU ms per call)."""
    start = time.time() + args.warmup + 1.0
    before: list[float] = []
    timer = threading.Timer(start - time.time(), lambda: before.append(_cpu_seconds(pids)))
    timer.start()
    window = load(f"127.0.0.1:{port}", b"x" * 16, args.processes, args.channels, args.calls, start, args.seconds)
    timer.join()
    server_cpu = _cpu_seconds(pids) - before[0]  # NOTE: read once the clients' last calls ended: a few ms late
    calls = max(window["ok"], 1)
    return window["ok"] / args.seconds, 1000 * server_cpu / calls, 1000 * window["client_cpu_s"] / calls


def compare(args: argparse.Namespace) -> None:
    """Serve each design in its own processes; load them in turn, ``--rounds`` times; print the medians."""
    designs = args.designs.split(",")
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    results: dict[str, list[tuple[float, float, float]]] = {d: [] for d in designs}
    try:
        for design in designs:
            port = _free_port()
            command = [sys.executable, __file__, "serve", "--design", design, "--port", str(port)]
            command += ["--workers", str(args.workers), "--threads", str(args.threads)]
            servers[design] = subprocess.Popen(command), port
            _wait_listening(port)
        for round_ in range(args.rounds):
            order = designs[round_ % len(designs) :] + designs[: round_ % len(designs)]
            for design in order:
                process, port = servers[design]
                results[design].append(_compare_window(_server_pids(process), port, args))
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(20)
    print(
        f"{args.processes} client processes x {args.channels} channels x {args.calls} calls in flight, "
        f"{args.workers} server worker(s), {args.seconds:g} s windows"
    )
    print(f"{'design':12} {'calls/s':>9} {'server CPU ms/call':>19} {'client CPU ms/call':>19}   windows")
    for design, windows in results.items():
        rate, server, client = (statistics.median(w[i] for w in windows) for i in range(3))
        shown = ", ".join(f"{w[0]:.0f}/{w[1]:.3f}" for w in windows)
        print(f"{design:12} {rate:9.0f} {server:19.3f} {client:19.3f}   {shown}")


# ---------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")

    comparing = commands.add_parser("compare", help="compare the server designs (the default)")
    comparing.add_argument("--designs", default=",".join(DESIGNS))
    comparing.add_argument("--seconds", type=float, default=3.0)
    comparing.add_argument("--warmup", type=float, default=1.0)
    comparing.add_argument("--rounds", type=int, default=3)
    comparing.add_argument("--processes", type=int, default=2)
    comparing.add_argument("--channels", type=int, default=1)
    comparing.add_argument("--calls", type=int, default=16)
    comparing.add_argument("--workers", type=int, default=1)
    comparing.add_argument("--threads", type=int, default=8)

    serving = commands.add_parser("serve", help="serve the floor until SIGTERM")
    serving.add_argument("--design", choices=DESIGNS, default="aio-uvloop")
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--workers", type=int, default=1)
    serving.add_argument("--threads", type=int, default=8)

    loading = commands.add_parser("load", help="one measured window of load; prints GRPC_LOAD {...}")
    loading.add_argument("--target", required=True)
    loading.add_argument("--body", type=Path, required=True)
    loading.add_argument("--processes", type=int, default=1)
    loading.add_argument("--channels", type=int, default=1)
    loading.add_argument("--calls", type=int, default=1)
    loading.add_argument("--start", type=float, required=True, help="the window's start, seconds since the epoch")
    loading.add_argument("--seconds", type=float, default=8.0)

    bodies = commands.add_parser("bodies", help="write serialized PredictRequests")
    bodies.add_argument("spec", type=Path)

    predicting = commands.add_parser("predict", help="one Predict; prints its outputs as JSON")
    predicting.add_argument("--target", required=True)
    predicting.add_argument("--body", type=Path, required=True)

    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["compare", *(argv if argv is not None else sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "compare":
        compare(args)
    elif args.command == "serve":
        serve(args.design, args.port, args.workers, args.threads)
    elif args.command == "load":
        body = args.body.read_bytes()
        window = load(args.target, body, args.processes, args.channels, args.calls, args.start, args.seconds)
        print("GRPC_LOAD " + json.dumps(window), flush=True)
    elif args.command == "bodies":
        write_bodies(args.spec)
    elif args.command == "predict":
        print(json.dumps(predict(args.target, args.body)), flush=True)


if __name__ == "__main__":
    main()
