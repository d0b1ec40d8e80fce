"""The breakout bench's CPU samples: server, bench and machine every 20 ms, for any interval."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass

from bench.server import cpu_times, machine_busy_seconds

SAMPLE_INTERVAL = 0.02


@dataclass
class CpuSpan:
    """CPU seconds spent in an interval."""

    seconds: float
    server: float | None
    server_system: float | None
    bench: float
    machine: float  # every process on the machine, the two above included

    @property
    def others(self) -> float | None:
        """What the rest of the machine used (other work on a shared box)."""
        if self.server is None:
            return None
        return max(0.0, self.machine - self.server - self.bench)

    def cores(self, value: float | None) -> float | None:
        return None if value is None or self.seconds <= 0 else value / self.seconds


class CpuSampler:
    """(time, server CPU, bench CPU, machine CPU) every 20 ms: CPU for any interval afterwards."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, tuple[float, float] | None, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        try:
            server: tuple[float, float] | None = cpu_times(self.pid)
        except OSError:
            server = None
        times = os.times()
        machine = machine_busy_seconds() or 0.0
        self.samples.append((time.monotonic(), server, times.user + times.system, machine))

    def start(self) -> None:
        self.sample()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    def between(self, t0: float, t1: float) -> CpuSpan:
        """From the first sample at >= t0 to the first at >= t1."""
        first = next((s for s in self.samples if s[0] >= t0), self.samples[0])
        last = next((s for s in self.samples if s[0] >= t1), self.samples[-1])
        server = server_system = None
        if first[1] is not None and last[1] is not None:
            server = sum(last[1]) - sum(first[1])
            server_system = last[1][1] - first[1][1]
        return CpuSpan(
            last[0] - first[0], server, server_system, last[2] - first[2], last[3] - first[3]
        )
