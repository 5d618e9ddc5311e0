"""Fixtures of the server tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.asgi_client import AsgiClient, worker_client
from tfaas.config import Settings
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
