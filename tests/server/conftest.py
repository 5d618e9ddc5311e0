"""Fixtures of the server tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.asgi_client import AsgiClient, worker_client
from tfaas.config import Settings
from tfaas.core.loader import LoaderFactory
from tfaas.metrics import Metrics
from tfaas.server_core import ServerCore

MANAGED = Settings(enable_model_management=True, model_repository="/srv/repo")
"""Settings under which TFaaS's write calls are on."""


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Callable[..., AsgiClient]]:
    """Makes a client of a worker (not started) whose repository is in ``tmp_path``, with ``settings``."""
    clients: list[AsgiClient] = []

    def client(**settings: Any) -> AsgiClient:
        base = dataclasses.replace(MANAGED, model_repository=str(tmp_path / "repo"), file_system_poll_wait_seconds=-1)
        clients.append(worker_client(ServerCore(dataclasses.replace(base, **settings))))
        return clients[-1]

    yield client
    for made in clients:
        made.close()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., AsgiClient]]:
    """``start_worker(settings, loader_factory, ready, metrics=None)``: a client of a worker over a started
    core, once ``ready(core)`` holds (within 5 s); every one started is stopped at the end."""
    started: list[tuple[ServerCore, AsgiClient]] = []

    def start(
        settings: Settings,
        loader_factory: LoaderFactory,
        ready: Callable[[ServerCore], Any],
        metrics: Metrics | None = None,
    ) -> AsgiClient:
        core = ServerCore(settings, loader_factory=loader_factory, metrics=metrics)
        core.start()
        started.append((core, worker_client(core)))
        assert core.wait_until(lambda: ready(core), 5)
        return started[-1][1]

    yield start
    for core, client in started:
        client.close()
        core.stop()
