"""The gunicorn side: settings mapped onto gunicorn's, SIGHUP forwarded and turned into reloads."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from functools import partial
from types import SimpleNamespace

import pytest

from tfaas.config import Settings
from tfaas.logs import JsonFormatter
from tfaas.server.coordinator_process import CoordinatorProcess
from tfaas.server.gunicorn_app import (
    ListenerAddresses,
    SighupReloader,
    TfaasApplication,
    TfaasArbiter,
    remove_repository_leftovers,
)


def test_settings_become_gunicorn_settings(tmp_path):
    settings = Settings(graceful_timeout=12, threads=3, log_format="json", worker_tmp_dir=str(tmp_path))
    cfg = TfaasApplication(settings).cfg
    assert (cfg.worker_class_str, cfg.threads, cfg.graceful_timeout, cfg.preload_app) == (
        "tfaas.server.worker.TfaasWorker",
        3,
        12,
        False,
    )
    assert cfg.logconfig_dict["formatters"]["tfaas"]["()"] == f"tfaas.logs.{JsonFormatter.__name__}"
    assert cfg.worker_tmp_dir == str(tmp_path)
    assert TfaasApplication(Settings()).cfg.worker_tmp_dir is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::1", "localhost"])
def test_the_address_is_the_settings_ipv6_too(host):
    cfg = TfaasApplication(Settings(host=host, rest_api_port=8601)).cfg
    assert cfg.address == [(host, 8601)]


def test_the_master_forwards_sighup_to_the_coordinator_instead_of_replacing_the_workers():
    # NOTE: SIGHUP's default action in the child, even where this test runs under nohup (which ignores it).
    coordinator = subprocess.Popen(["sleep", "60"], preexec_fn=partial(signal.signal, signal.SIGHUP, signal.SIG_DFL))
    worker = subprocess.Popen(["sleep", "60"], preexec_fn=partial(signal.signal, signal.SIGHUP, signal.SIG_DFL))
    process = CoordinatorProcess.__new__(CoordinatorProcess)  # NOTE: only what handle_hup uses
    process.pid = coordinator.pid
    arbiter = TfaasArbiter.__new__(TfaasArbiter)  # NOTE: only what handle_hup uses, not a running master
    arbiter.log = logging.getLogger("test")
    arbiter.app = SimpleNamespace(coordinator=process)
    arbiter.WORKERS = {worker.pid: worker}
    try:
        arbiter.handle_hup()
        assert coordinator.wait(10) == -signal.SIGHUP
        assert worker.poll() is None
    finally:
        for child in (coordinator, worker):
            child.kill()
            child.wait()


@pytest.fixture
def reloader():
    previous = signal.getsignal(signal.SIGHUP)
    reloader = SighupReloader()
    yield reloader
    reloader.stop()
    signal.signal(signal.SIGHUP, previous)


def test_sighup_reloads_on_the_reload_thread_and_an_early_one_is_kept(reloader):
    calls: list[str] = []
    done = threading.Event()

    def reload() -> None:
        calls.append(threading.current_thread().name)
        done.set()

    reloader.install()
    os.kill(os.getpid(), signal.SIGHUP)  # NOTE: before start(): while the core is being built
    reloader.start(reload)
    assert done.wait(5)
    done.clear()
    os.kill(os.getpid(), signal.SIGHUP)
    assert done.wait(5)
    assert calls == ["tfaas-sighup-reload"] * 2


def test_a_failing_reload_does_not_end_the_reload_thread(reloader):
    done = threading.Event()
    attempts: list[int] = []

    def reload() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("bad")
        done.set()

    reloader.install()
    reloader.start(reload)
    os.kill(os.getpid(), signal.SIGHUP)
    threading.Event().wait(0.3)
    os.kill(os.getpid(), signal.SIGHUP)
    assert done.wait(5)


def test_the_masters_listener_line_names_the_address_its_workers_listen_at():
    def listening(*args: object) -> str:
        made = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "Listening at: %s (%s)", args, None)
        assert ListenerAddresses([("0.0.0.0", 8501), ("::1", 8502)]).filter(made)
        return made.getMessage()

    assert listening("", 41) == "Listening at: http://0.0.0.0:8501,http://[::1]:8502 (41)"
    assert listening("http://10.0.0.1:80", 41) == "Listening at: http://10.0.0.1:80 (41)"


@pytest.mark.parametrize("management", [True, False])
def test_at_start_leftovers_are_removed_only_where_model_management_is_on(tmp_path, caplog, management):
    leftover = tmp_path / "repo" / ".upload-killed"
    leftover.mkdir(parents=True)
    os.utime(leftover, (0, 0))
    settings = Settings(model_repository=str(tmp_path / "repo"), enable_model_management=management)
    with caplog.at_level(logging.INFO, logger="tfaas.server"):
        remove_repository_leftovers(settings)
    assert leftover.exists() != management
    assert (f"Removed {leftover}" in caplog.text) == management
