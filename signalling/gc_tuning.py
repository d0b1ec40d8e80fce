"""Python's cyclic garbage collector, tuned for a node that forwards media.

With CPython's defaults (thresholds 700, 10, 10), `bench.breakout` (a class of
151, 50 rooms) found the node's event loop standing still for 300-600 ms in
each full collection, every 3-10 s while people joined, moved or left: a full
collection walks every tracked object (~340,000: mostly the aiortc objects of
300 peer connections), and almost none of them was garbage. Every lesson on
the node stalls meanwhile (docs/performance.md, "The other lesson's gap was the
garbage collector").

`tune` (called by `urok serve` once the app is built, not by tests that build
apps in one process) changes two things:

- What exists at that moment (modules, classes, the app: ~100,000 objects) is
  frozen (`gc.freeze`): never walked again. None of it is ever garbage.
- The youngest generation is collected after 50,000 allocations instead of 700.
  Objects that live for a moment (packets, their caches, messages) are then
  freed by their reference counts before any collection sees them, so few reach
  the old generation and full collections come far more rarely. They still come,
  by CPython's own rules, so cyclic garbage (a closed connection's objects) is
  still freed. A young collection walks up to 50,000 objects: 20-50 ms here.

`PAUSES` counts each collection's pause by generation for GET /metrics.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

YOUNG_THRESHOLD = 50_000


@dataclass
class GcPauses:
    """Collections and the time they stopped the process, by generation."""

    installed: bool = False
    count: list[int] = field(default_factory=lambda: [0, 0, 0])
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    longest: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _started: float = 0.0

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self._on_collection)
            self.installed = True

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info.get("generation", 2))
        pause = time.perf_counter() - self._started
        self.count[generation] += 1
        self.seconds[generation] += pause
        self.longest[generation] = max(self.longest[generation], pause)


PAUSES = GcPauses()


def tune() -> None:
    """Freeze what exists now and collect the young generation less often; count pauses."""
    PAUSES.install()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
