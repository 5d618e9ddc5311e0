"""Why every worker listens on a socket of its own, and the start-up check that this needs.

With one listening socket shared by all workers (gunicorn's default), a keep-alive connection stays
with whichever worker accepted it, and clients that open their connections at once (a pool, a load
balancer, ``wrk -c32``) land unevenly: measured on 2 workers with 32 connections, 8/24, 4/28, 7/25
and 18/14 per worker, one worker saturating its core (the GIL) while the other idled. With gunicorn's
``reuse_port``, each worker opens its own ``SO_REUSEPORT`` socket after the fork and the kernel hashes
every new connection to one of them: 20/12, 15/17, 16/16, 18/14 in the same test, and 1.3–3× the
req/s of the unbalanced windows.

``SO_REUSEPORT`` would also let a second server start on a port that is in use and silently share
its traffic; :func:`check_port_free` refuses that at start, as a plain bind would.
"""

from __future__ import annotations

import errno
import socket


def check_port_free(host: str, port: int) -> None:
    """Raise ``RuntimeError`` when something already listens on ``host:port`` (SO_REUSEADDR, not REUSEPORT)."""
    # NOTE: the first address only, the one gunicorn binds as well.
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise RuntimeError(f"Connection in use: {host}:{port}") from None
            raise
