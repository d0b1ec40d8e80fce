"""A probe coroutine that measures how long the event loop was kept from running.

Two figures: `worst` is wall time (what a lesson feels, but also whatever the
OS gave other processes on a shared machine); `worst_cpu` is the CPU time the
loop's own thread spent between two ticks of the probe, which is what one
long callback costs and stays the same however busy the machine is. Tests
assert on `worst_cpu`, with the cyclic garbage collector paused while probing:
a full collection of the test process's own heap (hypothesis keeps a large
one) is not the server's doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class LoopLag:
    worst: float = 0.0  # seconds a 1 ms sleep overran, wall clock
    worst_cpu: float = 0.0  # CPU seconds the loop's thread spent between two ticks
    samples: int = 0

    async def _run(self, period: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(period)
            self.worst = max(self.worst, loop.time() - before - period)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu_before)
            self.samples += 1

    def describe(self) -> str:
        return f"loop blocked {self.worst_cpu * 1000:.1f} ms CPU ({self.worst * 1000:.1f} ms wall)"


@contextlib.asynccontextmanager
async def probing(period: float = 0.001) -> AsyncIterator[LoopLag]:
    lag = LoopLag()
    gc.collect()
    gc.disable()
    task = asyncio.create_task(lag._run(period))
    await asyncio.sleep(period * 3)  # let it take its first sample
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.enable()
