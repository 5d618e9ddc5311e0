"""PAI-EAS's own Python SDK (``eas-prediction`` from PyPI) in a virtual environment of its own, for the e2e tests.

The SDK pins ``protobuf<=3.20.3`` (its generated modules predate protobuf 4), which cannot live beside the
server's protobuf 7, so it gets its own interpreter (``client_venv.py``). Tests run ``eas_sdk_client.py`` in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from tests.e2e.client_venv import client_python, run_client

SDK_VERSION = "0.36"
CLIENT = Path(__file__).with_name("eas_sdk_client.py")


class EasSdk:
    """The SDK's interpreter: :meth:`run` makes calls through the SDK's ``PredictClient``."""

    def __init__(self, python: Path) -> None:
        self.python = python

    def run(self, endpoint: str, calls: Sequence[Mapping[str, Any]], tz: str = "UTC") -> list[dict[str, Any]]:
        """The answers to ``calls`` (see ``eas_sdk_client.py``), made from a client whose local time zone is
        ``tz`` (a POSIX TZ string: ``CST-8`` is UTC+8 without any zone file)."""
        return run_client(self.python, CLIENT, {"endpoint": endpoint, "calls": list(calls)}, {"TZ": tz})


def install_sdk() -> EasSdk:
    """The SDK's virtual environment, made on first use."""
    return EasSdk(client_python(f"eas-prediction-{SDK_VERSION}", [f"eas-prediction=={SDK_VERSION}"]))
