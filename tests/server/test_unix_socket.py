"""The gRPC Unix socket's plumbing: the master's shared listener, and a worker's forwarding of its connections."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import uvloop

from tfaas.server.unix_socket import UnixSocketForwarder, shared_listener


def test_a_socket_left_behind_is_replaced_a_live_one_or_a_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "grpc.sock"
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(path))  # NOTE: bound, closed, never unlinked: as a killed server leaves it
    with shared_listener(str(path), 8) as live:
        assert live.getsockname() == str(path)
        with pytest.raises(RuntimeError, match=f"Connection in use: {path}"):
            shared_listener(str(path), 8)
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeError, match="exists and is not a socket"):
        shared_listener(str(tmp_path / "file"), 8)
    with pytest.raises(RuntimeError, match="Cannot listen on"):
        shared_listener(str(tmp_path / "no" / "such" / "dir.sock"), 8)


async def _echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data.upper())
        await writer.drain()
    writer.close()


async def _forwarding(tmp_path: Path) -> list[bytes]:
    """Two clients through the forwarder while it is open; a third connects once it closed."""
    target = str(tmp_path / "private.sock")
    upper = await asyncio.start_unix_server(_echo_upper, target)
    listener = shared_listener(str(tmp_path / "public.sock"), 8)
    forwarder = UnixSocketForwarder(listener)
    await forwarder.open(target)
    answers = []
    for payload in (b"hello", b"x" * 3_000_000):  # NOTE: past the write buffer's limit: flow control
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "public.sock"))
        writer.write(payload)
        writer.write_eof()
        answers.append(await reader.read(-1))
        writer.close()
    forwarder.close()
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "public.sock"))  # NOTE: queued, not refused
    writer.write(b"later")
    try:
        answers.append(await asyncio.wait_for(reader.read(5), 0.3))
    except TimeoutError:
        answers.append(b"(waiting)")
    await forwarder.open(target)  # NOTE: back in rotation: the queued connection is taken now
    answers.append(await asyncio.wait_for(reader.read(5), 5))
    writer.close()
    forwarder.close()
    listener.close()
    upper.close()
    return answers


def test_connections_are_forwarded_while_open_and_wait_while_closed(tmp_path: Path) -> None:
    hello, big, while_closed, reopened = uvloop.run(_forwarding(tmp_path))
    assert hello == b"HELLO" and big == b"X" * 3_000_000
    assert while_closed == b"(waiting)" and reopened == b"LATER"
