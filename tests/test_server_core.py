"""``ServerCore``: which models readiness waits for, why one is not ready, and when a model that does
not serve is "not found" (404) rather than "loading" (503). Real directories, a real source and
manager; the loader is a small fake that fails where the version holds a ``fail`` file."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tfaas.config import ModelConfig, Settings
from tfaas.core.servable_id import ServableId
from tfaas.core.server_state import Decision, ModelDecision, WorkerReport
from tfaas.core.source import AspiredVersion
from tfaas.core.states import ManagerState
from tfaas.errors import NotFound, Unavailable
from tfaas.server_core import ModelSpec, ServerCore


class MarkerLoader:
    """Loads at once, or fails with the text of the version's ``fail`` file."""

    def __init__(self, id: ServableId, path: str) -> None:
        self.path = Path(path)

    def load(self) -> object:
        if (self.path / "fail").exists():
            raise RuntimeError((self.path / "fail").read_text())
        return object()

    def unload(self) -> None:
        pass


def write_version(base: Path, version: int, fail: str = "") -> Path:
    """A version directory the source takes as complete (a graph file, no variables)."""
    path = base / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"fake")
    if fail:
        (path / "fail").write_text(fail)
    return path


@pytest.fixture
def make_core() -> Iterator[Callable[..., ServerCore]]:
    """``make_core(models, **settings)``: a started core over ``{name: base path}``; stopped at the end."""
    cores: list[ServerCore] = []

    def build(models: dict[str, Path], repository_models_at_start: list[str] | None = None, **options) -> ServerCore:
        settings = Settings(
            models=tuple(ModelConfig(name=n, base_path=str(p)) for n, p in models.items()),
            enable_batching=False,
            version_settle_seconds=0,
            file_system_poll_wait_seconds=-1,
            max_num_load_retries=0,
            **options,
        )
        core = ServerCore(settings, MarkerLoader, repository_models_at_start=repository_models_at_start)
        cores.append(core)
        core.start()
        return core

    yield build
    for core in cores:
        core.stop()


def wait_for(predicate: Callable[[], object], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def failed(core: ServerCore, name: str, version: int) -> bool:
    state = core.states(name).get(version)
    return state is not None and state.state is ManagerState.END and bool(state.error)


def test_a_model_with_no_version_is_not_found_for_good(tmp_path, make_core):
    (tmp_path / "empty" / "not_a_version").mkdir(parents=True)
    core = make_core({"missing": tmp_path / "missing", "empty": tmp_path / "empty"})
    for _ in range(2):
        for name in ("missing", "empty"):
            with pytest.raises(NotFound, match=rf"^Servable not found for request: Latest\({name}\)$"):
                core.get_handle(ModelSpec(name))
            with pytest.raises(NotFound, match=rf"^Servable not found for request: Specific\({name}, 1\)$"):
                core.get_handle(ModelSpec(name, version=1))
        time.sleep(0.2)


def test_a_version_on_its_way_is_loading_until_it_serves(tmp_path, make_core):
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)  # NOTE: a copy that has not reached its graph file yet
    core = make_core({"m": tmp_path / "m"})
    incomplete = "Model m is loading: version 1 is incomplete: none of saved_model.pb, saved_model.pbtxt, model.pb"
    with pytest.raises(Unavailable, match=f"^{incomplete}$"):
        core.get_handle(ModelSpec("m"))
    with pytest.raises(Unavailable, match=f"^{incomplete}$"):
        core.get_handle(ModelSpec("m", version=1))
    with pytest.raises(NotFound, match=r"Specific\(m, 2\)"):
        core.get_handle(ModelSpec("m", version=2))
    assert core.not_ready() == {"m": "version 1 is incomplete: none of saved_model.pb, saved_model.pbtxt, model.pb"}

    (version / "saved_model.pb").write_bytes(b"fake")
    wait_for(lambda: core.available_versions("m") == [1])
    with core.get_handle(ModelSpec("m")) as handle:
        assert handle.id.version == 1
    assert core.not_ready() == {} and core.is_ready()


def test_not_ready_names_each_model_that_does_not_serve_and_why(tmp_path, make_core):
    write_version(tmp_path / "good", 1)
    write_version(tmp_path / "broken", 2, fail="bad graph")
    (tmp_path / "empty").mkdir()
    core = make_core({n: tmp_path / n for n in ("good", "broken", "empty", "missing")})
    wait_for(lambda: failed(core, "broken", 2) and core.available_versions("good"))

    assert not core.is_ready()
    assert core.not_ready() == {
        "broken": "version 2 failed to load: bad graph",
        "empty": f"no version found under {tmp_path / 'empty'}",
        "missing": f"base path {tmp_path / 'missing'} does not exist",
    }
    with pytest.raises(NotFound, match=r"Latest\(broken\)"):
        core.get_handle(ModelSpec("broken"))


def test_readiness_waits_for_configured_models_and_the_repository_models_there_at_start(tmp_path, make_core):
    repository = tmp_path / "repository"
    write_version(repository / "at_start", 1, fail="broken from the start")
    write_version(tmp_path / "configured", 1)
    core = make_core({"configured": tmp_path / "configured"}, model_repository=str(repository))
    wait_for(lambda: failed(core, "at_start", 1) and core.available_versions("configured"))
    assert core.readiness_models == ["at_start", "configured"]
    assert core.not_ready() == {"at_start": "version 1 failed to load: broken from the start"}

    # NOTE: a model put in the repository later (an upload) is served, but never makes the server unready.
    (repository / "at_start" / "1" / "fail").unlink()
    write_version(repository / "at_start", 2)
    write_version(repository / "late", 1, fail="uploaded broken")
    core.refresh_repository()
    wait_for(lambda: failed(core, "late", 1) and core.available_versions("at_start"))
    assert core.model_names == ["at_start", "configured", "late"]
    assert core.readiness_models == ["at_start", "configured"]
    assert core.is_ready() and core.not_ready() == {}
    assert core.states("late")[1].error == "uploaded broken"

    shutil.rmtree(repository / "at_start")  # NOTE: deleted, then uploaded again: now an upload like "late"
    core.refresh_repository()
    write_version(repository / "at_start", 1, fail="uploaded broken again")
    core.refresh_repository()
    wait_for(lambda: core.states("at_start")[1].error == "uploaded broken again")
    assert core.readiness_models == ["configured"] and core.is_ready()


def test_the_repository_models_at_start_can_be_given_by_the_caller(tmp_path, make_core):
    """As gunicorn's master does, so a worker started later waits for the same models as the first ones."""
    repository = tmp_path / "repository"
    write_version(repository / "uploaded_since", 1, fail="uploaded broken")
    core = make_core({}, repository_models_at_start=[], model_repository=str(repository))
    assert core.model_names == ["uploaded_since"]
    assert core.readiness_models == [] and core.is_ready()


class FollowedLifecycle:
    """A lifecycle whose decisions the test sends (``tfaas.server_core.Lifecycle``)."""

    def __init__(self) -> None:
        self.apply: Callable[[Decision], None] = lambda decision: None
        self.reports: list[WorkerReport] = []

    def connect(self, apply: Callable[[Decision], None]) -> None:
        self.apply = apply

    def report(self, report: WorkerReport) -> None:
        self.reports.append(report)

    def reload_config(self) -> bool:
        return True

    def refresh_repository(self) -> None:
        pass

    def close(self) -> None:
        pass


class ClosingRotation:
    """A listener that closes only when the test says (as a real one closes after draining its queue)."""

    def __init__(self) -> None:
        self.listening = True
        self.leaving = False
        self.wanted: list[bool] = []
        self.sheds = 0

    def set(self, listening: bool) -> None:
        self.wanted.append(listening)

    def shed_connections(self) -> None:
        self.sheds += 1


def test_a_window_loads_once_the_listener_closed_and_the_latest_is_the_servers(tmp_path):
    path = write_version(tmp_path / "m", 2)
    lifecycle, rotation = FollowedLifecycle(), ClosingRotation()
    core = ServerCore(Settings(enable_batching=False), MarkerLoader, lifecycle=lifecycle, rotation=rotation)
    core.start()
    try:
        model = ModelDecision(
            config=ModelConfig(name="m", base_path=str(tmp_path / "m")),
            incarnation=0.0,
            aspired=(AspiredVersion(ServableId("m", 2), str(path)),),
            serving=(),
            loading={2: "is loading"},
        )
        window = Decision(models={"m": model}, states={}, readiness_models=(), not_ready={}, rotation=False, shed=1)
        lifecycle.apply(window)
        assert rotation.wanted == [False] and rotation.sheds == 0  # NOTE: it sheds once its listener closed
        time.sleep(0.2)
        assert core.monitor.version_states("m") == {}, "loaded while still taking connections"
        with pytest.raises(Unavailable, match="Model m is loading: version 2 is loading"):
            core.get_handle(ModelSpec("m"))

        rotation.listening = False
        core.rotation_changed()
        wait_for(lambda: core.manager.available_versions("m") == [2])
        assert lifecycle.reports[-1].states[ServableId("m", 2)].state is ManagerState.AVAILABLE
        with pytest.raises(Unavailable):  # NOTE: loaded here, but the server does not serve it yet
            core.get_handle(ModelSpec("m"))
        lifecycle.apply(dataclasses.replace(window, models={"m": dataclasses.replace(model, serving=(2,))}))
        with core.get_handle(ModelSpec("m")) as handle:
            assert handle.id == ServableId("m", 2)
    finally:
        core.stop()
