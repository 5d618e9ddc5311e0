"""Tests of ``FileSystemStoragePathSource`` on real temporary directories (no file-system mocking)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.tfserving_models import TfServingTestdata
from tfaas.core.source import AspiredVersion
from tfaas.core.version_policy import ServableVersionPolicy
from tfaas.sources.file_system import FileSystemStoragePathSource, ServableSourceConfig

# NOTE: watchdog warns when a directory created inside a recursive watch gets its watch added twice (a race
# inside watchdog, harmless).
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

LATEST_1 = ServableVersionPolicy()
ALL = ServableVersionPolicy(kind="all")


class Recorder:
    """A thread-safe aspired-versions callback that remembers every call and checks none overlap."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls: list[tuple[str, list[int], list[str], float]] = []
        self._active = 0
        self.overlapped = False
        self.threads: set[str] = set()
        self.poll_threads: set[threading.Thread] = set()

    def __call__(self, name: str, versions: list[AspiredVersion]) -> None:
        with self._cond:
            self._active += 1
            self.overlapped |= self._active > 1
        time.sleep(0.001)  # NOTE: widens the window in which an overlapping call would be noticed.
        with self._cond:
            self._active -= 1
            self.threads.add(threading.current_thread().name)
            if threading.current_thread() is not threading.main_thread():
                self.poll_threads.add(threading.current_thread())
            paths = [v.path for v in versions]
            self._calls.append((name, [v.id.version for v in versions], paths, time.time()))
            self._cond.notify_all()

    def calls(self, name: str | None = None) -> list[list[int]]:
        """The version lists received so far (for one model, or all)."""
        with self._cond:
            return [c[1] for c in self._calls if name is None or c[0] == name]

    def last(self, name: str) -> tuple[list[int], list[str], float] | None:
        """The last call for ``name``: versions, paths, time received."""
        with self._cond:
            found = [c for c in self._calls if c[0] == name]
        return (found[-1][1], found[-1][2], found[-1][3]) if found else None

    def wait_for(self, name: str, versions: list[int], timeout: float = 5.0) -> float:
        """Wait until the last list received for ``name`` is ``versions``; return the time it arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self._calls if c[0] == name]
                if found and found[-1][1] == versions:
                    return found[-1][3]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{name}: wanted {versions}, got {[c[1] for c in found]}")
                self._cond.wait(remaining)


def make_model(version_dir: Path, shards: int = 1, graph: str = "saved_model.pb") -> Path:
    """A fake SavedModel: a graph file and a variables checkpoint with ``shards`` data shards."""
    (version_dir / "variables").mkdir(parents=True, exist_ok=True)
    (version_dir / graph).write_bytes(b"graph")
    (version_dir / "variables" / "variables.index").write_bytes(b"index")
    for shard in range(shards):
        (version_dir / "variables" / f"variables.data-{shard:05d}-of-{shards:05d}").write_bytes(b"data")
    return version_dir


@pytest.fixture
def make_source() -> Iterator[Callable[..., tuple[FileSystemStoragePathSource, Recorder]]]:
    """Build, wire and start sources; stop them all at the end of the test."""
    sources: list[FileSystemStoragePathSource] = []

    def build(
        *servables: ServableSourceConfig, start: bool = True, **options: object
    ) -> tuple[FileSystemStoragePathSource, Recorder]:
        options.setdefault("poll_wait_seconds", 30.0)
        options.setdefault("settle_seconds", 0.0)
        source = FileSystemStoragePathSource(list(servables), **options)
        recorder = Recorder()
        source.set_aspired_versions_callback(recorder)
        sources.append(source)
        if start:
            source.start()
        return source, recorder

    yield build
    for source in sources:
        source.stop()


def test_only_numeric_directories_are_versions_and_leading_zeros_parse(tmp_path, make_source):
    make_model(tmp_path / "00000123")
    make_model(tmp_path / "7")
    for ignored in ("tmp", "3.partial", ".9", "12a"):
        make_model(tmp_path / ignored)
    (tmp_path / "500").write_bytes(b"a file, not a directory")

    _, recorder = make_source(ServableSourceConfig("m", str(tmp_path), ALL))

    # NOTE: start() polls synchronously, so the initial versions are known on return.
    assert recorder.last("m")[:2] == ([123, 7], [str(tmp_path / "00000123"), str(tmp_path / "7")])


def test_duplicate_version_directories_warn_and_use_one(tmp_path, make_source, caplog):
    make_model(tmp_path / "1")
    make_model(tmp_path / "001")
    with caplog.at_level(logging.WARNING, logger="tfaas.sources"):
        _, recorder = make_source(ServableSourceConfig("m", str(tmp_path), ALL))
    assert recorder.last("m")[:2] == ([1], [str(tmp_path / "1")])
    assert "Duplicate version directories detected for servable m version 1" in caplog.text


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (LATEST_1, [5]),
        (ServableVersionPolicy(kind="latest", num_versions=2), [5, 3]),
        (ALL, [5, 3, 1]),
        (ServableVersionPolicy(kind="specific", versions=(1, 5, 9)), [5, 1]),
        (ServableVersionPolicy(kind="specific", versions=()), []),
    ],
)
def test_version_policy_selects_among_versions(tmp_path, make_source, policy, expected):
    for version in (1, 3, 5):
        make_model(tmp_path / str(version))
    _, recorder = make_source(ServableSourceConfig("m", str(tmp_path), policy))
    assert recorder.calls("m") == [expected]


def test_incomplete_versions_are_aspired_only_once_completed(tmp_path, make_source):
    make_model(tmp_path / "1")
    make_model(tmp_path / "2", graph="model.pb")  # NOTE: a TFaaS frozen graph counts as complete.
    no_graph = make_model(tmp_path / "3")
    (no_graph / "saved_model.pb").unlink()
    missing_shard = make_model(tmp_path / "4", shards=3)
    (missing_shard / "variables" / "variables.data-00001-of-00003").unlink()
    no_index = make_model(tmp_path / "5")
    (no_index / "variables" / "variables.index").unlink()
    no_shards = make_model(tmp_path / "6", shards=0)

    _, recorder = make_source(ServableSourceConfig("m", str(tmp_path), ALL))
    assert recorder.calls("m") == [[2, 1]]

    (no_graph / "saved_model.pb").write_bytes(b"graph")
    recorder.wait_for("m", [3, 2, 1])
    (missing_shard / "variables" / "variables.data-00001-of-00003").write_bytes(b"data")
    (no_index / "variables" / "variables.index").write_bytes(b"index")
    (no_shards / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    recorder.wait_for("m", [6, 5, 4, 3, 2, 1])


def test_tf_serving_testdata(make_source, tfserving_testdata: TfServingTestdata):
    # NOTE: tf_text_regression/01 has variables but no saved_model.pb: TF Serving would try to load it.
    _, recorder = make_source(
        ServableSourceConfig("counter", str(tfserving_testdata.path("saved_model_counter"))),
        ServableSourceConfig("text", str(tfserving_testdata.path("tf_text_regression"))),
        ServableSourceConfig("bad", str(tfserving_testdata.path("bad_half_plus_two"))),
        poll_wait_seconds=-1,
    )
    assert recorder.calls("counter") == [[123]]
    assert recorder.calls("text") == [[]]
    # NOTE: a legacy export is no model mid-copy: it is aspired so that its load fails visibly.
    assert recorder.calls("bad") == [[123]]


def test_half_copied_version_is_aspired_only_once_settled(tmp_path, make_source):
    make_model(tmp_path / "1")
    _, recorder = make_source(ServableSourceConfig("m", str(tmp_path)), settle_seconds=0.3, poll_wait_seconds=0.05)
    # NOTE: version 1 was just written, so it settles 0.3 s after it was made, not at once.
    assert recorder.calls("m") == [[]]
    recorder.wait_for("m", [1])

    copy = make_model(tmp_path / "2")
    growing = copy / "variables" / "variables.data-00000-of-00001"
    for _ in range(8):
        with growing.open("ab") as file:
            file.write(b"more")
        time.sleep(0.1)
        assert recorder.calls("m")[-1] == [1], "a version still being written was aspired"
    last_write = os.stat(growing).st_ctime

    aspired_at = recorder.wait_for("m", [2])
    assert aspired_at - last_write >= 0.25
    assert aspired_at - last_write < 1.5


def test_settle_works_with_ctimes_in_the_future(tmp_path, make_source):
    make_model(tmp_path / "1")
    # NOTE: our clock an hour behind: every ctime looks an hour in the future (a skewed file server).
    _, recorder = make_source(
        ServableSourceConfig("m", str(tmp_path)), settle_seconds=0.2, clock=lambda: time.time() - 3600
    )
    assert recorder.calls("m") == [[]]
    recorder.wait_for("m", [1], timeout=2.0)


def test_fresh_version_is_aspired_on_settle_without_any_periodic_poll(tmp_path, make_source):
    make_model(tmp_path / "1")
    started = time.time()
    _, recorder = make_source(
        ServableSourceConfig("m", str(tmp_path), settle_seconds=0.3), settle_seconds=5.0, poll_wait_seconds=-1
    )
    # NOTE: the per-servable settle time (0.3 s) overrides the source's (5 s).
    assert recorder.wait_for("m", [1], timeout=2.0) - started < 1.0


def test_removed_version_is_dropped(tmp_path, make_source):
    make_model(tmp_path / "1")
    make_model(tmp_path / "2")
    _, recorder = make_source(ServableSourceConfig("m", str(tmp_path), ALL))
    assert recorder.calls("m") == [[2, 1]]

    shutil.rmtree(tmp_path / "2")
    recorder.wait_for("m", [1])
    (tmp_path / "1").rename(tmp_path / "1.denied")
    recorder.wait_for("m", [])


def test_missing_base_path_emits_nothing_then_is_picked_up(tmp_path, make_source, caplog):
    make_model(tmp_path / "present" / "4")
    base = tmp_path / "models" / "m"
    with caplog.at_level(logging.ERROR, logger="tfaas.sources"):
        _, recorder = make_source(
            ServableSourceConfig("m", str(base)), ServableSourceConfig("other", str(tmp_path / "present"))
        )
    assert f"Could not find base path {base} for servable m" in caplog.text
    assert recorder.calls("m") == []
    assert recorder.calls("other") == [[4]]

    # NOTE: the ancestor watch sees the whole tree renamed into place (the poll interval is 30 s).
    make_model(tmp_path / "staging" / "m" / "3")
    (tmp_path / "staging").rename(tmp_path / "models")
    recorder.wait_for("m", [3], timeout=2.0)
    assert recorder.calls("m") == [[3]]


def test_base_path_created_level_by_level_is_picked_up(tmp_path, make_source):
    base = tmp_path / "a" / "b" / "m"
    _, recorder = make_source(ServableSourceConfig("m", str(base)))
    for level in (tmp_path / "a", tmp_path / "a" / "b", base):
        level.mkdir()
        time.sleep(0.1)
    recorder.wait_for("m", [], timeout=2.0)
    make_model(base / "1")
    recorder.wait_for("m", [1], timeout=2.0)


def test_deleted_and_recreated_base_path_is_watched_again(tmp_path, make_source):
    base = tmp_path / "m"
    make_model(base / "1")
    _, recorder = make_source(ServableSourceConfig("m", str(base)))
    shutil.rmtree(base)
    time.sleep(0.3)
    assert recorder.calls("m") == [[1]], "a missing base path must not unload anything"
    make_model(base / "2")
    recorder.wait_for("m", [2], timeout=2.0)
    make_model(base / "3")
    recorder.wait_for("m", [3], timeout=2.0)


def base_path_notes(caplog) -> set[tuple[str, str]]:
    return {(r.levelname, r.message) for r in caplog.records if "base path" in r.message.lower()}


def test_removal_of_a_removable_base_path_is_news_not_an_error(tmp_path, make_source, caplog):
    """A model repository's model that a delete removes logs INFO; a configured one that vanishes, an ERROR."""
    for name in ("configured", "repository"):
        make_model(tmp_path / name / "1")
    with caplog.at_level(logging.INFO, logger="tfaas.sources"):
        make_source(
            ServableSourceConfig("configured", str(tmp_path / "configured")),
            ServableSourceConfig("repository", str(tmp_path / "repository"), removable=True),
        )
        for name in ("configured", "repository"):
            shutil.rmtree(tmp_path / name)
        deadline = time.monotonic() + 5
        while len(base_path_notes(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert base_path_notes(caplog) == {
        ("ERROR", f"Could not find base path {tmp_path / 'configured'} for servable configured"),
        ("INFO", f"Base path {tmp_path / 'repository'} of servable repository was removed"),
    }


def test_empty_base_path_emits_empty_list_and_warns(tmp_path, make_source, caplog):
    (tmp_path / "tmp").mkdir()
    with caplog.at_level(logging.WARNING, logger="tfaas.sources"):
        _, recorder = make_source(ServableSourceConfig("m", str(tmp_path)))
    assert recorder.calls("m") == [[]]
    assert f"No versions of servable m found under base path {tmp_path}. Did you forget" in caplog.text


def test_unchanged_lists_are_not_emitted_again(tmp_path, make_source):
    make_model(tmp_path / "a" / "1")
    (tmp_path / "b").mkdir()
    source, recorder = make_source(
        ServableSourceConfig("a", str(tmp_path / "a")),
        ServableSourceConfig("b", str(tmp_path / "b")),
        poll_wait_seconds=0.02,
    )
    time.sleep(0.3)
    assert recorder.calls() == [[1], []]


def test_update_config_unaspires_removed_and_polls_new_servables(tmp_path, make_source):
    make_model(tmp_path / "a" / "1")
    make_model(tmp_path / "b" / "2")
    make_model(tmp_path / "c" / "3")
    a, b, c = (ServableSourceConfig(n, str(tmp_path / n)) for n in "abc")
    source, recorder = make_source(a, b)

    source.update_config([a, c])

    # NOTE: update_config returns once the poll thread applied the new set.
    assert recorder.last("b")[0] == []
    assert recorder.last("c")[0] == [3]
    assert recorder.calls("a") == [[1]]
    make_model(tmp_path / "b" / "5")
    make_model(tmp_path / "c" / "6")
    recorder.wait_for("c", [6])
    assert recorder.calls("b") == [[2], []]
    assert not recorder.overlapped
    assert recorder.threads == {"MainThread", "tfaas-fs-source"}


def test_update_config_before_start_emits_nothing_until_start(tmp_path, make_source):
    make_model(tmp_path / "a" / "1")
    source, recorder = make_source(ServableSourceConfig("gone", str(tmp_path / "a")), start=False)
    source.update_config([ServableSourceConfig("a", str(tmp_path / "a"))])
    assert recorder.calls() == []
    source.start()
    assert recorder.calls("a") == [[1]]
    assert recorder.calls("gone") == []


def test_duplicate_servable_names_are_rejected(tmp_path):
    config = ServableSourceConfig("m", str(tmp_path))
    with pytest.raises(ValueError, match="configured twice"):
        FileSystemStoragePathSource([config, config])


@pytest.mark.parametrize("settle_seconds", [0.0, 0.5])
def test_rename_into_place_triggers_a_poll_long_before_the_poll_interval(tmp_path, make_source, settle_seconds):
    make_model(tmp_path / "1")
    _, recorder = make_source(ServableSourceConfig("m", str(tmp_path)), settle_seconds=settle_seconds)
    # NOTE: only a settled version counts; with settle 0.5 the fresh version 1 needs that long first.
    recorder.wait_for("m", [1])
    staging = make_model(tmp_path / "tmp-2")
    time.sleep(0.1)  # NOTE: the staging copy's own events have been handled.

    renamed = time.time()
    staging.rename(tmp_path / "2")
    delay = recorder.wait_for("m", [2], timeout=2.0) - renamed

    print(f"rename-to-callback delay with settle_seconds={settle_seconds}: {delay * 1000:.0f} ms")
    assert settle_seconds <= delay + 0.01
    assert delay < settle_seconds + 0.5


def test_stop_ends_emissions_and_the_poll_thread(tmp_path, make_source):
    source, recorder = make_source(ServableSourceConfig("m", str(tmp_path)), poll_wait_seconds=0.02)
    make_model(tmp_path / "1")
    recorder.wait_for("m", [1])
    (poll_thread,) = recorder.poll_threads
    source.stop()
    make_model(tmp_path / "2")
    time.sleep(0.2)
    assert recorder.calls("m") == [[], [1]]
    assert not poll_thread.is_alive()


def test_base_path_status_tells_a_version_on_its_way_from_none_at_all(tmp_path, make_source):
    (tmp_path / "empty" / "tmp").mkdir(parents=True)
    (tmp_path / "a_file").write_bytes(b"")
    make_model(tmp_path / "copying" / "2")
    (tmp_path / "copying" / "2" / "variables" / "variables.index").unlink()
    make_model(tmp_path / "copying" / "1")
    make_model(tmp_path / "pinned" / "1")
    (tmp_path / "pinned" / "7" / "variables").mkdir(parents=True)  # NOTE: not wanted by the policy
    source, _ = make_source(
        *[ServableSourceConfig(n, str(tmp_path / n)) for n in ("missing", "empty", "a_file", "copying")],
        ServableSourceConfig("pinned", str(tmp_path / "pinned"), ServableVersionPolicy("specific", versions=(1,))),
    )

    describe = {n: source.base_path_status(n).describe() for n in ("missing", "empty", "a_file", "copying")}
    assert describe == {
        "missing": f"base path {tmp_path / 'missing'} does not exist",
        "empty": f"no version found under {tmp_path / 'empty'}",
        "a_file": f"base path {tmp_path / 'a_file'} is not a directory",
        "copying": "version 2 is incomplete: variables/ has no variables.index",
    }
    assert source.base_path_status("copying").versions == (2, 1)
    assert source.base_path_status("pinned").waiting == {}
    assert source.base_path_status("nope") is None


def test_a_version_still_changing_is_waiting_until_it_is_aspired(tmp_path, make_source):
    make_model(tmp_path / "1")
    source, recorder = make_source(ServableSourceConfig("m", str(tmp_path)), settle_seconds=0.5)
    assert source.base_path_status("m").waiting == {1: "is still changing"}
    recorder.wait_for("m", [1])
    deadline = time.monotonic() + 2  # NOTE: the status is replaced just after the emit
    while source.base_path_status("m").waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.base_path_status("m").waiting == {}
