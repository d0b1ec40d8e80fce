"""rooms/calls/ticker.py: a call's periodic step, on while people are in, off at the end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from rooms.calls.core import CallCore
from rooms.calls.ticker import CallTicker


@dataclass
class _Call:  # what the ticker reads of a CallCore
    id: str = "les_1"
    ended: bool = False
    participants: dict[str, Any] = field(default_factory=lambda: {"p_1": object()})


async def test_steps_go_on_after_a_failure_and_stop_when_the_call_empties() -> None:
    call = _Call()
    steps: list[float] = []

    async def step(now: float) -> None:
        steps.append(now)
        if len(steps) == 2:
            raise RuntimeError("one bad round")

    ticker = CallTicker(cast(CallCore, call), 0.01, step, "test")
    ticker.watch()
    ticker.watch()  # a second entry starts no second loop
    await asyncio.sleep(0.2)
    assert len(steps) >= 5  # the failure did not end it
    assert steps == sorted(steps)
    call.participants.clear()
    await asyncio.sleep(0.05)
    count = len(steps)
    await asyncio.sleep(0.1)
    assert len(steps) == count  # nobody left: no more rounds


async def test_a_plain_step_and_stop() -> None:
    call = _Call()
    steps: list[float] = []
    ticker = CallTicker(cast(CallCore, call), 0.01, steps.append, "test")
    ticker.watch()
    await asyncio.sleep(0.1)
    await ticker.stop()
    count = len(steps)
    assert count >= 3
    await asyncio.sleep(0.05)
    assert len(steps) == count
