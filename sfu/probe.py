"""A probe of one subscriber's link: how much queue does a short burst on top of its media build?

`Probe` sends `size` bytes of padding (sfu/padding.py) on the subscriber's video
streams within `duration` (5 ms: a burst, one pacer tick), on top of their
media, then a sender report on each of those streams right behind it. The
report waits in the link's queue behind whatever the burst left there, so the
round trip its echo gives (sfu/link.py `probe_rtt`) measures that queue: what
the burst brought beyond what the link drains in that time and what its
shaper lets through at once (its burst allowance, a token bucket full while
the link runs below its rate).

Why a burst and not a longer probe at a modest rate: the link's answer is one
round trip, and the shaper's allowance hides a slow excess. The test bed's
1 Mbit/s link lets 6 kB through unqueued; padding at 1.5-2 times a 300 kbit/s
step, 8-9 kB over 0.12-0.25 s, built little or no queue there and the step it
let through then overflowed the link, while 17 kB over 0.25 s filled its whole
150 ms queue (with the keyframes of the videos it carried) and lost packets of
the videos kept. 12 kB in 20 ms gave 58-133 ms there (one packet dropped once),
10 kB within 5 ms 45-133 ms (and overflowed the queue with a keyframe now and
then), 8 kB 28-107 ms, and 0.3-3 ms once the link was lifted to 20 Mbit/s;
rooms/ sends 8 kB (rooms/calls/link_probes.py).

libwebrtc's prober reads the rate a cluster of probe packets arrived at from
transport-wide feedback; a subscriber that sends REMB gives no such timing,
but every receiver echoes a sender report. One report per stream, and until
it is echoed the stream's regular ones wait (the subscriber echoes only the
latest it got).

The probe decides nothing: rooms/ compares its round trip with the link's usual
one (rooms/calls/link_probes.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sfu.link import PROBE_ANSWER_WITHIN, LinkStats


class PaddedStream(Protocol):
    """An outgoing video stream that can carry a probe (sfu.consumer.Consumer)."""

    @property
    def link_stats(self) -> LinkStats: ...

    def send_padding(self, size: int) -> int: ...

    def send_probe_report(self) -> Coroutine[Any, Any, None] | None: ...


@dataclass(frozen=True)
class ProbeSettings:
    duration: float = 0.005  # the burst is spread over this
    packet_size: int = 275  # RTP header with abs-send-time (20) and 255 bytes of padding
    interval: float = 0.005  # as the pacer's


class Probe:
    """One probe of `size` bytes, started at once; `done`, then `rtt` (None: not echoed)."""

    def __init__(
        self, streams: Sequence[PaddedStream], size: int, settings: ProbeSettings | None = None
    ) -> None:
        self.settings = settings = settings or ProbeSettings()
        self.size = size
        self.bytes_sent = 0
        self.started_at = time.monotonic()
        self.reported_at: float | None = None
        self._streams = list(streams)
        self._reported: list[PaddedStream] = []
        self._turn = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self._timer: asyncio.Handle | None = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        duration = self.settings.duration
        share = min(1.0, (now - self.started_at) / duration) if duration > 0 else 1.0
        due = self.size * share - self.bytes_sent
        failed = 0
        while due > 0 and failed < len(self._streams):
            stream = self._streams[self._turn % len(self._streams)]
            self._turn += 1
            sent = stream.send_padding(min(self.settings.packet_size, max(1, int(due))))
            failed = 0 if sent else failed + 1
            self.bytes_sent += sent
            due -= sent
        if share >= 1.0 or failed:
            self._report(now)
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.settings.interval, self._tick)

    def _report(self, now: float) -> None:
        """The reports go right behind the padding (aiortc's path, after these sends)."""
        self.reported_at = now
        for stream in self._streams:
            sending = stream.send_probe_report()
            if sending is None:
                continue
            self._reported.append(stream)
            task = asyncio.ensure_future(sending)
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a transport closing (retrieved, not logged): unanswered

    @property
    def answers(self) -> list[float]:
        """The round trips of the probe's reports echoed so far."""
        if self.reported_at is None:
            return []
        return [
            rtt
            for stream in self._reported
            if (rtt := stream.link_stats.probe_rtt) is not None
            and stream.link_stats.probe_sent_at >= self.reported_at
        ]

    @property
    def rtt(self) -> float | None:
        """The longest round trip of its reports (they crossed the same queue), or None."""
        return max(self.answers, default=None)

    def done(self, now: float) -> bool:
        """Every report echoed, or no more to wait for."""
        if self.reported_at is None:
            return False
        if not self._reported or len(self.answers) == len(self._reported):
            return True
        return now - self.reported_at >= PROBE_ANSWER_WITHIN

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
