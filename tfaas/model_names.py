"""The one rule for model names and version labels, wherever they come from (config files, flags, uploads).

A model name is a URL path segment (``/v1/models/<name>``, ``/delete/<name>``) and, in the model
repository, a directory name: so no ``/`` or ``:``, no leading ``.`` (hidden, ``..``) or ``-`` (read
as an option by command-line tools), and short enough that the repository's hidden names built from
it (``.deleted-<name>-<32 hex digits>``) fit the 255 bytes a file name may have on Linux. Labels
follow the same rule, as they are URL path segments too.
"""

from __future__ import annotations

import re

from tfaas.errors import InvalidArgument

MAX_NAME_LENGTH = 128
"""Longest model name or label, in characters (ASCII only, so in bytes too)."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

NAME_RULE = f"use letters, digits, '_', '.' and '-', not starting with '.' or '-', at most {MAX_NAME_LENGTH} characters"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` follows the rule of this module (a model name, or a version label)."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name, else ``InvalidArgument`` (a client's request named it)."""
    if not is_valid_name(name or ""):
        raise InvalidArgument(f"Invalid model name {name!r}: {NAME_RULE}")
    return name
