"""HTTP/1.1 for a worker: uvicorn's httptools protocol, with bounds on what one client may hold.

uvicorn's own protocol (0.54) reads a request head of any size, waits forever for a head or a body
that never completes, answers its parser's rejections in plain text, takes connections until the
worker runs out of file descriptors, and at shutdown closes a connection whose request it has not
read yet. :class:`HttpProtocol` keeps its parsing and ASGI cycle, and:

- refuses a request line plus headers over ``max_header_bytes`` with 431 as soon as that many bytes
  came (httptools joins the pieces of a header by copying, so its cost grows with the square of the
  header's size, and it stalls every other connection of the worker meanwhile);
- gives a client ``request_header_timeout`` seconds to send a whole head, from its connection or its
  previous response, and ``request_body_timeout`` seconds plus 1 s per ``request_body_min_rate``
  bytes for a body; then answers 408 (if part of a request came) and closes;
- answers every parser rejection (Content-Length with Transfer-Encoding, bad chunks, bytes that no
  token allows, ...) with ``{"error": ...}`` as every other error, then closes;
- answers 503 to connections past ``worker_connections`` without reading them, so that a worker
  keeps file descriptors for its models and logs;
- at shutdown, serves a request that already reached the worker, then closes;
- on request (:meth:`HttpProtocol.close_after_next_response`), ends a keep-alive connection after a
  response that says so, so that its client reconnects (to another worker, once this one left rotation);
- sends a response's head and body in one send (:class:`OneSendPerResponse`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import select
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tfaas.config import Settings
from tfaas.server.errors import error_body

log = logging.getLogger("tfaas.server")

GRACE_SECONDS = 0.5
"""How long a connection between requests is kept at shutdown, for a request its client is sending;
and how much longer a client whose time is up is given when its bytes are already waiting unread
(the worker was too busy to read them: the delay is the server's)."""

LINGER_SECONDS = 1.0
"""After an error answer to a client that may still be sending: how long what it sends is read and
dropped before the connection closes. A close with unread bytes resets the connection (TCP RST),
and the client may then lose the answer before it reads it."""


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client may hold of a worker: the settings of the same names."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    body_min_rate: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.request_header_timeout,
            body_timeout=settings.request_body_timeout,
            body_min_rate=settings.request_body_min_rate,
            max_connections=settings.worker_connections or default_worker_connections(),
        )


def default_worker_connections() -> int:
    """The open-file limit of this process less a quarter of it (at least 64), which stays free for
    the files a worker opens besides its connections (model files, logs, its event loop's pipes)."""
    limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit == resource.RLIM_INFINITY:
        limit = 1 << 20
    return max(1, limit - max(64, limit // 4))


class HttpProtocol(HttpToolsProtocol):
    """One connection: uvicorn's httptools protocol within :class:`ConnectionLimits` (module docstring).

    uvicorn builds one per connection from its ``http`` setting, a ``functools.partial`` of this class
    with its ``limits``.
    """

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._refused = False  # answered 503 at once: over the connection limit
        self._lingering = False  # answered an error: what comes is dropped until the close
        self._in_message = False  # a request's first byte came, its last did not
        self._head_done = False  # ... and its head is complete
        self._head_bytes = 0  # bytes of the head being read (a few less where a request began mid-read)
        self._last_response = False  # the next response to start says Connection: close, then closes
        self._deadline: float | None = None  # when the client's time is up; None: waiting on the app
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._idle_since: float | None = None  # when its last response ended (None: a request under way)
        self._sending: OneSendPerResponse | None = None

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:
        if len(self.connections) >= self.limits.max_connections:
            # NOTE: neither counted nor read: the descriptor is closed again at once
            self._refused = True
            self.transport = transport
            message = f"This worker holds its limit of {self.limits.max_connections} connections; retry later"
            transport.write(self._error_response(503, message, (b"retry-after: 1\r\n",)))
            transport.close()
            return
        self._sending = OneSendPerResponse(transport)
        super().connection_made(self._sending)  # type: ignore[arg-type]
        self._idle_since = self.loop.time()
        self._wait_for_client(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, never more than ``max_header_bytes`` of one request head."""
        self._unset_keepalive_if_required()
        if self._lingering:
            return
        if self._head_done or len(data) <= self.limits.max_header_bytes - self._head_bytes:
            self._head_bytes += 0 if self._head_done else len(data)
            self._feed(data)
            return
        view = memoryview(data)
        while view:
            if self._head_done:
                self._feed(view)
                return
            room = self.limits.max_header_bytes - self._head_bytes
            if room <= 0:
                limit = self.limits.max_header_bytes
                self._refuse(431, f"The request line and headers exceed {limit} bytes (max_header_bytes)")
                return
            # NOTE: counted before parsing: a request that ends within the piece resets the count
            piece, view = view[:room], view[room:]
            self._head_bytes += len(piece)
            if not self._feed(piece):
                return

    def _feed(self, data: bytes | memoryview) -> bool:
        """Parse ``data``; False once the connection is closing (a refused request among others)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # NOTE: no protocol to switch to (no websockets): the request is served as plain HTTP, but
            # the parser has stopped at its head, so one with a body would be served without it
            headers = dict(self.headers)
            if headers.get(b"content-length", b"0").strip() != b"0" or b"transfer-encoding" in headers:
                upgrade = headers.get(b"upgrade", b"").decode("latin-1")
                message = f"Upgrade to {upgrade!r} is not supported: send the request without Upgrade"
                self._refuse(400, message, has_cycle=True)
                return False
        except httptools.HttpParserError as exc:
            # NOTE: what a callback raised (uvicorn's URL parsing) says more than "User callback error"
            cause = exc.__context__ if isinstance(exc.__context__, httptools.HttpParserError) else exc
            self._refuse(400, f"Invalid HTTP request: {cause}")
            return False
        return not self.transport.is_closing()

    def close_after_next_response(self) -> None:
        """End this connection after a response that says ``Connection: close``: the response of the
        request under way if it has not started yet, else the next one.

        NOTE: the connection is not closed between requests: a request its client sends meanwhile
        would be lost. A client that sends none is closed by its keep-alive timeout, as any other.
        """
        self._last_response = True
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False  # NOTE: self.cycle is the last request read, pipelined or not

    def shutdown(self) -> None:
        """At shutdown: finish the request under way, or serve one that is on its way, then close.

        NOTE: uvicorn closes a connection between requests at once, which resets a request its client
        has sent but the worker has not read yet (all those its listener still queued, above all).
        """
        self.close_after_next_response()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # NOTE: a response already started closes without saying so
        elif not self._in_message:
            self._wait_for_client(GRACE_SECONDS)

    # Parser callbacks (httptools calls them while it parses)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self._idle_since = None
        if self._deadline is None:  # NOTE: pipelined behind a request that the app still answers
            self._wait_for_client(self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._head_done = True
        if self._last_response:
            self.cycle.keep_alive = False
        if self.expect_100_continue:
            self.cycle.receive = functools.partial(self._receive_after_continue, self.cycle, self.cycle.receive)
        self._wait_for_client(self.limits.body_timeout)

    async def _receive_after_continue(self, cycle: Any, receive: Callable[[], Awaitable[Any]]) -> Any:
        """The app asks for the body of a request that expects ``100 Continue``, which the client waits
        for before it sends the body: the client's time for the body starts now."""
        if cycle.waiting_for_100_continue and cycle is self.cycle and self._head_done:
            self._wait_for_client(self.limits.body_timeout)
        return await receive()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._deadline is not None:
            self._deadline += len(body) / self.limits.body_min_rate

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_message = self._head_done = False
        self._head_bytes = 0
        if self.cycle.response_complete:  # NOTE: answered before its body ended (a 413, say)
            self._wait_for_client(self.limits.header_timeout)
        else:
            self._deadline = None

    def on_response_complete(self) -> None:
        if self._sending is not None:
            self._sending.send_head()  # NOTE: a response with no body (HEAD, say) has not sent it yet
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_message and self.cycle.response_complete:
            self._idle_since = self.loop.time()
            self._wait_for_client(self.limits.header_timeout)

    def idle_seconds(self) -> float:
        """How long the connection has waited for its client's next request (0 while one is under way)."""
        return 0.0 if self._idle_since is None else self.loop.time() - self._idle_since

    # The client's time

    def _wait_for_client(self, seconds: float) -> None:
        """What the client owes (a head, a body, a next request) must come within ``seconds``.

        NOTE: one timer per connection, moved only when a deadline comes closer: a request costs no
        timer of its own.
        """
        self._deadline = self.loop.time() + seconds
        if self._timer is None or self._deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
        elif self._app_holds_the_body():
            self._wait_for_client(self.limits.body_timeout)
        elif _has_unread_bytes(self.transport):
            self._wait_for_client(GRACE_SECONDS)  # NOTE: what came waits for a worker too busy to read it
        elif not self._in_message:
            self.transport.close()  # NOTE: no part of a request came, so none is answered
        elif self._head_done:
            rate, timeout = self.limits.body_min_rate, self.limits.body_timeout
            self._refuse(408, f"The request body did not arrive in time ({timeout:g} s + 1 s per {rate} bytes)")
        else:
            timeout = self.limits.header_timeout
            self._refuse(408, f"The request line and headers did not arrive within {timeout:g} s")

    def _app_holds_the_body(self) -> bool:
        """Whether the body waits on the app, not on the client: the worker stopped reading (the app
        has not taken what came), or the client waits for ``100 Continue`` (sent when the app reads)."""
        return self.flow.read_paused or (self._head_done and self.cycle.waiting_for_100_continue)

    # Errors

    def _refuse(self, status: int, message: str, *, has_cycle: bool | None = None) -> None:
        """Answer ``status`` unless the client waits for another answer first, end the request's app
        call, and close (after :data:`LINGER_SECONDS`, or when the client closes first).

        ``has_cycle``: whether ``self.cycle`` is the refused request's own (by default, once its head
        is done); else it is an earlier request's, or None.
        """
        log.debug("Refused a request from %s with %d: %s", self.client, status, message)
        cycle = self.cycle
        if self._head_done if has_cycle is None else has_cycle:
            answer = not cycle.response_started and not self.pipeline
        else:
            answer = cycle is None or cycle.response_complete
        if answer:
            self.transport.write(self._error_response(status, message))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # NOTE: the app's receive() returns a disconnect, its send() nothing
            cycle.message_event.set()
        self._deadline = None
        self._lingering = True
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _error_response(self, status: int, message: str, headers: tuple[bytes, ...] = ()) -> bytes:
        """A whole response: ``{"error": message}`` as every error of the server, then close."""
        body = error_body(message)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body), *headers]
        head.append(b"connection: close\r\n\r\n")
        return b"".join([*head, body])


class OneSendPerResponse:
    """A connection's transport that sends a response's head together with the first bytes after it.

    uvicorn writes a response's status line and headers, then its body, each at once: two sends, two TCP
    segments, and two reads for the client, for a small answer that fits one. Here a write that begins a
    final response (``HTTP/1.1 NNN``, not ``1xx``) is held and goes out with the next write in one
    ``writelines`` (one ``writev``); when no write follows (a ``HEAD`` answer), :meth:`send_head` sends it once
    the response is complete, and it goes first when the connection ends. Every other call is the transport's.
    """

    __slots__ = ("_transport", "_head")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.writelines((head, data))
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # NOTE: an interim 100 Continue is awaited: never held
            self._head = data
        else:
            self._transport.write(data)

    def send_head(self) -> None:
        """Send a held head now (dropped where the connection is closing: its client is gone)."""
        if self._head is not None and not self._transport.is_closing():
            head, self._head = self._head, None
            self._transport.write(head)

    def write_eof(self) -> None:
        self.send_head()
        self._transport.write_eof()

    def close(self) -> None:
        self.send_head()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _has_unread_bytes(transport: asyncio.BaseTransport) -> bool:
    """Whether the client's bytes (or its end of the connection) wait in the kernel, unread."""
    poller = select.poll()
    poller.register(transport.get_extra_info("socket").fileno(), select.POLLIN)
    return bool(poller.poll(0))
