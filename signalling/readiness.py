"""What GET /readyz judges besides the store: draining, and the event loop's lag.

`LoopLagMonitor` sleeps `period` seconds in a loop and records how late it
woke up; the worst of the last `window` samples is what /readyz compares with
`[health] max_loop_lag_ms` (signalling/health.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class LoopLagMonitor:
    def __init__(
        self,
        period: float = 0.25,
        window: int = 20,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.period = period
        self.samples: deque[float] = deque(maxlen=window)
        self.on_sample = on_sample  # e.g. a histogram's observe

    @property
    def recent_worst(self) -> float:
        """Seconds: the longest a wake-up was late within the window (0 before any)."""
        return max(self.samples, default=0.0)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            lag = max(0.0, loop.time() - before - self.period)
            self.samples.append(lag)
            if self.on_sample is not None:
                self.on_sample(lag)


class Health:
    def __init__(self) -> None:
        # Set when the node stops taking new calls (a drain before a restart).
        self.draining = False
        self.loop_lag = LoopLagMonitor()
