"""The model repository behind TFaaS's upload and delete calls: versioning, atomicity, tar safety."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from tfaas.errors import InvalidArgument, NotFound, PayloadTooLarge
from tfaas.model_repository import ModelRepository


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
    return ModelRepository(str(tmp_path / "repo"), max_upload_bytes=10_000)


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
        repo.add_version("m", {"model.pb": b"x" * 10_001})
    bomb = tar_bytes([file_member("m/saved_model.pb", b"\0" * 50_000)])
    assert len(bomb) < 10_000, "compresses well: only the unpacked size is over the limit"
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
