"""The model repository behind TFaaS's upload and delete calls: versioning, atomicity, tar safety, bounds."""

from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Callable

import pytest

from tfaas.errors import Conflict, InvalidArgument, NotFound, PayloadTooLarge, TfaasError
from tfaas.model_repository import MAX_BUNDLE_MEMBERS, ModelRepository


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], compressed: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compressed else "w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special_member(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    return special_member(name, tarfile.DIRTYPE)


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def repo(tmp_path: Path) -> ModelRepository:
    return ModelRepository(str(tmp_path / "repo"), max_upload_bytes=100_000)


def test_uploads_become_consecutive_versions(repo):
    assert repo.add_version("m", {"params.json": b"{}", "model.pb": b"graph"}) == 1
    assert repo.add_version("m", {"params.json": b"{}", "model.pb": b"graph2"}) == 2
    assert (repo.root / "m" / "2" / "model.pb").read_bytes() == b"graph2"
    assert snapshot(repo.root) == [
        "m",
        "m/1",
        "m/1/model.pb",
        "m/1/params.json",
        "m/2",
        "m/2/model.pb",
        "m/2/params.json",
    ]
    assert [m.name for m in repo.model_configs()] == ["m"]


def test_bundle_top_directory_is_the_model_name(repo):
    bundle = tar_bytes(
        [
            dir_member("mnist"),
            file_member("mnist/saved_model.pb"),
            dir_member("mnist/variables"),
            file_member("mnist/variables/variables.index"),
        ]
    )
    assert repo.add_bundle(io.BytesIO(bundle), compressed=True) == ("mnist", 1)
    assert snapshot(repo.root / "mnist") == ["1", "1/saved_model.pb", "1/variables", "1/variables/variables.index"]


def test_plain_tar_bundle(repo):
    bundle = tar_bytes([file_member("./m/saved_model.pb")], compressed=False)
    assert repo.add_bundle(io.BytesIO(bundle), compressed=False) == ("m", 1)


MALICIOUS = [
    ("parent escape", [file_member("m/../../etc/x")]),
    ("absolute path", [file_member("/etc/x")]),
    ("symlink", [file_member("m/saved_model.pb"), special_member("m/link", tarfile.SYMTYPE, "/etc/passwd")]),
    ("hard link", [file_member("m/saved_model.pb"), special_member("m/hard", tarfile.LNKTYPE, "m/saved_model.pb")]),
    ("device", [special_member("m/dev", tarfile.CHRTYPE)]),
    ("fifo", [special_member("m/fifo", tarfile.FIFOTYPE)]),
    ("two models", [file_member("a/saved_model.pb"), file_member("b/saved_model.pb")]),
    ("bad model name", [file_member(".hidden/saved_model.pb")]),
]


@pytest.mark.parametrize("members", [c[1] for c in MALICIOUS], ids=[c[0] for c in MALICIOUS])
def test_malicious_bundles_are_refused_and_write_nothing(repo, members):
    repo.add_version("m", {"saved_model.pb": b"good"})
    before = snapshot(repo.root)
    with pytest.raises(InvalidArgument):
        repo.add_bundle(io.BytesIO(tar_bytes(members)), compressed=True)
    assert snapshot(repo.root) == before
    assert not (repo.root.parent / "etc").exists()


def test_not_a_tar_and_empty_tar(repo):
    with pytest.raises(InvalidArgument, match="Not a valid gzip-compressed tar bundle"):
        repo.add_bundle(io.BytesIO(b"not a tarball"), compressed=True)
    with pytest.raises(InvalidArgument, match="empty"):
        repo.add_bundle(io.BytesIO(tar_bytes([])), compressed=True)
    assert snapshot(repo.root) == []


def test_size_limits(repo):
    with pytest.raises(PayloadTooLarge):
        repo.add_version("m", {"model.pb": b"x" * 100_001})
    bomb = tar_bytes([file_member("m/saved_model.pb", b"\0" * 500_000)])
    assert len(bomb) < 100_000, "compresses well: only the unpacked size is over the limit"
    with pytest.raises(PayloadTooLarge):
        repo.add_bundle(io.BytesIO(bomb), compressed=True)
    assert snapshot(repo.root) == []


def test_invalid_names(repo):
    for name in ("", "../x", "a/b", ".x", "-x", "a:b"):
        with pytest.raises(InvalidArgument):
            repo.add_version(name, {"model.pb": b"x"})
    with pytest.raises(InvalidArgument):
        repo.add_version("m", {"../params.json": b"x"})
    assert snapshot(repo.root) == []


def test_delete(repo):
    repo.add_version("m", {"model.pb": b"x"})
    repo.delete("m")
    assert snapshot(repo.root) == []
    with pytest.raises(NotFound):
        repo.delete("m")


def test_default_model_is_shared_through_the_disk(repo, tmp_path):
    assert repo.default_model() == ""
    repo.set_default_model("m")
    assert ModelRepository(str(repo.root), 1).default_model() == "m"
    assert [m.name for m in repo.model_configs()] == [], "the marker file is not a model"


def test_gzip_body_is_not_confused_with_plain(repo):
    plain = tar_bytes([file_member("m/saved_model.pb")], compressed=False)
    assert repo.add_bundle(io.BytesIO(gzip.compress(plain)), compressed=True) == ("m", 1)


def sparse_tar(tmp_path: Path, size: int) -> bytes:
    """A GNU tar (``tar --sparse``) of ``m/saved_model.pb``: a file of ``size`` bytes that is all hole."""
    (tmp_path / "sparse" / "m").mkdir(parents=True)
    with open(tmp_path / "sparse" / "m" / "saved_model.pb", "wb") as hole:
        hole.truncate(size)
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", "../m.tar", "m"], cwd=tmp_path / "sparse", check=True)
    return (tmp_path / "m.tar").read_bytes()


@pytest.mark.parametrize("size,error", [(1 << 30, PayloadTooLarge), (1000, InvalidArgument)], ids=["1 GiB", "1 KB"])
def test_sparse_members_are_refused_before_writing(repo, tmp_path, size, error):
    bundle = sparse_tar(tmp_path, size)
    assert len(bundle) <= 10240
    with pytest.raises(error):
        repo.add_bundle(io.BytesIO(bundle), compressed=False)
    assert snapshot(repo.root) == []


class Tapped(io.RawIOBase):
    """A body that calls ``tap`` once ``after`` of its bytes were read (to act in the middle of an upload)."""

    def __init__(self, data: bytes, after: int, tap: Callable[[], None]) -> None:
        self._data, self._after, self._tap, self._read = io.BytesIO(data), after, tap, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._data.readinto(memoryview(buffer)[:512])
        self._read += count
        if self._read >= self._after and self._tap:
            self._tap, tap = None, self._tap
            tap()
        return count


def two_file_bundle(name: str = "m") -> bytes:
    return tar_bytes(
        [file_member(f"{name}/saved_model.pb", b"a" * 30_000), file_member(f"{name}/x", b"b" * 30_000)], False
    )


def test_upload_that_a_delete_overtakes_is_a_conflict_and_leaves_nothing(repo):
    repo.add_version("m", {"saved_model.pb": b"old"})
    body = Tapped(two_file_bundle(), after=40_000, tap=lambda: repo.delete("m"))
    with pytest.raises(Conflict, match="deleted while this upload was written"):
        repo.add_bundle(body, compressed=False)
    assert snapshot(repo.root) == []


def test_a_new_model_appears_with_its_first_version_only(repo):
    seen: list[list[str]] = []
    body = Tapped(two_file_bundle(), after=40_000, tap=lambda: seen.append([m.name for m in repo.model_configs()]))
    assert repo.add_bundle(body, compressed=False) == ("m", 1)
    assert seen == [[]], "no model m while its upload is written"
    assert snapshot(repo.root / "m") == ["1", "1/saved_model.pb", "1/x"]
    assert repo.add_bundle(io.BytesIO(two_file_bundle()), compressed=False) == ("m", 2)
    assert snapshot(repo.root) == ["m"] + [f"m/{v}{f}" for v in "12" for f in ("", "/saved_model.pb", "/x")]


def test_every_file_and_directory_costs_a_block(repo):
    bundle = tar_bytes([file_member(f"m/empty{i}", b"") for i in range(100)])
    with pytest.raises(PayloadTooLarge):
        repo.add_bundle(io.BytesIO(bundle), compressed=True)
    assert snapshot(repo.root) == []


def test_member_count_is_bounded(tmp_path):
    repo = ModelRepository(str(tmp_path / "repo"), max_upload_bytes=1 << 30)
    bundle = tar_bytes([dir_member(f"m/d{i}") for i in range(MAX_BUNDLE_MEMBERS + 1)])
    with pytest.raises(PayloadTooLarge, match=f"at most {MAX_BUNDLE_MEMBERS}"):
        repo.add_bundle(io.BytesIO(bundle), compressed=True)
    assert snapshot(repo.root) == []


def pax_record_bomb() -> bytes:
    info = tarfile.TarInfo("m/saved_model.pb")
    info.pax_headers = {"comment": "x" * 3_000_000}
    return tar_bytes([(info, b"graph")])


def long_name_bomb() -> bytes:
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = tarfile.GNUTYPE_LONGNAME, 3_000_000
    return gzip.compress(info.tobuf(tarfile.GNU_FORMAT) + b"m/" + b"x" * (3_000_000 - 2) + bytes(1024))


def sparse_map_bomb() -> bytes:
    """A PAX sparse file (format 1.0), whose map tarfile reads before the member is returned: 10^9 entries."""
    info = tarfile.TarInfo("m/GNUSparseFile.0/x")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "m/x"}
    return tar_bytes([(info, b"1000000000\n" + b"1\n" * 1_500_000)])


@pytest.mark.parametrize("bomb", [pax_record_bomb, long_name_bomb, sparse_map_bomb])
def test_headers_that_claim_megabytes_are_not_read_whole(tmp_path, bomb):
    repo = ModelRepository(str(tmp_path / "repo"), max_upload_bytes=1 << 30)
    body = bomb()
    assert len(body) < 100_000
    with pytest.raises(PayloadTooLarge, match="headers take more than 1048576 bytes"):
        repo.add_bundle(io.BytesIO(body), compressed=True)
    assert snapshot(repo.root) == []


HOSTILE_PATHS = [
    ("name too long", [file_member("m/" + "x" * 300)]),
    ("file where a directory goes", [file_member("m/a"), file_member("m/a/b")]),
    ("directory where a file is", [file_member("m/a"), dir_member("m/a")]),
    ("the model itself a file", [file_member("m")]),
]


@pytest.mark.parametrize("members", [c[1] for c in HOSTILE_PATHS], ids=[c[0] for c in HOSTILE_PATHS])
def test_member_paths_that_cannot_be_written_are_the_clients_error(repo, members):
    with pytest.raises(InvalidArgument):
        repo.add_bundle(io.BytesIO(tar_bytes(members)), compressed=True)
    assert snapshot(repo.root) == []


def test_a_negative_declared_size_is_refused(repo):
    header = bytearray(tarfile.TarInfo("m/saved_model.pb").tobuf(tarfile.GNU_FORMAT))
    header[124:136] = b"\xff" * 12  # NOTE: -1 in the base-256 encoding of large sizes
    header[148:156] = b"%06o\0 " % (sum(header[:148]) + 8 * 32 + sum(header[156:]))
    with pytest.raises(InvalidArgument, match="negative size"):
        repo.add_bundle(io.BytesIO(bytes(header) + bytes(1024)), compressed=False)
    assert snapshot(repo.root) == []


def test_corrupt_gzip_is_the_clients_error(repo):
    good = tar_bytes([file_member("m/saved_model.pb", bytes(range(256)) * 100)])
    with pytest.raises(InvalidArgument, match="Not a valid gzip-compressed tar bundle"):
        repo.add_bundle(io.BytesIO(good[:40] + b"\xff" * 200 + good[240:]), compressed=True)
    assert snapshot(repo.root) == []


def sparse_pax_member() -> tuple[tarfile.TarInfo, bytes]:
    """A PAX sparse file (format 1.0: its map heads its data) of 700 bytes with one data region."""
    info = tarfile.TarInfo("m/GNUSparseFile.0/s")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "m/s"}
    info.pax_headers["GNU.sparse.realsize"] = "700"
    return info, b"1\n0\n700\n".ljust(512, b"\0") + b"a" * 700


def test_mutated_bundles_are_refused_or_written_never_crash(repo):
    """Random byte changes to bundles in every tar format: each is refused with a client error or written."""
    seeds = [
        tar_bytes([dir_member("m"), file_member("m/" + "x" * 120, bytes(700)), file_member("m/v/i", b"0" * 10)], False),
        tar_bytes([sparse_pax_member(), file_member("m/v/i", b"0" * 10)], False),
    ]
    chosen = random.Random(10)
    for _ in range(1000):
        body = bytearray(chosen.choice(seeds))
        for _ in range(chosen.randint(1, 6)):
            at = chosen.randrange(len(body))
            body[at : at + 3] = chosen.choice([bytes([chosen.randrange(256)]), b"\n", b"999", b"\xff\xff\xff", b"-1\n"])
        try:
            repo.add_bundle(io.BytesIO(bytes(body)), compressed=False)
        except TfaasError:
            assert [p for p in repo.root.glob(".*")] == [], "a refused bundle leaves nothing"


def _age(path: Path, seconds: float) -> None:
    """Make everything under ``path`` look untouched for ``seconds``."""
    past = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (past, past), follow_symlinks=False)


def test_leftovers_of_a_killed_server_are_removed_and_live_writes_kept(repo: ModelRepository, tmp_path: Path) -> None:
    repo.add_version("m", {"saved_model.pb": b"graph"})
    stale = [repo.root / ".upload-old", repo.root / "m" / ".upload-old", repo.root / ".deleted-m-old"]
    for path in stale:
        (path / "1").mkdir(parents=True)
        (path / "1" / "saved_model.pb").write_bytes(b"partial")
        _age(path, 3600)
    live = repo.root / "m" / ".upload-live"
    (live / "variables").mkdir(parents=True)
    _age(live, 3600)
    (live / "variables" / "variables.data-00000-of-00001").write_bytes(b"still being written")

    assert sorted(repo.remove_leftovers(min_age=600)) == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert live.is_dir() and (repo.root / "m" / "1" / "saved_model.pb").read_bytes() == b"graph"
