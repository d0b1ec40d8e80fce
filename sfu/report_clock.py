"""One timer for the periodic RTCP of every forwarding sender and receiver in an event loop.

Each outgoing stream sends a sender report about once a second (RFC 3550 6.2: the
subscriber lines up audio and video with them, and their echoes give the RTT), and
each receiver of a publisher's stream a receiver report (sfu/aiortc_receiver.py). A
sleeping task per stream made every idle participant cost ~36 timer wake-ups a
second in a class of 31 (one per stream it receives), and aiortc's task per
receiver two more: the largest part of a connection's upkeep (docs/performance.md
"full class"). Here one task per loop ticks every TICK_S and reports the members
of one bucket; a member joins a random bucket, which spreads the reports over the
second as RFC 3550's randomised interval does, and reports every BUCKETS x TICK_S.
Members join with their first packet, not when negotiated: in a quiet lesson of 31,
where everyone subscribes to everyone, a thousand senders have sent nothing, and
walking them cost ~2 us each in the server (cold in the CPU's caches), ~0.2 ms a tick.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable
from typing import Protocol

logger = logging.getLogger(__name__)

BUCKETS = 10
TICK_S = 0.1


class Reporting(Protocol):
    """A sender or receiver whose periodic RTCP the clock drives."""

    def send_report(self) -> Awaitable[None] | None:
        """One report now: its sending, to await (ConnectionError when the transport is
        gone), or None when there is nothing to report (nothing sent or received yet).

        Not a coroutine itself: most members of a quiet lesson have nothing to report,
        and asking them costs a call, not a coroutine and a step of the loop each."""


class ReportClock:
    """The periodic reports of one event loop, a bucket per tick."""

    def __init__(self) -> None:
        self._buckets: list[dict[Reporting, None]] = [{} for _ in range(BUCKETS)]
        self._bucket_of: dict[Reporting, int] = {}
        self._turn = 0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._bucket_of)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def add(self, member: Reporting) -> None:
        if member in self._bucket_of:
            return
        bucket = random.randrange(BUCKETS)
        self._bucket_of[member] = bucket
        self._buckets[bucket][member] = None
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, member: Reporting) -> None:
        bucket = self._bucket_of.pop(member, None)
        if bucket is not None:
            del self._buckets[bucket][member]
        if not self._bucket_of and self._task is not None:
            self._task.cancel()  # nothing left to report: no timer at all
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick_at = loop.time()
        while True:
            # Ticks on a fixed grid: a late tick does not push the next ones back.
            tick_at = max(tick_at + TICK_S, loop.time() - TICK_S)
            await asyncio.sleep(tick_at - loop.time())
            self._turn = (self._turn + 1) % BUCKETS
            for member in list(self._buckets[self._turn]):
                try:
                    sending = member.send_report()
                    if sending is not None:
                        await sending
                except ConnectionError:
                    pass  # closing: its stop() takes it out
                except Exception:  # one member's fault must not end everyone's reports
                    logger.exception("periodic report failed")


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReportClock] = (
    weakref.WeakKeyDictionary()
)


def report_clock() -> ReportClock:
    """The running event loop's clock (made on first use)."""
    loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = ReportClock()
    return clock
