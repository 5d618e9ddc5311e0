"""The gunicorn worker class: uvicorn (httptools' C parser on uvloop) serving the worker's ASGI front.

gunicorn stays the process manager (workers, per-worker sockets, timeouts, SIGHUP, systemd's
READY=1); each worker runs one uvicorn server on the sockets gunicorn gave it.
"""

from __future__ import annotations

import signal
from typing import Any

from uvicorn_worker import UvicornWorker


class TfaasWorker(UvicornWorker):
    """uvicorn's gunicorn worker with tfaas's settings.

    No lifespan protocol (the worker builds its core in gunicorn's ``load()``), no websockets, no
    ``server`` header (TF Serving sends none), and no uvicorn access lines (the ASGI front writes
    gunicorn's). A SIGTERM waits for in-flight requests up to gunicorn's ``graceful_timeout``.
    """

    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": "httptools",
        "ws": "none",
        "lifespan": "off",
        "server_header": False,
        "access_log": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout

    def init_signals(self) -> None:
        """SIGTERM and SIGINT end the worker through its normal exit, so ``worker_exit`` unloads the models.

        NOTE: uvicorn handles both while it serves, then restores the handlers it found and raises the
        signal again; with the default action found there (uvicorn_worker's), that second delivery
        killed the worker before gunicorn's ``worker_exit`` could run.
        """
        super().init_signals()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_requested)

    def _stop_requested(self, signum: int, frame: Any) -> None:
        self.alive = False

    async def _serve(self) -> None:
        if self.alive:  # NOTE: a stop asked for while the core was being built: never start serving
            await super()._serve()
