"""A bound on how long a request may take: TF Serving's ``--rest_api_timeout_in_ms``."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

from tfaas.errors import DeadlineExceeded


@asynccontextmanager
async def deadline(milliseconds: int) -> AsyncIterator[None]:
    """Bound the ``async with`` body to ``milliseconds`` (0: no bound): past it, the body is cancelled and
    ``DeadlineExceeded`` raised. A model call already running on a thread finishes there, unanswered (a
    thread cannot be stopped); one waiting in the batcher's queue still runs with its batch."""
    try:
        async with asyncio.timeout(milliseconds / 1000 if milliseconds > 0 else None):
            yield
    except TimeoutError:
        raise DeadlineExceeded(f"Deadline exceeded: the request took longer than {milliseconds} ms") from None
