"""Swap policies: given the states of one model's versions, what the manager should do next.

Pure functions over snapshots, as in TF Serving, so they are tested as tables of version states.

- ``availability`` (TF Serving's AvailabilityPreservingPolicy, the default): load the new version
  first and unload the old one only once an aspired version is serving. Never a gap in service, but
  two versions in memory during the swap.
- ``resource`` (ResourcePreservingPolicy): unload the old version first, then load the new one. A
  short gap in service, but never two versions in memory: for models that do not fit twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Literal, Sequence


class HarnessState(enum.Enum):
    """The manager's internal state of one version (a coarser copy of TF Serving's harness states)."""

    NEW = "new"  # aspired, not loaded yet (or waiting for a retry to start)
    LOADING = "loading"  # a load is running
    READY = "ready"  # loaded and serving
    UNLOADING = "unloading"  # out of the serving map: draining its handles, then unloading
    DISABLED = "disabled"  # unloaded, done
    ERROR = "error"  # the last load failed; retried later while still aspired


@dataclass(frozen=True)
class VersionSnapshot:
    """What a policy sees of one version."""

    version: int
    state: HarnessState
    is_aspired: bool


@dataclass(frozen=True)
class Action:
    """Load or unload one version."""

    kind: Literal["load", "unload"]
    version: int


AspiredVersionPolicy = Callable[[Sequence[VersionSnapshot]], "Action | None"]
"""``policy(snapshots) -> Action | None``: at most one action for one model."""


def _highest_new_aspired(versions: Sequence[VersionSnapshot]) -> Action | None:
    """Load the highest aspired version that is NEW; both policies load newest first."""
    candidates = [s.version for s in versions if s.is_aspired and s.state is HarnessState.NEW]
    return Action("load", max(candidates)) if candidates else None


def availability_preserving(versions: Sequence[VersionSnapshot]) -> Action | None:
    """Load before unload: the old version serves until an aspired one is READY."""
    has_aspired = any(s.is_aspired for s in versions)
    has_aspired_serving = any(s.is_aspired and s.state is HarnessState.READY for s in versions)
    unaspired_serving = [s.version for s in versions if not s.is_aspired and s.state is HarnessState.READY]
    # NOTE: with several unaspired versions serving, one may go even before the new one is up;
    # the others keep the model available.
    if not has_aspired or has_aspired_serving or len(unaspired_serving) > 1:
        if unaspired_serving:
            return Action("unload", min(unaspired_serving))
    return _highest_new_aspired(versions)


def resource_preserving(versions: Sequence[VersionSnapshot]) -> Action | None:
    """Unload before load: never hold an old and a new version in memory together."""
    for s in versions:
        if not s.is_aspired and s.state is HarnessState.READY:
            return Action("unload", s.version)
    finished = (HarnessState.DISABLED, HarnessState.ERROR)
    if any(not s.is_aspired and s.state not in finished for s in versions):
        return None  # wait until the unaspired versions are fully gone
    return _highest_new_aspired(versions)


SWAP_POLICIES: dict[str, AspiredVersionPolicy] = {
    "availability": availability_preserving,
    "resource": resource_preserving,
}
"""The swap policies by the name used in configuration."""
