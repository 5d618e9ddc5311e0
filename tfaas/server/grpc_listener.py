"""A worker's gRPC server: TF Serving's gRPC API, the Open Inference Protocol's (:mod:`tfaas.fronts.v2_grpc`),
health and reflection, in and out of rotation with its REST listener.

Every worker serves gRPC with ``grpc.aio`` on its own event loop (uvloop, the loop of its REST front), bound
with ``SO_REUSEPORT`` (``grpc.so_reuseport``) to the gRPC port, as its REST listener is to the REST port. The
design was chosen by measurement (``python perf/grpc_floor.py``: a trivial unary handler, two client
processes with 16 calls in flight each, on this 2-core machine): server CPU per call 0.18 ms for
``grpc.aio`` on uvloop, 0.20 ms on asyncio's loop, 0.21 ms for grpcio's thread-pool server (8 threads);
with 4 × 8 calls in flight 0.19 / 0.26 / 0.25 ms, and with one call at a time 0.27 / 0.36 / 0.32 ms. The
asyncio server on uvloop was the cheapest every time, and it shares the loop with the REST front, so a
predict's model call is awaited (the batcher's thread wakes the loop) instead of holding a thread.

The one-lifecycle guarantee holds for gRPC as for REST: :class:`GrpcListener` is one of the worker's
:class:`~tfaas.server.rotation.Rotation` listeners, opened only when the worker enters rotation (it holds
every version that serves) and closed when it leaves (its window, where it loads, and SIGTERM). A stopped
gRPC server cannot start again, so each entry builds a new one.

Leaving loses no call, in three steps. (1) The server's listener drops new connections' first packet
(the REST listener's SYN filter, put on the socket grpcio opened): clients connect again a second later,
to the workers in rotation. (2) Its connections leave by themselves: every connection gets a graceful
GOAWAY when it is :data:`MAX_CONNECTION_AGE_MS` old (``grpc.max_connection_age_ms``), and its client
reconnects, elsewhere now, the calls it sends meanwhile still served; the worker waits until it holds
no connection (at once where it had none), for that age at most. (3) Only then the server stops, giving
the calls still under way ``graceful_timeout``: awaited at SIGTERM, in the background in a window.
Stopping at once instead failed calls: grpc-core cancels the calls that arrived but were not yet handed
to the application, and a client that reconnected as the listener closed had its connection reset
(``python perf/grpc_drain.py``: two servers sharing a port under four clients, 2 to 5 CANCELLED calls
in 6 stops, none with the three steps). The same age spreads the clients over the workers again after
one entered rotation: a gRPC client keeps its connection, where a REST one is asked to reconnect.

With ``grpc_socket_path``, the server also listens on a private Unix socket of the worker, to which the
worker forwards the connections it accepts, while in rotation, from the socket at that path
(:mod:`tfaas.server.unix_socket`); leaving, it stops accepting there first.

Health (``grpc.health.v1``) follows the server's readiness (``ServerCore.is_ready()``): ``NOT_SERVING``
until every model readiness waits for serves, then ``SERVING``, for ``""`` and for both of TF Serving's
services under their full names and the short ones TF Serving's own health service uses. Reflection
lists the services, for ``grpcurl``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import socket
import tempfile
from typing import Any, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from tfaas.config import Settings, parse_channel_arguments
from tfaas.fronts import v2_grpc
from tfaas.fronts.tf_serving_grpc import (
    MODEL_SERVICE,
    PREDICTION_SERVICE,
    ModelServicer,
    PredictionServicer,
    add_to_server,
)
from tfaas.inference.service import InferenceService
from tfaas.server.listeners import has_connections, listening_sockets, refuse_handshakes_on
from tfaas.server.rotation import warn_unfiltered
from tfaas.server.unix_socket import UnixSocketForwarder
from tfaas.tracing.grpc_metadata import TraceMetadata

log = logging.getLogger("tfaas.server")

MAX_RECEIVE = "grpc.max_receive_message_length"
MAX_AGE = "grpc.max_connection_age_ms"
MAX_AGE_GRACE = "grpc.max_connection_age_grace_ms"

MAX_CONNECTION_AGE_MS = 1000
"""A connection's age at its GOAWAY, unless ``grpc_channel_arguments`` sets another: how long a worker
leaving rotation waits for its connections to move, and how often a client reconnects (a TCP and HTTP/2
handshake, in grpc-core: no Python runs for it)."""

AGE_JITTER = 1.1
"""grpc-core spreads connection ages by ±10%."""

GOAWAY_SECONDS = 0.2
"""After its age, a connection's final GOAWAY waits for a ping round trip."""

LEAVE_POLL_SECONDS = 0.05
"""How often a leaving worker looks whether its gRPC connections are gone."""

HEALTH_NAMES = ("", PREDICTION_SERVICE, MODEL_SERVICE, "PredictionService", "ModelService")
"""The names health answers for: the server, TF Serving's services, and the short names TF Serving's
``--enable_grpc_healthcheck_service`` sets."""

READINESS_POLL_SECONDS = 0.5
"""How often an open server's health looks at readiness, for ``Watch`` calls (a ``Check`` looks itself)."""


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """grpcio's options for a worker's server: ``SO_REUSEPORT``, then ``grpc_channel_arguments``, then the
    defaults of what those do not set: messages up to ``max_request_body_bytes``, connections that leave
    at :data:`MAX_CONNECTION_AGE_MS`, the calls under way then given ``graceful_timeout``.

    NOTE: ``grpc.so_reuseport`` first: where a key repeats, gRPC takes its first value, and every worker
    must join the port's group."""
    arguments = parse_channel_arguments(settings.grpc_channel_arguments)
    defaults = {
        MAX_RECEIVE: settings.max_request_body_bytes,
        MAX_AGE: MAX_CONNECTION_AGE_MS,
        MAX_AGE_GRACE: int(settings.graceful_timeout * 1000),
    }
    given = dict(arguments)
    return [("grpc.so_reuseport", 1), *arguments, *((k, v) for k, v in defaults.items() if k not in given)]


def leave_seconds(options: list[tuple[str, Any]]) -> float:
    """How long after its listener refused new connections a server has none left (but those finishing a call)."""
    age = dict(options)[MAX_AGE]
    return max(age, 0) / 1000 * AGE_JITTER + GOAWAY_SECONDS


def max_tensor_bytes(settings: Settings) -> int:
    """The most one predict input may take once decoded: the larger of the message limit and
    ``max_request_body_bytes`` (an unlimited message size leaves the latter)."""
    received = dict(parse_channel_arguments(settings.grpc_channel_arguments)).get(MAX_RECEIVE)
    limit = received if isinstance(received, int) and received > 0 else 0
    return max(limit, settings.max_request_body_bytes)


class ReadinessHealth(health_aio.HealthServicer):
    """The standard health service, every name of :data:`HEALTH_NAMES` following ``is_ready()``."""

    def __init__(self, is_ready: Callable[[], bool]) -> None:
        super().__init__()
        self._is_ready = is_ready
        self._serving: bool | None = None

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self.follow_readiness()
        return await super().Check(request, context)

    async def follow_readiness(self) -> None:
        """Set every name to what readiness says now (watchers hear of a change)."""
        serving = self._is_ready()
        if serving != self._serving:
            self._serving = serving
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in HEALTH_NAMES:
                await self.set(name, status)

    async def poll_readiness(self) -> None:
        """Follow readiness until cancelled."""
        while True:
            await self.follow_readiness()
            await asyncio.sleep(READINESS_POLL_SECONDS)


class GrpcListener:
    """One worker's gRPC server over ``service``, as a :class:`~tfaas.server.rotation.RotatingListener`:
    on ``grpc_port`` (unless 0), and on ``unix_listener`` (the master's socket at ``grpc_socket_path``)."""

    def __init__(
        self, settings: Settings, service: InferenceService, unix_listener: socket.socket | None = None
    ) -> None:
        self._settings = settings
        self._service = service
        self._forwarder = UnixSocketForwarder(unix_listener) if unix_listener is not None else None
        self._private_dir: str | None = None
        self._private_names = itertools.count()
        self._options = server_options(settings)
        self._leave_seconds = leave_seconds(self._options)
        self._max_tensor_bytes = max_tensor_bytes(settings)
        self._server: grpc.aio.Server | None = None
        self._sockets: list[int] = []
        self._private_path = ""
        self._health: ReadinessHealth | None = None
        self._follower: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Future[None]] = set()

    @property
    def address(self) -> str:
        """``host:port``, as gRPC takes it (an IPv6 host in brackets)."""
        host, port = self._settings.host, self._settings.grpc_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def open(self) -> None:
        """Build and start a new server (a stopped one cannot start again)."""
        server = grpc.aio.server(
            options=self._options,
            maximum_concurrent_rpcs=self._settings.grpc_max_threads or None,
            interceptors=[TraceMetadata()] if self._service.core.tracing is not None else None,
        )
        add_to_server(server, PredictionServicer(self._service, self._max_tensor_bytes), ModelServicer(self._service))
        v2_grpc.add_to_server(server, self._service)
        health = ReadinessHealth(self._service.core.is_ready)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        names = (PREDICTION_SERVICE, MODEL_SERVICE, v2_grpc.SERVICE, health_name)
        reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
        sockets = self._listen_on_port(server) if self._settings.grpc_port else []
        private = self._listen_privately(server) if self._forwarder is not None else ""
        await health.follow_readiness()
        await server.start()
        if self._forwarder is not None:
            try:
                await self._forwarder.open(private)
            except BaseException:
                await server.stop(None)
                raise
        self._server, self._health, self._sockets, self._private_path = server, health, sockets, private
        self._follower = asyncio.get_running_loop().create_task(health.poll_readiness())
        log.debug("Worker %s serves gRPC on %s", os.getpid(), self.address)

    def _listen_on_port(self, server: grpc.aio.Server) -> list[int]:
        """Bind ``server`` to the gRPC port; return the descriptors of the sockets grpcio opened for it."""
        others = listening_sockets(self._settings.grpc_port)
        server.add_insecure_port(self.address)  # NOTE: raises RuntimeError where it cannot bind
        return [fd for inode, fd in listening_sockets(self._settings.grpc_port).items() if inode not in others]

    def _listen_privately(self, server: grpc.aio.Server) -> str:
        """Bind ``server`` to a new Unix socket in this worker's own directory (mode 0700); return its path.

        NOTE: a new path for each server: grpcio unlinks its socket when it stops, and a server that
        stopped in a window may still be finishing calls when the next one starts.
        """
        if self._private_dir is None:
            self._private_dir = tempfile.mkdtemp(prefix="tfaas-grpc-")
        path = os.path.join(self._private_dir, f"{next(self._private_names)}.sock")
        server.add_insecure_port(f"unix:{path}")
        return path

    async def close(self, shutdown: bool) -> None:
        """Take no new connection, say NOT_SERVING, let the connections move, then stop: see the module
        docstring. At ``shutdown`` also wait for the calls still under way, and for earlier servers'."""
        server, health, follower = self._server, self._health, self._follower
        if server is None or health is None or follower is None:
            return
        sockets, self._sockets = self._sockets, []
        self._server = self._health = self._follower = None
        follower.cancel()
        if self._forwarder is not None:
            self._forwarder.close()
        if not all([refuse_handshakes_on(fd) for fd in sockets]):
            warn_unfiltered()
        await health.enter_graceful_shutdown()
        await self._connections_leave()
        stop = asyncio.ensure_future(server.stop(self._settings.graceful_timeout))
        self._stopping.add(stop)
        stop.add_done_callback(self._stopping.discard)
        if shutdown:
            await asyncio.gather(*self._stopping)
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)

    async def _connections_leave(self) -> None:
        """Wait until the server holds no connection (at once when it has none), for the time they take to
        leave by age at most."""
        deadline = asyncio.get_running_loop().time() + self._leave_seconds
        port = self._settings.grpc_port or None
        paths = [self._private_path] if self._private_path else []
        while has_connections(port, paths) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(LEAVE_POLL_SECONDS)

    def shed(self) -> None:
        """Nothing to do: connections move by themselves at :data:`MAX_CONNECTION_AGE_MS`."""
