"""Small fake loaders for testing the lifecycle core without TensorFlow."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tfaas.core.servable_id import ServableId


@dataclass
class FakeServable:
    """What a fake loader produces: it only knows its id."""

    id: ServableId


@dataclass
class FakeLoader:
    """A loader that can be slow, fail always, or fail its first ``fail_times`` loads (flaky)."""

    id: ServableId
    delay: float = 0.0
    fail_times: int = 0
    always_fail: bool = False
    gate: threading.Event | None = None
    loads: int = 0
    unloads: int = 0
    log: list[str] = field(default_factory=list)

    def load(self) -> FakeServable:
        self.loads += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        if self.always_fail or self.loads <= self.fail_times:
            raise RuntimeError(f"cannot load {self.id.name}/{self.id.version}")
        self.log.append(f"load {self.id.version}")
        return FakeServable(self.id)

    def unload(self) -> None:
        self.unloads += 1
        self.log.append(f"unload {self.id.version}")
