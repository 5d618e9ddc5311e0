"""A listening socket of each worker's own, so that keep-alive connections spread over the workers.

gunicorn's workers all accept on the one socket the master opened, and a keep-alive connection stays
with the worker that accepted it. Clients that open their connections at once (a pool, a load
balancer, ``wrk -c32``) land unevenly: measured on 2 workers with 32 connections, 8/24, 4/28, 7/25
and 18/14 per worker, so one worker saturates its core (the GIL) while the other idles.

With ``SO_REUSEPORT`` on the master's socket, each worker opens one more socket on the same address;
the kernel then hashes every new connection to one socket of the group, spreading them evenly.
Workers keep accepting on the shared socket too: the connections the kernel gives it are taken by
whichever worker is free. Because ``SO_REUSEPORT`` would also let a second server bind a port that is
in use, :func:`check_port_free` refuses that at start, as a plain bind would.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

log = logging.getLogger("tfaas.server")

_INET = (socket.AF_INET, socket.AF_INET6)


def check_port_free(host: str, port: int) -> None:
    """Raise ``RuntimeError`` when something already listens on ``host:port`` (SO_REUSEADDR, not REUSEPORT)."""
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise RuntimeError(f"Connection in use: {host}:{port}") from None
                raise
        return


def add_own_listeners(worker: Any) -> None:
    """Give ``worker`` (a gunicorn worker, before its loop starts) a reuse-port socket per TCP listener.

    Where that fails (a kernel without SO_REUSEPORT), the worker keeps the shared socket only.
    """
    for shared in list(worker.sockets):
        family = shared.family
        if family not in _INET:
            continue
        own = socket.socket(family, socket.SOCK_STREAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                v6only = shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            own.bind(shared.getsockname())
            own.listen(worker.cfg.backlog)
        except OSError as error:
            own.close()
            log.warning("Worker %s keeps the shared listening socket only: %s", worker.pid, error)
            continue
        worker.sockets.append(own)
