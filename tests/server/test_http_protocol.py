"""The worker's HTTP protocol in a real uvicorn server on uvloop (in a thread), with a small ASGI app:
where its limits must not refuse what is legitimate, and what it does after an early answer."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvloop
from uvicorn.server import Server

from tests.e2e.server import free_port, wait_for
from tests.server.worker_server import serving as serving_on
from tfaas.config import Settings
from tfaas.server.http_protocol import ConnectionLimits, OneSendPerResponse
from tfaas.server.rotation import Rotation

LIMITS = ConnectionLimits(
    max_header_bytes=4096, header_timeout=1.0, body_timeout=1.0, body_min_rate=1024, max_connections=10
)


async def app(scope, receive, send) -> None:
    """Echoes the body's length; ``/early`` answers before it reads the body, ``/late`` reads it late."""
    size = 0
    if scope["path"] == "/late":
        await asyncio.sleep(2 * LIMITS.body_timeout)
    if scope["path"] != "/early":
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
    body = json.dumps({"path": scope["path"], "size": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving() -> Iterator[tuple[Server, int]]:
    """A uvicorn server as a worker runs it, in rotation on a free port; stopped at the end."""
    port = free_port()
    rotation = Rotation("127.0.0.1", port, backlog=128)
    rotation.set(True)
    with serving_on(app, LIMITS, rotation) as server:
        wait_for(lambda: rotation.listening, timeout=10, interval=0.01)
        yield server, port


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serving() as (_, port):
        yield port


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def get(path: str, *headers: str, close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", *headers, *(["Connection: close"] if close else [])]
    return "\r\n".join(lines).encode() + b"\r\n\r\n"


def statuses(received: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def test_many_pipelined_requests_in_one_read_are_not_taken_for_one_big_head(port):
    requests = [get(f"/{i}") for i in range(500)] + [get("/last", close=True)]
    assert sum(map(len, requests)) > 2 * LIMITS.max_header_bytes
    assert statuses(exchange(port, b"".join(requests))) == [200] * 501


def test_a_head_of_exactly_the_limit_is_served_and_one_byte_more_refused(port):
    padding = LIMITS.max_header_bytes - len(get("/", "X-Pad: ", close=True))
    assert statuses(exchange(port, get("/", "X-Pad: " + "a" * padding, close=True))) == [200]
    assert statuses(exchange(port, get("/", "X-Pad: " + "a" * (padding + 1), close=True))) == [431]


def test_a_large_body_sent_with_its_head_is_not_counted_as_head(port):
    body = b"x" * (10 * LIMITS.max_header_bytes)
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    received = exchange(port, head + body)
    assert statuses(received) == [200] and b'"size": 40960' in received


def test_a_body_left_unread_after_an_early_answer_ends_in_a_close_not_a_second_answer(port):
    head = b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    started = time.monotonic()
    received = exchange(port, head + b"a" * 10)
    assert statuses(received) == [200]
    assert LIMITS.body_timeout - 0.1 < time.monotonic() - started < LIMITS.body_timeout + 1.5


def test_the_limits_are_the_settings_and_the_default_connection_limit_leaves_room_for_files():
    limits = ConnectionLimits.from_settings(Settings(max_header_bytes=2048, worker_connections=7))
    assert (limits.max_header_bytes, limits.max_connections) == (2048, 7)
    assert (limits.header_timeout, limits.body_timeout, limits.body_min_rate) == (30.0, 30.0, 1024)
    code = (
        "import resource; from tfaas.server.http_protocol import default_worker_connections as d;"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
        "print([(resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard)), d())[1] for n in (256, 1024, 4096)])"
    )
    # NOTE: in a child process, whose open-file limit the test may lower
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[192, 768, 3072]"


def test_at_shutdown_a_request_sent_on_an_idle_keep_alive_connection_is_served_then_it_closes():
    # NOTE: uvicorn closed such connections at once: a request the client sent meanwhile was lost
    with serving() as (server, port), socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(get("/first"))
        assert statuses(sock.recv(65536)) == [200]
        server.should_exit = True
        time.sleep(0.25)
        sock.sendall(get("/second"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert statuses(received) == [200] and b"connection: close" in received and b"/second" in received


def test_a_body_the_app_reads_late_is_not_the_clients_delay(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /late HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")  # NOTE: once the app reads, 2 s later
        sock.sendall(b"abc")
        assert statuses(sock.recv(65536)) == [200]
    body = b"x" * (1 << 20)  # NOTE: more than uvicorn buffers: it stops reading until the app reads
    head = f"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    received = exchange(port, head.encode() + body)
    assert statuses(received) == [200] and b'"size": 1048576' in received


def test_a_head_request_is_answered_though_no_body_follows_its_head(port):
    # NOTE: the head is held for the body's first bytes; a HEAD answer has none, so it leaves at the loop's pass end
    received = exchange(port, b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(received) == [200] and b"content-length: " in received and received.endswith(b"\r\n\r\n")


class RecordingTransport:
    """A real transport whose sending calls are noted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport, self.calls = transport, []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))
        self.transport.write(data)

    def writelines(self, pieces) -> None:
        pieces = [bytes(p) for p in pieces]
        self.calls.append(("writelines", pieces))
        self.transport.writelines(pieces)

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


def test_a_responses_head_leaves_with_its_body_in_one_send_and_a_head_alone_when_told_or_at_the_close():
    head, body = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"{}"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"

    async def scenario() -> tuple[list, bytes]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        recording = RecordingTransport(transport)
        sending = OneSendPerResponse(recording)
        sending.write(head)
        sending.write(body)
        sending.write(interim)  # NOTE: its client waits for it before it sends the body: not held
        sending.write(head)  # NOTE: a HEAD answer: nothing follows; the protocol sends it when the response ends
        assert recording.calls == [("writelines", [head, body]), ("write", interim)]
        sending.send_head()
        sending.write(head)
        sending.close()  # NOTE: what is held leaves before the close
        await asyncio.sleep(0.05)
        with theirs:
            theirs.settimeout(5)
            received = b""
            while chunk := theirs.recv(65536):
                received += chunk
        return recording.calls, received

    calls, received = uvloop.run(scenario())
    assert calls == [("writelines", [head, body]), ("write", interim), ("write", head), ("write", head)]
    assert received == head + body + interim + head + head
