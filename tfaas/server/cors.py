"""CORS for browsers (``--enable_cors``, Simple TensorFlow Serving's flag): every response allows any
origin, and a preflight ``OPTIONS`` is answered by the transport itself, before authentication (a
browser sends no credentials with one), as Flask-CORS, which STS uses, answers them.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Headers = list[tuple[bytes, bytes]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ALLOW_ORIGIN = (b"access-control-allow-origin", b"*")
ALLOWED_METHODS = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
"""The methods a preflight is told it may use (Flask-CORS's default: all of them)."""


def is_preflight(method: str, headers: Headers) -> bool:
    """Whether a request is a CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``."""
    names = {name for name, _ in headers}
    return method == "OPTIONS" and b"origin" in names and b"access-control-request-method" in names


def preflight_headers(headers: Headers) -> Headers:
    """The answer's headers to a preflight: any origin, every method, and the headers it asked for."""
    answer = [ALLOW_ORIGIN, (b"access-control-allow-methods", ALLOWED_METHODS)]
    asked = [value for name, value in headers if name == b"access-control-request-headers"]
    if asked:
        answer.append((b"access-control-allow-headers", b", ".join(asked)))
    return answer


def allowing_any_origin(send: Send) -> Send:
    """``send`` with ``Access-Control-Allow-Origin: *`` added to the response's headers."""

    async def send_with_origin(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), ALLOW_ORIGIN]}
        await send(message)

    return send_with_origin
