"""``version_loader``: the loader factory that tells a SavedModel version from a TFaaS frozen graph.

TensorFlow-free: the concrete loaders import it inside ``load()``.
"""

from __future__ import annotations

import os
from typing import Any

from tfaas.core.loader import Loader
from tfaas.core.servable_id import ServableId
from tfaas.errors import InvalidArgument, NotFound
from tfaas.servables.model_params import PARAMS_JSON, model_file, read_params

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def version_loader(servable_id: ServableId, path: str) -> Loader:
    """The loader of the version directory ``path`` (a ``LoaderFactory``); never raises.

    A ``SavedModelLoader`` when ``path`` holds ``saved_model.pb`` or ``saved_model.pbtxt``; else a
    ``FrozenGraphLoader`` when its ``params.json`` names a model file that exists; else an
    ``UnrecognizedVersionLoader``, whose ``load`` looks again (the directory may have been incomplete)
    and otherwise fails saying what the directory holds.
    """
    kind = _detect(path)
    if kind == "saved_model":
        from tfaas.servables.saved_model import SavedModelLoader

        return SavedModelLoader(servable_id, path)
    if kind == "frozen_graph":
        from tfaas.servables.frozen_graph import FrozenGraphLoader

        return FrozenGraphLoader(servable_id, path)
    return UnrecognizedVersionLoader(servable_id, path)


class UnrecognizedVersionLoader:
    """The loader of a directory that is neither kind: ``load`` looks again, then fails with the reason."""

    def __init__(self, servable_id: ServableId, path: str) -> None:
        self._id = servable_id
        self._path = path
        self._delegate: Loader | None = None

    def load(self) -> Any:
        """Load the version if the directory now holds a model; else raise ``NotFound`` or ``InvalidArgument``."""
        kind = _detect(self._path)
        if isinstance(kind, Exception):
            raise kind
        loader = version_loader(self._id, self._path)
        self._delegate = loader
        return loader.load()

    def unload(self) -> None:
        """Unload what a successful ``load`` loaded, if anything."""
        if self._delegate is not None:
            self._delegate.unload()
            self._delegate = None


def _detect(path: str) -> str | Exception:
    """``"saved_model"``, ``"frozen_graph"``, or the error that says why ``path`` is neither."""
    try:
        entries = sorted(os.listdir(path))
    except OSError as error:
        return NotFound(f"Version directory {path} cannot be read: {error.strerror or error}")
    if any(name in entries for name in SAVED_MODEL_FILES):
        return "saved_model"
    found = ", ".join(name + "/" if os.path.isdir(os.path.join(path, name)) else name for name in entries)
    neither = f"{path} is not a SavedModel or TFaaS frozen graph: found {found or 'nothing'}"
    try:
        params = read_params(path)
    except InvalidArgument as error:
        return InvalidArgument(f"{neither}; {error.message}")
    if params is None:
        return NotFound(f"{neither} (no {SAVED_MODEL_FILES[0]}, no {PARAMS_JSON}){_keras_hint(entries)}")
    if not params.model:
        return NotFound(f'{neither} ({PARAMS_JSON} names no "model" file)')
    if not os.path.isfile(model_file(path, params)):
        return NotFound(f'{neither} ({PARAMS_JSON} names model file "{params.model}", which is absent)')
    return "frozen_graph"


def _keras_hint(entries: list[str]) -> str:
    """What to do when a version directory holds a Keras file instead of a SavedModel, else ``""``."""
    keras_files = [name for name in entries if name.endswith(KERAS_SUFFIXES)]
    if not keras_files:
        return ""
    return (
        f"; {keras_files[0]} is a Keras file, not a SavedModel: load it with Keras and export a SavedModel "
        "into the version directory with model.export(path)"
    )
