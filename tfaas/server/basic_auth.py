"""HTTP basic authentication (RFC 7617) of every route but the health probes, as Simple TensorFlow
Serving's ``--enable_auth`` asks for it; the ASGI transport checks it before any front or the Flask app.

The credentials sent are compared with the configured ones in constant time, as SHA-256 digests (so
neither their content nor their length shows in the time a refusal takes). The password is never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Iterable

from tfaas.config import Settings
from tfaas.errors import Unauthenticated

OPEN_PATHS = frozenset({"/health", "/healthz", "/readyz"})
"""Routes answered without credentials: probes (Kubernetes, load balancers) send none."""

CHALLENGE = (b"www-authenticate", b'Basic realm="tfaas", charset="UTF-8"')
"""The header of a 401 (RFC 9110 requires one): the scheme and realm a client should answer with."""

REFUSAL = "Need basic auth to request the resources"
"""Simple TensorFlow Serving's words for a request without (the right) credentials."""


class BasicAuth:
    """The credentials ``username:password`` every request but a probe must bring."""

    def __init__(self, username: str, password: str) -> None:
        self._expected = _digest(f"{username}:{password}".encode())

    @classmethod
    def from_settings(cls, settings: Settings) -> BasicAuth | None:
        """The check ``settings`` turn on (``enable_basic_auth``), else None."""
        if not settings.enable_basic_auth:
            return None
        return cls(settings.basic_auth_username, settings.basic_auth_password)

    def allows(self, path: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether a request for ``path`` with ``headers`` (ASGI's, names in lower case) may be answered."""
        if path in OPEN_PATHS:
            return True
        sent = next((value for name, value in headers if name == b"authorization"), b"")
        scheme, _, encoded = sent.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            return False
        return hmac.compare_digest(_digest(credentials), self._expected)

    @staticmethod
    def refusal() -> Unauthenticated:
        """The error a request that may not be answered gets (with :data:`CHALLENGE`)."""
        return Unauthenticated(REFUSAL)


def _digest(credentials: bytes) -> bytes:
    return hashlib.sha256(credentials).digest()
