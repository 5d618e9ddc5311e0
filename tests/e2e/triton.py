"""tritonclient's HTTP and gRPC clients, in a virtual environment of their own (``client_venv.py``): its gRPC
client pins ``protobuf<7`` and ``ml-dtypes<=0.5.4``, which cannot live beside the server's protobuf 7. Tests
make their calls through ``triton_client.py`` run in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.client_venv import client_python, run_client
from tests.e2e.server import ServerProcess

TRITONCLIENT = "tritonclient[http,grpc]==2.73.0"
CLIENT = Path(__file__).with_name("triton_client.py")


class Triton:
    """tritonclient's interpreter: :meth:`run` makes calls (see ``triton_client.py``) to one server."""

    def __init__(self, python: Path) -> None:
        self.python = python

    def run(self, server: ServerProcess, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        """The answers to ``calls``, made to ``server``'s REST and gRPC ports."""
        plan = {"http": server.url.removeprefix("http://"), "grpc": server.grpc_target, "calls": list(calls)}
        return run_client(self.python, CLIENT, plan)

    def result(self, server: ServerProcess, **call: Any) -> Any:
        """The result of one call that must succeed."""
        [answer] = self.run(server, call)
        assert "result" in answer, answer
        return answer["result"]

    def error(self, server: ServerProcess, **call: Any) -> dict[str, str]:
        """The error of one call that must fail: its ``status`` and ``message``."""
        [answer] = self.run(server, call)
        assert "error" in answer, answer
        return answer["error"]


def install_tritonclient() -> Triton:
    """tritonclient's virtual environment, made on first use."""
    return Triton(client_python("tritonclient-2.73.0", [TRITONCLIENT]))
