"""Servable version policies: which versions on disk are aspired."""

from __future__ import annotations

import pytest

from tfaas.core.version_policy import ServableVersionPolicy

CASES = [
    ("latest 1 by default", ServableVersionPolicy(), [1, 3, 2], [3]),
    ("latest 2", ServableVersionPolicy("latest", 2), [1, 3, 2], [3, 2]),
    ("latest 0 means 1", ServableVersionPolicy("latest", 0), [1, 2], [2]),
    ("latest more than present", ServableVersionPolicy("latest", 5), [7], [7]),
    ("all", ServableVersionPolicy("all"), [1, 3, 2], [3, 2, 1]),
    ("specific present ones", ServableVersionPolicy("specific", versions=(1, 4)), [1, 2, 3], [1]),
    ("specific empty aspires nothing", ServableVersionPolicy("specific"), [1, 2], []),
    ("nothing present", ServableVersionPolicy(), [], []),
    ("duplicates collapse", ServableVersionPolicy("all"), [1, 1], [1]),
]


@pytest.mark.parametrize("policy,present,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_select(policy, present, expected):
    assert policy.select(present) == expected
