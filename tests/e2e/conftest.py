"""Fixtures for end-to-end tests: real SavedModels, built once per session, and a real server."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.e2e.multi_model import write_multi_model
from tests.e2e.server import Launcher, ServerProcess, wait_for
from tests.tfserving_models import write_half_plus_tf2


@pytest.fixture(scope="session")
def half_plus(tmp_path_factory) -> Callable[[float], Path]:
    """``half_plus(bias)``: the path of a TF2 SavedModel for ``0.5 * x + bias`` (``x`` float [None, 1]),
    built once per bias."""
    root = tmp_path_factory.mktemp("models")
    built: dict[float, Path] = {}

    def get(bias: float) -> Path:
        if bias not in built:
            built[bias] = root / f"half_plus_{bias:g}"
            write_half_plus_tf2(built[bias], bias)
        return built[bias]

    return get


def model_config(name: str, base_path: Path, extra: str = "") -> str:
    """One ``config { ... }`` entry of TF Serving's ``model_config_list`` text format."""
    return f'config {{ name: "{name}" base_path: "{base_path}" model_platform: "tensorflow" {extra} }}'


def model_config_list(configs: list[str]) -> str:
    """A whole ``model_config_list`` file from its entries."""
    return "model_config_list {\n  " + "\n  ".join(configs) + "\n}\n"


def install_version(model: Path, base: Path, version: int) -> Path:
    """Copy a built model into ``base/<version>`` (a plain, non-atomic copy, as users do)."""
    target = base / str(version)
    shutil.copytree(model, target)
    return target


@pytest.fixture(scope="module")
def start_server(tmp_path_factory) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(*args, env=...)`` starts a server; every one started is stopped at the end."""
    launcher = Launcher(tmp_path_factory)
    yield launcher.start
    launcher.close()


@pytest.fixture(scope="session")
def multi_model(tmp_path_factory) -> Path:
    """The base path of the ``multi`` model (see ``multi_model.py``), version 1 only, built once per session."""
    base = tmp_path_factory.mktemp("multi") / "multi"
    write_multi_model(base / "1")
    return base


@pytest.fixture(scope="session")
def multi_server(tmp_path_factory, multi_model: Path) -> Iterator[ServerProcess]:
    """One server for the whole session serving only ``multi`` (label ``stable`` is version 1).

    Shared by the golden and malformed-request tests, which only read from it.
    """
    root = tmp_path_factory.mktemp("multi_server")
    config = root / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "multi" base_path: "{multi_model}" model_platform: "tensorflow" '
        'version_labels { key: "stable" value: 1 } } }\n'
    )
    server = ServerProcess(["--model_config_file", str(config)], root / "server.log")
    try:
        wait_for(lambda: _answers(server), timeout=120, interval=0.1)
        server.wait_available("multi", 1)
        yield server
    finally:
        server.stop()


def _answers(server: ServerProcess) -> bool:
    """Whether ``server`` answers HTTP yet; a read timeout (the worker still booting) counts as not yet."""
    if server.process.poll() is not None:
        raise AssertionError(f"server exited early:\n{server.log()}")
    try:
        requests.get(server.url + "/v1/models/multi", timeout=5)
    except requests.RequestException:
        return False
    return True
