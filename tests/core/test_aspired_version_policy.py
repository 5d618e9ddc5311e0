"""Swap policies as tables of version states, in the manner of TF Serving's policy tests."""

from __future__ import annotations

import pytest

from tfaas.core.aspired_version_policy import (
    Action,
    HarnessState,
    VersionSnapshot,
    availability_preserving,
    resource_preserving,
)

NEW, LOADING, READY = HarnessState.NEW, HarnessState.LOADING, HarnessState.READY
UNLOADING, DISABLED, ERROR = HarnessState.UNLOADING, HarnessState.DISABLED, HarnessState.ERROR


def snaps(*rows: tuple[int, HarnessState, bool]) -> list[VersionSnapshot]:
    return [VersionSnapshot(v, state, aspired) for v, state, aspired in rows]


AVAILABILITY_CASES = [
    # (versions as (version, state, aspired), expected action)
    ("nothing managed", [], None),
    ("new aspired loads", [(1, NEW, True)], Action("load", 1)),
    ("highest new loads first", [(1, NEW, True), (3, NEW, True), (2, NEW, True)], Action("load", 3)),
    ("old serves while new loads", [(1, READY, False), (2, LOADING, True)], None),
    ("new loads before old unloads", [(1, READY, False), (2, NEW, True)], Action("load", 2)),
    ("old unloads once new is ready", [(1, READY, False), (2, READY, True)], Action("unload", 1)),
    ("failed new keeps old", [(1, READY, False), (2, ERROR, True)], None),
    ("nothing aspired unloads at once", [(1, READY, False)], Action("unload", 1)),
    (
        "several unaspired: lowest goes first",
        [(2, READY, False), (1, READY, False), (3, ERROR, True), (4, LOADING, True)],
        Action("unload", 1),
    ),
    ("aspired ready: nothing to do", [(1, READY, True)], None),
    ("unloading and disabled are left alone", [(1, UNLOADING, False), (2, DISABLED, False)], None),
    ("loading aspired, nothing else", [(1, LOADING, True)], None),
]


@pytest.mark.parametrize(
    "versions,expected", [c[1:] for c in AVAILABILITY_CASES], ids=[c[0] for c in AVAILABILITY_CASES]
)
def test_availability_preserving(versions, expected):
    assert availability_preserving(snaps(*versions)) == expected


RESOURCE_CASES = [
    ("nothing managed", [], None),
    ("new aspired loads", [(1, NEW, True)], Action("load", 1)),
    ("old unloads before new loads", [(1, READY, False), (2, NEW, True)], Action("unload", 1)),
    ("waits while old unloads", [(1, UNLOADING, False), (2, NEW, True)], None),
    ("waits while unaspired loads", [(1, LOADING, False), (2, NEW, True)], None),
    ("loads once old is gone", [(1, DISABLED, False), (2, NEW, True)], Action("load", 2)),
    ("an old error does not block", [(1, ERROR, False), (2, NEW, True)], Action("load", 2)),
    ("highest new loads first", [(1, NEW, True), (2, NEW, True)], Action("load", 2)),
    ("aspired ready: nothing to do", [(2, READY, True)], None),
]


@pytest.mark.parametrize("versions,expected", [c[1:] for c in RESOURCE_CASES], ids=[c[0] for c in RESOURCE_CASES])
def test_resource_preserving(versions, expected):
    assert resource_preserving(snaps(*versions)) == expected
