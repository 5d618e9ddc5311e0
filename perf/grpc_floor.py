"""The gRPC floor: what a trivial grpcio unary handler costs, per server design (issue 12).

Run::

    python perf/grpc_floor.py                       # aio, aio on uvloop, sync: 3 rounds of 3 s each, interleaved
    python perf/grpc_floor.py --seconds 5 --rounds 5 --clients 2 --concurrency 16

Each design serves one unary method that answers its request bytes with ``b"ok"`` (no protobuf at all) on
127.0.0.1, in a process of its own; a multi-process client (``--clients`` processes, one channel each,
``--concurrency`` calls in flight per process) calls it for a window. Per window: calls/s and the server's
CPU time per call (its ``/proc`` utime + stime over the window). The designs:

- ``aio``: ``grpc.aio`` on asyncio's default loop;
- ``aio-uvloop``: ``grpc.aio`` on uvloop (the loop tfaas's workers run);
- ``sync``: grpcio's thread-pool server (``grpc.server``) with ``--threads`` threads.

The client competes with the server for the machine's cores, so calls/s is a floor for this machine; the
server's CPU per call is the figure that carries over.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

METHOD = "/floor.Floor/Echo"
DESIGNS = ("aio", "aio-uvloop", "sync")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _handler(grpc: object, aio: bool) -> object:
    """The one generic handler: bytes in, ``b"ok"`` out (no (de)serializers)."""

    if aio:

        async def echo(request: bytes, context: object) -> bytes:
            return b"ok"

    else:

        def echo(request: bytes, context: object) -> bytes:
            return b"ok"

    method = grpc.unary_unary_rpc_method_handler(echo)  # type: ignore[attr-defined]
    return grpc.method_handlers_generic_handler("floor.Floor", {"Echo": method})  # type: ignore[attr-defined]


def serve(design: str, port: int, threads: int) -> None:
    """Serve the floor method on ``127.0.0.1:port`` until SIGTERM."""
    import grpc

    options = [("grpc.so_reuseport", 0)]
    if design == "sync":
        server = grpc.server(ThreadPoolExecutor(threads), handlers=[_handler(grpc, aio=False)], options=options)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        signal.sigwait({signal.SIGTERM})
        server.stop(0)
        return
    if design == "aio-uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        server = grpc.aio.server(handlers=[_handler(grpc, aio=True)], options=options)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(0)

    asyncio.run(main())


def _client(port: int, concurrency: int, start: float, seconds: float, out: multiprocessing.Queue) -> None:
    """One client process: ``concurrency`` calls in flight on one channel from ``start`` for ``seconds``."""
    import grpc

    async def main() -> int:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD)
            await call(b"warm")
            await asyncio.sleep(max(0.0, start - time.time()))
            deadline = time.time() + seconds
            counts = [0] * concurrency

            async def loop(i: int) -> None:
                while time.time() < deadline:
                    await call(b"x" * 16)
                    counts[i] += 1

            await asyncio.gather(*(loop(i) for i in range(concurrency)))
            return sum(counts)

    out.put(asyncio.run(main()))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def window(server_pid: int, port: int, clients: int, concurrency: int, seconds: float) -> tuple[float, float]:
    """One measured window: (calls/s, server CPU ms per call)."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    start = time.time() + 1.0  # NOTE: the clients connect and warm up before the window opens
    procs = [
        multiprocessing.Process(target=_client, args=(port, concurrency, start, seconds, out)) for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start - time.time()))
    cpu = _cpu_seconds(server_pid)
    calls = sum(out.get(timeout=seconds + 30) for _ in procs)
    cpu = _cpu_seconds(server_pid) - cpu
    for proc in procs:
        proc.join()
    return calls / seconds, 1000 * cpu / max(calls, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=DESIGNS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.threads)
        return
    designs = args.designs.split(",")
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    results: dict[str, list[tuple[float, float]]] = {d: [] for d in designs}
    try:
        for design in designs:
            port = _free_port()
            command = [sys.executable, __file__, "--serve", design, "--port", str(port), "--threads", str(args.threads)]
            servers[design] = subprocess.Popen(command), port
            _wait_listening(port)
        for round_ in range(args.rounds):
            order = designs[round_ % len(designs) :] + designs[: round_ % len(designs)]
            for design in order:
                process, port = servers[design]
                results[design].append(window(process.pid, port, args.clients, args.concurrency, args.seconds))
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    print(f"{args.clients} client processes x {args.concurrency} calls in flight, {args.seconds:g} s windows")
    print(f"{'design':12} {'calls/s (median)':>17} {'server CPU ms/call (median)':>28}   windows")
    for design, windows in results.items():
        rate = statistics.median(w[0] for w in windows)
        cpu = statistics.median(w[1] for w in windows)
        shown = ", ".join(f"{w[0]:.0f}/{w[1]:.3f}" for w in windows)
        print(f"{design:12} {rate:17.0f} {cpu:28.3f}   {shown}")


if __name__ == "__main__":
    main()
