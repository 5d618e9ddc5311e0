"""How a gRPC server can leave a port's SO_REUSEPORT group without failing a call (tfaas/server/grpc_listener.py).

Run::

    python perf/grpc_drain.py              # 6 leaves per way, four client threads (a channel each)
    python perf/grpc_drain.py --leaves 12

Two ``grpc.aio`` servers share a port on 127.0.0.1, as two workers do; four client threads call it
without pause. Six times, one server leaves and a new one takes its place, either way:

- ``stop``: ``server.stop(grace)`` at once;
- ``drain``: tfaas's leave: the listener's SYN filter (``tfaas.server.listeners.refuse_handshakes``),
  a wait for the connections to reach ``grpc.max_connection_age_ms`` (1 s) and move, then the stop.

It prints the calls that succeeded and each kind of failure, per way.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import sys
import threading
import time
from pathlib import Path

import grpc
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfaas.server.listeners import listening_sockets, refuse_handshakes_on  # noqa: E402

AGE_MS = 1000
CLIENTS = 4


async def _echo(request: bytes, context: object) -> bytes:
    await asyncio.sleep(0.002)  # NOTE: a call takes a moment, so some are always under way
    return b"ok"


async def _server(port: int) -> tuple[grpc.aio.Server, list[int]]:
    handler = grpc.method_handlers_generic_handler("t.T", {"E": grpc.unary_unary_rpc_method_handler(_echo)})
    options = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_connection_age_ms", AGE_MS),
        ("grpc.max_connection_age_grace_ms", 30000),
    ]
    server = grpc.aio.server(handlers=[handler], options=options)
    before = listening_sockets(port)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, [fd for inode, fd in listening_sockets(port).items() if inode not in before]


async def _leave(way: str, server: grpc.aio.Server, sockets: list[int]) -> None:
    if way == "drain":
        for fd in sockets:
            refuse_handshakes_on(fd)
        await asyncio.sleep(AGE_MS / 1000 * 1.1 + 0.2)
    await server.stop(30)


async def _servers(way: str, port: int, leaves: int, clients_done: threading.Event) -> None:
    leaving, staying = await _server(port), await _server(port)
    for _ in range(leaves):
        await asyncio.sleep(0.7)
        await _leave(way, *leaving)
        leaving, staying = staying, await _server(port)
    await asyncio.sleep(0.5)
    clients_done.set()
    await asyncio.sleep(1.0)  # NOTE: the clients stop before the servers do


def _client(port: int, done: threading.Event, outcomes: collections.Counter) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/t.T/E")
        while not done.is_set():
            try:
                call(b"x", timeout=10)
                outcomes["OK"] += 1
            except grpc.RpcError as error:
                outcomes[f"{error.code().name}: {(error.details() or '')[:60]}"] += 1


def run(way: str, leaves: int) -> collections.Counter:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done, outcomes = threading.Event(), collections.Counter()
    servers = threading.Thread(target=lambda: uvloop.run(_servers(way, port, leaves, done)))
    servers.start()
    time.sleep(0.5)
    clients = [threading.Thread(target=_client, args=(port, done, outcomes)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    servers.join()
    for client in clients:
        client.join()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=6)
    args = parser.parse_args()
    for way in ("stop", "drain"):
        print(f"{way:6} {dict(run(way, args.leaves))}")


if __name__ == "__main__":
    main()
