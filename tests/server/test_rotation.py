"""A worker's rotation on a real uvicorn server (uvloop, the worker's protocol) in a thread: it enters
and leaves the port's SO_REUSEPORT group on request, losing no connection, and sheds keep-alive ones."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.server import REPO, free_port, wait_for
from tests.server.worker_server import serving
from tfaas.server.http_protocol import ConnectionLimits
from tfaas.server.listeners import listening_socket
from tfaas.server.rotation import Rotation

LIMITS = ConnectionLimits(
    max_header_bytes=4096, header_timeout=5.0, body_timeout=5.0, body_min_rate=1024, max_connections=100
)
SLOW_SECONDS = 0.5
ROUNDS = 8


async def app(scope, receive, send) -> None:
    """Answers ``worker``; ``/slow`` after :data:`SLOW_SECONDS`, ``/stream`` with its body that long
    after its head."""
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW_SECONDS)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"6")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/stream":
        await asyncio.sleep(SLOW_SECONDS)
    await send({"type": "http.response.body", "body": b"worker"})


def request(path: str = "/", *, close: bool = False) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{'Connection: close' if close else ''}\r\n\r\n".encode()


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length (all that these servers send)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {received!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def closes_after(head: bytes) -> bool:
    return b"connection: close" in head.lower()


class OtherWorker:
    """Another listener of the port's group, in a thread: answers ``other`` to each connection, then closes."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nother"

    def __init__(self, port: int) -> None:
        self.listener = listening_socket("127.0.0.1", port, backlog=128)
        self.listener.settimeout(0.1)
        self.stopped = False
        self.answered = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
                    received += chunk
                connection.sendall(self.RESPONSE)
                self.answered += 1
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):  # NOTE: until the client closes: a close with unread bytes resets
                    pass

    def wait_answers(self, count: int) -> None:
        start = self.answered
        wait_for(lambda: self.answered >= start + count, timeout=10, interval=0.01)

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(10)
        self.listener.close()


CLIENTS = """
import json, socket, sys, threading
from collections import Counter
from tests.server.test_rotation import read_response, request

port, stopped, answered, failures = int(sys.argv[1]), threading.Event(), Counter(), []

def run():
    while not stopped.is_set():
        try:
            # NOTE: a SYN that the leaving listener dropped is sent again 1 s later: the timeout allows it
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request(close=True))
                answered["worker" if read_response(sock).endswith(b"worker") else "other"] += 1
        except (OSError, AssertionError) as exc:
            failures.append(repr(exc))

threads = [threading.Thread(target=run) for _ in range(int(sys.argv[2]))]
for thread in threads:
    thread.start()
sys.stdin.read()
stopped.set()
for thread in threads:
    thread.join()
print(json.dumps({"answered": answered, "failures": failures}))
"""


@contextmanager
def clients(port: int, threads: int = 4) -> Iterator[dict[str, Any]]:
    """Client threads in a process of their own (not slowed down by this one's GIL), each opening one
    connection after the other, one request each, until the end of the block; then the dict says who
    answered (``answered``) and what failed (``failures``)."""
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENTS, str(port), str(threads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    outcome: dict[str, Any] = {}
    try:
        yield outcome
    finally:
        stdout, _ = process.communicate("", timeout=30)
        outcome.update(json.loads(stdout))


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def other(port: int) -> Iterator[OtherWorker]:
    other = OtherWorker(port)
    yield other
    other.stop()


def test_leaving_and_entering_rotation_under_a_stream_of_connections_loses_none(port, other):
    changes: list[tuple[bool, str]] = []
    rotation = Rotation("127.0.0.1", port, backlog=128, on_change=lambda on: changes.append((on, thread_name())))
    rotation.set(True)
    with serving(app, LIMITS, rotation) as server, clients(port) as outcome:
        answered = server.server_state  # NOTE: total_requests: the responses the worker completed
        for _ in range(ROUNDS):
            wait_for(lambda start=answered.total_requests: answered.total_requests >= start + 20, timeout=10)
            rotation.set(False)
            wait_for(lambda: not rotation.listening, timeout=10, interval=0.01)
            other.wait_answers(100)  # NOTE: enough connections for one to reach the worker, had it a listener
            answered_out_of_rotation = answered.total_requests
            other.wait_answers(100)
            assert answered.total_requests == answered_out_of_rotation, "answered out of rotation"
            rotation.set(True)
            wait_for(lambda: rotation.listening, timeout=10, interval=0.01)
    assert outcome["failures"] == []
    assert outcome["answered"]["worker"] >= 20 * ROUNDS
    # NOTE: each leave is told as it begins and once it ended; the last when the server stopped
    assert [on for on, _ in changes] == [True, False, False] * (ROUNDS + 1)
    assert {name for _, name in changes} == {"worker-loop"}


def thread_name() -> str:
    return threading.current_thread().name


@pytest.mark.parametrize("how", ["shed_connections", "set(False)"])
def test_keep_alive_connections_close_after_a_response_that_says_so_and_none_fails(port, other, how):
    rotation = Rotation("127.0.0.1", port, backlog=128)
    rotation.set(True)
    with serving(app, LIMITS, rotation) as server:
        wait_for(lambda: rotation.listening, timeout=10, interval=0.01)
        idle, busy, streaming = (connect_to_worker(port) for _ in range(3))
        for sock in (idle, busy, streaming):
            assert not closes_after(read_response(send(sock, request())))
        send(busy, request("/slow"))
        send(streaming, request("/stream"))
        time.sleep(SLOW_SECONDS / 2)  # NOTE: the app holds /slow's response, and has sent /stream's head

        rotation.shed_connections() if how == "shed_connections" else rotation.set(False)

        # the response under way: it says so if its head has not gone yet, else the next one does
        assert closes_after(read_response(busy))
        assert not closes_after(read_response(streaming))
        assert closes_after(read_response(send(streaming, request())))
        # an idle connection stays open (its client may be sending), and its next response says so
        time.sleep(0.2)
        # NOTE: out of rotation once its busy connections closed; an idle one does not hold the leave up
        wait_for(lambda: rotation.listening == (how == "shed_connections"), timeout=5, interval=0.01)
        assert closes_after(read_response(send(idle, request())))
        for sock in (idle, busy, streaming):
            sock.settimeout(5)
            assert sock.recv(1) == b"", "the connection stayed open"
            sock.close()
        wait_for(lambda: not server.server_state.connections, timeout=5, interval=0.01)
        wait_for(lambda: rotation.listening == (how == "shed_connections"), timeout=5, interval=0.01)


def connect_to_worker(port: int) -> socket.socket:
    """A connection that the rotation's listener accepted (the other listener of the port may take some)."""
    while True:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        response = read_response(send(sock, request()))
        if response.endswith(b"worker"):
            return sock
        sock.close()


def send(sock: socket.socket, data: bytes) -> socket.socket:
    sock.sendall(data)
    return sock


def test_set_is_remembered_before_the_server_runs_and_only_changes_call_back(port):
    changes: list[bool] = []
    rotation = Rotation("127.0.0.1", port, backlog=128, on_change=changes.append)
    rotation.set(True)
    rotation.set(False)
    rotation.set(True)
    assert not rotation.listening
    with serving(app, LIMITS, rotation):
        wait_for(lambda: rotation.listening, timeout=10, interval=0.01)
        rotation.set(True)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert read_response(send(sock, request(close=True))).endswith(b"worker")
        assert changes == [True]
    assert changes == [True, False, False], "a worker leaves rotation when it stops (told as it begins and ends)"


def test_a_server_out_of_rotation_stops_cleanly_and_its_port_is_free_again(port):
    rotation = Rotation("127.0.0.1", port, backlog=128)
    with serving(app, LIMITS, rotation):
        time.sleep(0.1)
        assert not rotation.listening
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10)
    rotation.set(True)  # NOTE: after the stop: remembered, not applied
    assert not rotation.listening
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_listener_that_cannot_open_is_logged_and_opens_at_the_next_set(port, caplog):
    rotation = Rotation("127.0.0.1", port, backlog=128)
    with serving(app, LIMITS, rotation), socket.create_server(("127.0.0.1", port)) as squatter:
        rotation.set(True)  # NOTE: the port is held by a socket without SO_REUSEPORT
        wait_for(lambda: "could not enter rotation" in caplog.text, timeout=10, interval=0.01)
        assert not rotation.listening
        squatter.close()
        rotation.set(True)
        wait_for(lambda: rotation.listening, timeout=10, interval=0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert read_response(send(sock, request(close=True))).endswith(b"worker")
