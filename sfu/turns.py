"""Heavy synchronous steps taken one per pass of the event loop.

aiortc's SDP work (createOffer, setLocalDescription, setRemoteDescription) is
5-10 ms of CPU with no real await inside. When a whole class renegotiates at
once (a breakout open: 150 offers, then 150 answers arriving together), every
one of those steps is ready in the same pass of the loop, and asyncio runs all
ready steps before it polls a socket again: the node forwarded nothing, for
any lesson, for the sum of them (350-520 ms measured). An asyncio.Semaphore
does not help: acquiring a free one does not yield, so the steps still run
back to back.

`Turns.take()` returns at most once per pass of the loop: a caller that finds
this pass taken waits for a later one, so the loop polls its sockets between
any two such steps. Nothing is held after it returns (a step that does wait
for the network, such as gathering TURN candidates, holds up nobody), and a
caller in a pass nobody took goes on at once.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Turns:
    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._taken = False  # a step started in this pass of the loop

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def take(self) -> None:
        """Return in a pass of the loop in which no other step started (at once if
        this one is free): run the heavy synchronous step right after."""
        if not self._taken:
            self._taken = True
            asyncio.get_running_loop().call_soon(self._next_pass)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        await future

    def _next_pass(self) -> None:
        # Called once per pass while steps wait: wake one (it runs in the pass
        # after this one, the loop's sockets polled in between), or free the pass.
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():  # a cancelled waiter is skipped
                future.set_result(None)
                asyncio.get_running_loop().call_soon(self._next_pass)
                return
        self._taken = False
