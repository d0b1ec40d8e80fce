"""sfu/turns.py: heavy synchronous steps one per pass of the event loop."""

from __future__ import annotations

import asyncio
import itertools

from sfu.turns import Turns


class PassCounter:
    """Counts passes of the loop: a callback that schedules itself again (as a
    socket's reader is called once a pass while data waits)."""

    def __init__(self) -> None:
        self.passes = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.passes += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


async def test_a_free_turn_is_taken_without_yielding() -> None:
    turns = Turns()
    ran = []
    asyncio.get_running_loop().call_soon(ran.append, "other")
    await turns.take()
    assert ran == []  # nothing else ran in between: the caller went on at once


async def test_steps_ready_together_run_in_different_passes() -> None:
    turns = Turns()
    counter = PassCounter()
    passes: list[int] = []

    async def step() -> None:
        await turns.take()
        passes.append(counter.passes)  # the "heavy" synchronous work happens here

    await asyncio.gather(*(step() for _ in range(20)))
    counter.stop()
    assert len(passes) == 20
    # Without turns all 20 would run in the pass in which they became ready.
    assert len(set(passes)) == 20
    assert all(b > a for a, b in itertools.pairwise(passes))


async def test_a_cancelled_waiter_is_skipped() -> None:
    turns = Turns()
    done: list[int] = []

    async def step(i: int) -> None:
        await turns.take()
        done.append(i)

    await turns.take()  # this pass is taken: the others wait
    tasks = [asyncio.ensure_future(step(i)) for i in range(4)]
    await asyncio.sleep(0)  # they queue
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert done == [0, 2, 3]
    assert turns.waiting == 0


async def test_a_step_that_waits_on_io_holds_up_nobody() -> None:
    turns = Turns()
    finished: list[str] = []

    async def slow() -> None:
        await turns.take()
        await asyncio.sleep(0.5)  # e.g. gathering a TURN candidate
        finished.append("slow")

    async def quick() -> None:
        await turns.take()
        finished.append("quick")

    await asyncio.wait_for(asyncio.gather(slow(), quick()), 5)
    assert finished == ["quick", "slow"]
