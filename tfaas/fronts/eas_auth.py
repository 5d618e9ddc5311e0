"""PAI-EAS's service token, checked on ``/api/predict/<service>`` when ``--eas_token`` is set.

A client proves it has the token in one of EAS's two ways:

- the token itself, ``Authorization: <token>`` (EAS's curl examples, and its SDKs with a custom URL);
- the SDKs' signature, ``Authorization: EAS <base64(HMAC-SHA1(token, text))>`` where ``text`` is
  ``"<method>\\n<Content-MD5>\\n<Content-Type>\\n<Date>\\n/api/predict/<service>"``: the headers as sent,
  ``Content-MD5`` being the hex MD5 of the body (checked against it, so the signature covers the body).

Both compare in constant time. The signature's ``Date`` (``Mon, 02 Jan 2006 15:04:05 GMT``) bounds a replay:
it must lie within ``MAX_CLOCK_SKEW`` (15 minutes) of now, widened by the range of the world's UTC offsets
(-12 h to +14 h). NOTE: the widening is because EAS's Python SDK (0.36) stamps ``Date`` with the client's
*local* time under a ``GMT`` label (``datetime.now()``), so a client in Shanghai sends a Date 8 hours ahead;
a strict 15 minutes would refuse every SDK client outside UTC. The window is still bounded (about 26.5 h).

The token is never logged, nor written into an answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Mapping

from tfaas.errors import Unauthenticated

SCHEME = "EAS"
MAX_CLOCK_SKEW = timedelta(minutes=15)
UTC_OFFSETS = (timedelta(hours=-12), timedelta(hours=14))
"""The earliest and latest local time on Earth, as offsets from UTC."""


def check_token(token: str, method: str, resource: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Let the request through if it brings ``token`` (raw or as EAS's signature of ``method``, ``resource`` —
    ``/api/predict/<service>`` — ``headers`` and ``body``, dated near ``now``, a Unix time); else
    ``Unauthenticated``. An empty ``token`` lets every request through."""
    if not token:
        return
    sent = headers.get("Authorization", "")
    if not sent:
        raise Unauthenticated(
            f"This service needs its token: send 'Authorization: <token>' or the '{SCHEME} <signature>' of EAS's SDKs"
        )
    if hmac.compare_digest(sent.encode(), token.encode()):
        return
    scheme, _, signature = sent.partition(" ")
    if scheme != SCHEME:
        raise Unauthenticated("The Authorization header is not this service's token")
    _check_signature(token, signature.strip(), method, resource, headers, body, now)


def sign(token: str, method: str, resource: str, content_md5: str, content_type: str, date: str) -> str:
    """EAS's signature of a request, as its SDKs compute it (without the ``EAS`` scheme)."""
    text = f"{method}\n{content_md5}\n{content_type}\n{date}\n{resource}".strip()  # NOTE: the SDK strips it too
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _check_signature(
    token: str, signature: str, method: str, resource: str, headers: Mapping[str, str], body: bytes, now: float
) -> None:
    content_md5, date = headers.get("Content-MD5", ""), headers.get("Date", "")
    expected = sign(token, method, resource, content_md5, headers.get("Content-Type", ""), date)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Unauthenticated(
            f"The {SCHEME} signature does not match this service's token for {method} {resource} with these"
            " Content-MD5, Content-Type and Date"
        )
    if not hmac.compare_digest(content_md5.lower().encode(), hashlib.md5(body).hexdigest().encode()):
        raise Unauthenticated("Content-MD5 is not the hex MD5 of the body")
    _check_date(date, now)


def _check_date(date: str, now: float) -> None:
    """``Unauthenticated`` unless ``date`` is an HTTP date within the window around ``now``."""
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise Unauthenticated(f"The Date header {date!r} is not an HTTP date") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    ahead = sent - datetime.fromtimestamp(now, UTC)
    earliest, latest = UTC_OFFSETS[0] - MAX_CLOCK_SKEW, UTC_OFFSETS[1] + MAX_CLOCK_SKEW
    if not earliest <= ahead <= latest:
        raise Unauthenticated(
            f"The Date header {date!r} is too far from the server's time (allowed: {MAX_CLOCK_SKEW} beyond any"
            " UTC offset)"
        )
