"""``ServableId``: the name of a model and one of its versions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ServableId:
    """One version of one servable stream (a model), as TF Serving names it."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{{name: {self.name} version: {self.version}}}"
