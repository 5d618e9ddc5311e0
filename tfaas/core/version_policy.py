"""Servable version policies: which of a model's versions on disk should be served.

TF Serving's ``ServableVersionPolicy``: ``latest: N`` (the default, N=1), ``all``, or
``specific: [..]``. A pure function of the versions present, applied by sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

PolicyKind = Literal["latest", "all", "specific"]


@dataclass(frozen=True)
class ServableVersionPolicy:
    """Which versions of a model to serve."""

    kind: PolicyKind = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, present: Iterable[int]) -> list[int]:
        """Return the versions to aspire among ``present``, highest first.

        ``latest: 0`` is treated as 1 (TF Serving does the same). ``specific`` keeps only the listed
        versions that are present; an empty ``specific`` list aspires nothing.
        """
        ordered = sorted(set(present), reverse=True)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            wanted = set(self.versions)
            return [v for v in ordered if v in wanted]
        return ordered[: max(1, self.num_versions)]

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest: {self.num_versions}"
        if self.kind == "specific":
            return f"specific: {list(self.versions)}"
        return "all"
