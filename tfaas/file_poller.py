"""``FilePoller``: calls back when a file changes, checked every few seconds on its own thread.

Used to re-read the model config (TF Serving's ``--model_config_file_poll_wait_seconds``). A stat
per period is all it costs; the file is read only when its size, mtime or inode changed.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

log = logging.getLogger("tfaas.config")


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class FilePoller:
    """Checks ``path`` every ``period`` seconds and calls ``on_change()`` after it changed."""

    def __init__(self, path: str, period: float, on_change: Callable[[], object]) -> None:
        self._path = path
        self._period = period
        self._on_change = on_change
        self._last = _signature(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tfaas-config-poller", daemon=True)

    def start(self) -> None:
        """Begin polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            current = _signature(self._path)
            if current is None or current == self._last:
                continue  # NOTE: a file that vanished keeps the config in force
            self._last = current
            try:
                self._on_change()
            except Exception:  # NOTE: a failed reload must not end the polling
                log.exception("Reloading %s failed", self._path)
