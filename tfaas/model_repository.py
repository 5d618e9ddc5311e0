"""``ModelRepository``: a directory of models that clients may add to and delete from (TFaaS's API).

Layout: ``<root>/<name>/<version>/`` — every subdirectory of the root with a valid name
(``tfaas.model_names``) is a model, served like a configured one. Writes never expose half a model:

- an upload is written to a hidden staging directory (``.upload-*``, which no source reads): for an
  existing model beside its versions, then renamed to the next free version number, so the lifecycle
  hot-swaps it in with no failed request; for a new model in the root, as ``.upload-*/1``, then renamed
  to ``<name>``, so a model never appears without a version;
- a failed or refused upload removes its staging directory: nothing is left behind and the version
  that serves is never touched;
- a delete renames the model directory to a hidden name first, so every worker's source sees the
  model vanish at once, then removes it. An upload that a delete overtakes (its staging directory went
  with the model) answers ``Conflict``; of two deletes of one model, the second finds nothing.

Bundles are checked member by member (no absolute paths, ``..``, links, devices or sparse files: a
SavedModel has none), and the disk they take is bounded while they are written: a member larger than
what is left of ``max_upload_bytes`` is refused before its first byte is written, bytes are counted as
they are written, every file and directory is charged a disk block, and the member count is bounded.
The decompressed tar stream is bounded too, in all and per member beyond its data, so headers that
claim gigabytes (PAX records, long names, sparse maps, which tarfile reads into memory) are never read
whole.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping

from tfaas.config import ModelConfig, Settings
from tfaas.errors import Conflict, InvalidArgument, NotFound, PayloadTooLarge, PermissionDenied
from tfaas.model_names import check_model_name, is_valid_name

MAX_BUNDLE_MEMBERS = 10_000
"""Most files and directories a bundle may hold (a SavedModel has a handful)."""
_BLOCK = 4096
"""What a file or directory takes on disk at least; charged for each, so that empty files are not free."""
_TAR_STREAM_SLACK = 1 << 20
"""Decompressed tar bytes read beyond ``max_upload_bytes`` before a bundle is refused: headers and
padding take less than the block each member is charged, so this only covers the archive's end."""
_MAX_HEADER_BYTES = 1 << 20
"""Tar bytes a member may take beyond its data (headers, and tarfile's read-ahead)."""
_STAGING_PREFIX = ".upload-"
_TRASH_PREFIX = ".deleted-"
LEFTOVER_AGE_SECONDS = 600.0
"""How long a staging or trash directory must have been untouched before a starting server removes it as
left by a killed one: an upload or delete of another server sharing the repository writes more often
(a client that stalls longer than ``request_body_timeout`` is cut off)."""
_FIRST_VERSION = "1"
_VERSION = re.compile(r"[0-9]+")
_DEFAULT_MODEL_FILE = ".default_model"
_COPY_CHUNK = 1 << 20
_MEMBER_PATH_ERRORS = (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST)
"""Write errors that a bundle's member paths cause (a file where a directory is, a name too long)."""


def write_refusal(settings: Settings) -> PermissionDenied | None:
    """Why the calls that write to the repository (upload, delete, params) are refused to everyone under
    ``settings``; ``None``: they are on (an admin token may still guard them)."""
    if not settings.enable_model_management:
        return PermissionDenied(
            "Model management is disabled: start the server with --enable_model_management to upload, delete"
            " or change models"
        )
    if settings.read_only:
        return PermissionDenied("The server is read-only: uploads, deletes and params changes are turned off")
    if not settings.model_repository:
        return PermissionDenied("No model repository is configured (set model_repository to accept uploads)")
    return None


class ModelRepository:
    """The models under ``root``; see the module docstring."""

    def __init__(self, root: str, max_upload_bytes: int) -> None:
        self.root = Path(root)
        self.max_upload_bytes = max_upload_bytes

    # ---- reading --------------------------------------------------------------------------------

    def model_configs(self) -> tuple[ModelConfig, ...]:
        """A model config (default policies) for every model directory under the root."""
        if not self.root.is_dir():
            return ()
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_valid_name(p.name))
        return tuple(ModelConfig(name=name, base_path=str(self.root / name)) for name in names)

    def default_model(self) -> str:
        """The model ``/json`` and ``/proto`` use when a request names none ('' if unset)."""
        try:
            return (self.root / _DEFAULT_MODEL_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def set_default_model(self, name: str) -> None:
        """Remember the default model on disk, so that every worker (and a restart) agrees."""
        self._write_atomically(self.root / _DEFAULT_MODEL_FILE, check_model_name(name).encode())

    # ---- writing --------------------------------------------------------------------------------

    def add_version(self, name: str, files: Mapping[str, bytes]) -> int:
        """Write ``files`` (file name → content) as the next version of ``name``; return it."""
        check_model_name(name)
        for file_name in files:
            if not is_valid_name(file_name):
                raise InvalidArgument(f"Invalid file name {file_name!r} in upload")
        budget = _DiskBudget(self.max_upload_bytes)
        with self._staged(name) as staging:
            for file_name, data in files.items():
                budget.require(len(data))
                _write_file(staging.version_dir / file_name, [data], budget)
            return staging.publish()

    def add_bundle(self, stream: IO[bytes], compressed: bool) -> tuple[str, int]:
        """Unpack a tar (gzip-compressed or not) of ``<name>/...`` as the next version of ``name``.

        Every member is checked before it is written; any bad member refuses the whole bundle.
        """
        kind = "gzip-compressed tar" if compressed else "tar"
        raw = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream
        source = _TarStream(raw, self.max_upload_bytes, kind)
        try:
            with tarfile.open(fileobj=source, mode="r|") as archive:
                return self._unpack(archive, source)
        except (tarfile.TarError, ValueError) as exc:  # NOTE: tarfile raises ValueError on bad sparse maps
            raise InvalidArgument(f"Not a valid {kind} bundle: {exc}") from None

    def delete(self, name: str) -> None:
        """Remove model ``name`` from disk (and so from service). ``NotFound`` if there is none."""
        target = self.root / check_model_name(name)
        missing = NotFound(f"Model {name} is not in the model repository")
        if not target.is_dir():
            raise missing
        trash = self.root / f"{_TRASH_PREFIX}{name}-{uuid.uuid4().hex}"  # NOTE: fits NAME_MAX (model_names)
        try:
            os.rename(target, trash)  # NOTE: the model vanishes for every watcher in one step
        except FileNotFoundError:
            raise missing from None  # NOTE: another delete was first
        shutil.rmtree(trash, ignore_errors=True)

    def remove_leftovers(self, min_age: float = LEFTOVER_AGE_SECONDS) -> list[Path]:
        """Remove the staging and trash directories a killed server left behind (nothing in them was
        touched for ``min_age`` seconds); return them. No source reads them: they only take disk."""
        removed = []
        for path in self._hidden_dirs():
            if _idle_for(path) >= min_age:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def _hidden_dirs(self) -> Iterator[Path]:
        """The staging and trash directories in the root and in each model directory."""
        parents = [self.root, *(Path(m.base_path) for m in self.model_configs())]
        for parent in parents:
            with contextlib.suppress(OSError):  # NOTE: a model deleted meanwhile
                for path in parent.iterdir():
                    if path.name.startswith((_STAGING_PREFIX, _TRASH_PREFIX)) and path.is_dir():
                        yield path

    # ---- internals ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _staged(self, name: str) -> Iterator[_Staging]:
        """A staging directory for an upload of ``name``; an upload a delete overtook is a ``Conflict``."""
        try:
            with _Staging(self.root, name) as staging:
                yield staging
        except FileNotFoundError:
            # NOTE: we create every directory we write into, so only a delete of the model removes one.
            raise Conflict(f"Model {name} was deleted while this upload was written; nothing was added") from None

    def _unpack(self, archive: tarfile.TarFile, source: _TarStream) -> tuple[str, int]:
        budget = _DiskBudget(self.max_upload_bytes)
        with contextlib.ExitStack() as cleanup:
            name: str | None = None
            staging: _Staging | None = None
            for count, member in enumerate(archive, start=1):
                source.allow(member.size)  # NOTE: its data, then the next member's headers
                if count > MAX_BUNDLE_MEMBERS:
                    raise PayloadTooLarge(f"A bundle holds at most {MAX_BUNDLE_MEMBERS} files and directories")
                top, rest = _split_member(member)
                if staging is None:
                    name = check_model_name(top)
                    staging = cleanup.enter_context(self._staged(name))
                elif top != name:
                    raise InvalidArgument(f"A bundle holds one model directory; found {name!r} and {top!r}")
                _extract(archive, member, staging.version_dir, rest, budget)
            if staging is None or name is None:
                raise InvalidArgument("The bundle is empty")
            return name, staging.publish()

    def _write_atomically(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)


class _Staging:
    """Where one upload is written before it is published; removed on exit unless published.

    For an existing model, a hidden directory beside its versions, published by a rename to the next
    version number; for a new model, ``.upload-*/1`` in the root, published by renaming the whole
    directory to the model's name.
    """

    def __init__(self, root: Path, name: str) -> None:
        self._root = root
        self.model_dir = root / name
        self._top = Path()
        self.version_dir = Path()
        """Where the upload's files go."""
        self._new_model = False

    def __enter__(self) -> _Staging:
        try:
            self._top = self.version_dir = _hidden_dir(self.model_dir)
        except FileNotFoundError:
            self._root.mkdir(parents=True, exist_ok=True)
            self._top = _hidden_dir(self._root)
            self.version_dir = self._top / _FIRST_VERSION
            self.version_dir.mkdir()
            self._new_model = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self._top, ignore_errors=True)  # NOTE: published: renamed away, or an empty shell

    def publish(self) -> int:
        """Rename the staged version into place (safe against concurrent uploads); return its number."""
        if self._new_model:
            try:
                os.rename(self._top, self.model_dir)
                return int(_FIRST_VERSION)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # NOTE: another upload created the model meanwhile: this one becomes its next version.
        version = max((int(p.name) for p in self.model_dir.iterdir() if _VERSION.fullmatch(p.name)), default=0) + 1
        while True:
            try:
                os.rename(self.version_dir, self.model_dir / str(version))
                return version
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                version += 1  # NOTE: another upload (maybe in another worker) took this number


def _idle_for(tree: Path) -> float:
    """Seconds since anything in ``tree`` (the directory itself included) last changed."""
    latest = tree.lstat().st_mtime
    for directory, _, files in os.walk(tree):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            with contextlib.suppress(OSError):
                latest = max(latest, os.lstat(name).st_mtime)
    return time.time() - latest


def _hidden_dir(parent: Path) -> Path:
    """A new staging directory in ``parent``, with the permissions the process gives new directories
    (``tempfile.mkdtemp`` would make the published version and model private to the server's user)."""
    path = parent / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
    path.mkdir()
    return path


class _DiskBudget:
    """What an upload may still write: ``limit`` bytes, each file and directory charged a block too."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def require(self, size: int) -> None:
        """Refuse, before anything is written, a file of ``size`` bytes that does not fit."""
        if size + _BLOCK > self.left:
            raise _too_large(self.limit)

    def spend(self, size: int) -> None:
        """Count ``size`` bytes about to be written; refuse them if they do not fit."""
        if size > self.left:
            raise _too_large(self.limit)
        self.left -= size


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Upload unpacks to more than the limit of {limit} bytes (max_upload_bytes)")


class _TarStream:
    """A bundle's decompressed tar stream, as tarfile reads it: refused a little past ``limit`` bytes in all,
    and past what :meth:`allow` allows since it was last called. Its decoding errors are the client's."""

    def __init__(self, raw: IO[bytes], limit: int, kind: str) -> None:
        self._raw = raw
        self._limit = limit
        self._left = limit + _TAR_STREAM_SLACK
        self._allowed = _MAX_HEADER_BYTES  # NOTE: the first member's headers
        self._kind = kind

    def allow(self, data_size: int) -> None:
        """From now on, let tarfile read a member's ``data_size`` bytes of data and headers after them."""
        self._allowed = data_size + _MAX_HEADER_BYTES

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (never more than the bounds allow, plus one to notice one is passed)."""
        bound = min(self._left, self._allowed) + 1
        try:
            data = self._raw.read(bound if size < 0 else min(size, bound))
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidArgument(f"Not a valid {self._kind} bundle: {exc}") from None
        self._left -= len(data)
        self._allowed -= len(data)
        if self._left < 0:
            raise _too_large(self._limit)
        if self._allowed < 0:
            raise PayloadTooLarge(f"A bundle member's headers take more than {_MAX_HEADER_BYTES} bytes")
        return data


def _split_member(member: tarfile.TarInfo) -> tuple[str, str]:
    """``(model directory, path below it)`` of a member, refusing anything unsafe."""
    if not (member.isfile() or member.isdir()):
        raise InvalidArgument(f"Bundle member {member.name!r} is a link or device; only files and directories")
    path = member.name.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise InvalidArgument(f"Bundle member {member.name!r} has an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidArgument(f"Bundle member {member.name!r} leaves the model directory")
    return parts[0], "/".join(parts[1:])


def _extract(
    archive: tarfile.TarFile, member: tarfile.TarInfo, version_dir: Path, rest: str, budget: _DiskBudget
) -> None:
    """Write one checked member below ``version_dir``, within ``budget``."""
    parts = rest.split("/") if rest else []
    if member.isdir():
        _make_dirs(version_dir, parts, budget, member)
        return
    if not parts:
        raise InvalidArgument(f"Bundle member {member.name!r} is a file; a bundle holds a model directory")
    if member.size < 0:
        raise InvalidArgument(f"Bundle member {member.name!r} declares a negative size")
    budget.require(member.size)  # NOTE: the declared size (a sparse file's full size), before any byte
    if member.issparse():
        raise InvalidArgument(f"Bundle member {member.name!r} is a sparse file; a model has none")
    _make_dirs(version_dir, parts[:-1], budget, member)
    source = archive.extractfile(member)
    assert source is not None  # NOTE: _split_member admits only regular files and directories
    with source:
        _write_file(version_dir.joinpath(*parts), iter(lambda: source.read(_COPY_CHUNK), b""), budget, member)


def _make_dirs(base: Path, parts: list[str], budget: _DiskBudget, member: tarfile.TarInfo) -> None:
    """Create ``base/parts...`` one level at a time: never ``base`` itself (a delete may have removed it)."""
    path = base
    with _member_path_errors(member):
        for part in parts:
            path = path / part
            if not path.is_dir():
                budget.spend(_BLOCK)
                path.mkdir()


def _write_file(
    path: Path, chunks: Iterable[bytes], budget: _DiskBudget, member: tarfile.TarInfo | None = None
) -> None:
    """Write ``chunks`` to ``path``, each counted against ``budget`` before it is written: a declared size
    is only the sender's word (``budget.require`` it first), the bytes written are what counts."""
    budget.spend(_BLOCK)
    with _member_path_errors(member), open(path, "wb") as out:
        for chunk in chunks:
            budget.spend(len(chunk))
            out.write(chunk)


@contextlib.contextmanager
def _member_path_errors(member: tarfile.TarInfo | None) -> Iterator[None]:
    """The write errors that a bundle member's path causes, as the client's ``InvalidArgument``."""
    try:
        yield
    except OSError as exc:
        if member is None or exc.errno not in _MEMBER_PATH_ERRORS:
            raise
        raise InvalidArgument(f"Bundle member {member.name!r} cannot be written: {exc.strerror}") from None
