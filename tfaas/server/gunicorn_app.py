"""Runs the app under gunicorn, building one ``ServerCore`` per worker after the fork.

NOTE: TensorFlow is not fork-safe, so nothing here imports it or loads a model in the master: the app
is never preloaded, each worker builds its own core in ``load()``, and models then load on the core's
thread pools while the worker already answers (503 for a model that is still loading).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from tfaas.config import Settings

LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class TfaasApplication(BaseApplication):
    """gunicorn application serving ``settings``: gthread workers, one core per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.core: Any = None  # the worker's ServerCore, built in load()
        super().__init__(prog="tfaas serve")

    def load_config(self) -> None:
        """Translate our settings into gunicorn's (gunicorn's own CLI parsing is not used)."""
        s = self.settings
        options = {
            "bind": f"{s.host}:{s.rest_api_port}",
            "workers": str(s.workers),
            "worker_class": "gthread",
            "threads": str(s.threads),
            "graceful_timeout": str(int(s.graceful_timeout)),
            "preload_app": False,
            "loglevel": s.log_level,
            "worker_exit": self._on_worker_exit,
            "control_socket_disable": True,  # NOTE: one shared socket path would clash between servers
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build this worker's core and app (runs in the worker, after the fork)."""
        from tfaas.server.app import create_app
        from tfaas.server_core import ServerCore

        configure_logging(self.settings.log_level)
        # NOTE: TF's C++ INFO lines would drown our logs; warnings and errors still show.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        self.core = ServerCore(self.settings)
        self.core.start()
        return create_app(self.core)

    def _on_worker_exit(self, server: Any, worker: Any) -> None:
        if self.core is not None:
            self.core.stop()


def configure_logging(level: str) -> None:
    """One log format for tfaas's loggers, on stderr beside gunicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger("tfaas")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def serve(settings: Settings) -> None:
    """Run gunicorn in the foreground until it is told to stop."""
    TfaasApplication(settings).run()
