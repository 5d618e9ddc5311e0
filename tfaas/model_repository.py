"""``ModelRepository``: a directory of models that clients may add to and delete from (TFaaS's API).

Layout: ``<root>/<name>/<version>/`` — every subdirectory of the root with a safe name is a model,
served like a configured one. Writes never expose half a model:

- an upload is written to a hidden staging directory beside the versions (``.upload-*``, not a
  number, so sources ignore it), then renamed to the next free version number, so the lifecycle
  hot-swaps it in with no failed request;
- a failed or refused upload removes its staging directory: nothing is left behind and the version
  that serves is never touched;
- a delete renames the model directory to a hidden name first, so every worker's source sees the
  model vanish at once, then removes it.

Unlike TFaaS, tarballs are checked member by member (no absolute paths, ``..``, links or devices) and
sizes are bounded, compressed or not.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import IO, Mapping

from tfaas.config import ModelConfig
from tfaas.errors import InvalidArgument, NotFound, PayloadTooLarge

MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""Model names a client may create: they become directory names and URL path segments."""
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_STAGING_PREFIX = ".upload-"
_DEFAULT_MODEL_FILE = ".default_model"
_COPY_CHUNK = 1 << 20


def check_model_name(name: str) -> str:
    """``name`` if it is a safe model name, else ``InvalidArgument``."""
    if not MODEL_NAME.fullmatch(name or ""):
        raise InvalidArgument(
            f"Invalid model name {name!r}: use letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        )
    return name


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
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and MODEL_NAME.fullmatch(p.name))
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
        if sum(len(data) for data in files.values()) > self.max_upload_bytes:
            raise PayloadTooLarge(f"Upload is larger than the limit of {self.max_upload_bytes} bytes")
        with self._staging(name) as staging:
            for file_name, data in files.items():
                if not _FILE_NAME.fullmatch(file_name):
                    raise InvalidArgument(f"Invalid file name {file_name!r} in upload")
                (staging / file_name).write_bytes(data)
            return self._publish(staging, name)

    def add_bundle(self, stream: IO[bytes], compressed: bool) -> tuple[str, int]:
        """Unpack a tar (gzip-compressed or not) of ``<name>/...`` as the next version of ``name``.

        Every member is checked before it is written; any bad member refuses the whole bundle.
        """
        try:
            with tarfile.open(fileobj=stream, mode="r|gz" if compressed else "r|") as archive:
                return self._unpack(archive)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidArgument(f"Not a valid {'gzip-compressed ' if compressed else ''}tar bundle: {exc}") from None

    def delete(self, name: str) -> None:
        """Remove model ``name`` from disk (and so from service). ``NotFound`` if there is none."""
        target = self.root / check_model_name(name)
        if not target.is_dir():
            raise NotFound(f"Model {name} is not in the model repository")
        hidden = self.root / f".deleted-{name}-{uuid.uuid4().hex}"
        os.rename(target, hidden)  # NOTE: the model vanishes for every watcher in one step
        shutil.rmtree(hidden, ignore_errors=True)

    # ---- internals ------------------------------------------------------------------------------

    def _unpack(self, archive: tarfile.TarFile) -> tuple[str, int]:
        with contextlib.ExitStack() as cleanup:
            name: str | None = None
            staging = Path()
            written = 0
            for member in archive:
                top, rest = _split_member(member)
                if name is None:
                    name = check_model_name(top)
                    staging = cleanup.enter_context(self._staging(name))
                elif top != name:
                    raise InvalidArgument(f"A bundle holds one model directory; found {name!r} and {top!r}")
                written += self._extract(archive, member, staging, rest)
                if written > self.max_upload_bytes:
                    raise PayloadTooLarge(f"Bundle unpacks to more than {self.max_upload_bytes} bytes")
            if name is None:
                raise InvalidArgument("The bundle is empty")
            return name, self._publish(staging, name)

    def _extract(self, archive: tarfile.TarFile, member: tarfile.TarInfo, staging: Path, rest: str) -> int:
        """Write one checked member below ``staging``; return the bytes written."""
        target = staging / rest if rest else staging
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member)
        assert source is not None  # NOTE: _split_member admits only regular files and directories
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
        return member.size

    def _staging(self, name: str) -> _Staging:
        return _Staging(self.root / name)

    def _publish(self, staging: Path, name: str) -> int:
        """Rename ``staging`` to the next free version number of ``name`` (safe against races)."""
        model_dir = self.root / name
        version = max((int(p.name) for p in model_dir.iterdir() if p.name.isdigit()), default=0) + 1
        while True:
            try:
                os.rename(staging, model_dir / str(version))
                return version
            except OSError:
                if not (model_dir / str(version)).exists():
                    raise
                version += 1  # NOTE: another upload (maybe in another worker) took this number

    def _write_atomically(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)


class _Staging:
    """A hidden directory beside a model's versions; removed on exit unless it was published.

    A model directory that the upload itself created is removed too when the upload fails, so a
    refused upload of a new model leaves no empty model behind.
    """

    def __init__(self, model_dir: Path) -> None:
        self._model_dir = model_dir
        self._created_model_dir = False
        self.path: Path | None = None

    def __enter__(self) -> Path:
        self._created_model_dir = not self._model_dir.exists()
        self._model_dir.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self._model_dir))
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        if self.path is None or not self.path.exists():
            return  # published: renamed to a version
        shutil.rmtree(self.path, ignore_errors=True)
        if self._created_model_dir:
            with contextlib.suppress(OSError):  # NOTE: not empty if a concurrent upload succeeded
                self._model_dir.rmdir()


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
