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

A probe may lead with a *step*: padding at a modest rate (`step_bps`, a climb's
next step with a margin) for `step_seconds`, then a report on half the streams,
then the burst and its report on the other half. The burst asks "was the link
lifted?"; the step asks "does the link carry this much more?", which a short link
that is not lifted answers too: a rate it cannot carry builds a queue that grows
for as long as the step goes on, past what the shaper lets through at once (the
test bed's links let 6 kB through), while the burst queued 19-52 ms on the 1.5
Mbit/s link whatever the room. Half a second: the queue a step too big builds
must show (15 ms past the shaper's allowance) without overflowing the link's own
(100 ms): on 1 Mbit/s carrying 0.65 Mbit/s, a step of 450 kbit/s for a whole second
overflowed it and froze the videos kept; for half a second its echoes came 134-144 ms
over the usual (the queue at its limit) and it froze a kept video in two runs of
twelve; for 0.3 s it queued 40-70 ms, and froze nothing. With one stream both report on it, the
burst only once the step's report was echoed (a subscriber echoes only the last
report it got): a receiver report interval later (0.5-1.5 s). A NACK
from the subscriber while the step goes on (the media lost packets: the link's
queue overflows) stops it at once, and every report goes out then, without the
burst.

The probe decides nothing: rooms/ compares its round trips with the link's usual
one (rooms/calls/link_probes.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sfu.link import PROBE_ANSWER_WITHIN, LinkStats

# How often a burst that waits for the step's echo looks again.
ECHO_POLL = 0.02


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
    step_seconds: float = 0.3  # a step's padding is spread over this


@dataclass
class _Phase:
    """`size` bytes of padding spread over `duration`, then reports on `streams`."""

    size: int
    duration: float
    streams: list[PaddedStream]
    reported: list[PaddedStream] = field(default_factory=list)
    reported_at: float | None = None
    kept: list[float] | None = None  # its answers, once a later report takes their place

    def answers(self) -> list[float]:
        if self.kept is not None:
            return self.kept
        if self.reported_at is None:
            return []
        return [
            rtt
            for stream in self.reported
            if (rtt := stream.link_stats.probe_rtt) is not None
            and stream.link_stats.probe_sent_at >= self.reported_at
        ]

    def answered(self) -> bool:
        return len(self.answers()) == len(self.reported)


class Probe:
    """One probe: a burst of `size` bytes, led by a step of `step_bps` when given;
    `done`, then `rtt` (the burst's; None: not echoed) and `step_rtt`."""

    def __init__(
        self,
        streams: Sequence[PaddedStream],
        size: int,
        settings: ProbeSettings | None = None,
        step_bps: float | None = None,
    ) -> None:
        self.settings = settings = settings or ProbeSettings()
        self.size = size
        self.step_bps = step_bps
        self.bytes_sent = 0
        self.started_at = time.monotonic()
        self._streams = streams = list(streams)
        burst = _Phase(size, settings.duration, streams)
        self._step: _Phase | None = None
        if step_bps:
            # Each its half of the streams; with one, both on it, the burst after the
            # step's echo (a subscriber echoes only the last report it got).
            half = max(1, len(streams) // 2)
            step_size = int(step_bps * settings.step_seconds / 8)
            self._step = _Phase(step_size, settings.step_seconds, streams[:half])
            burst.streams = streams[half:] or streams
        self._phases = [phase for phase in (self._step, burst) if phase is not None]
        self._burst = burst
        self._phase_started = self.started_at
        self._phase_sent = 0
        self.aborted = False  # the step's padding stopped: the media lost packets
        self._nacked = self._nacked_now()
        self._turn = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self._timer: asyncio.Handle | None = asyncio.get_running_loop().call_soon(self._tick)

    @property
    def reported_at(self) -> float | None:
        """When the burst's reports went out (None: not yet)."""
        return self._burst.reported_at

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        phase = self._phases[0]
        if self._awaits_echo(phase, now):
            self._phase_started = now
            self._timer = asyncio.get_running_loop().call_later(ECHO_POLL, self._tick)
            return
        duration = phase.duration
        share = min(1.0, (now - self._phase_started) / duration) if duration > 0 else 1.0
        due = phase.size * share - self._phase_sent
        # The media lost packets under the step: its padding overflows the link's queue.
        # Stop it, and report at once: the round trips show that queue.
        self.aborted = phase is self._step and self._nacked_now() > self._nacked
        failed = len(self._streams) if self.aborted else 0
        while due > 0 and failed < len(self._streams):
            stream = self._streams[self._turn % len(self._streams)]
            self._turn += 1
            sent = stream.send_padding(min(self.settings.packet_size, max(1, int(due))))
            failed = 0 if sent else failed + 1
            self.bytes_sent += sent
            self._phase_sent += sent
            due -= sent
        if failed:  # nothing can carry padding now: every report goes out at once
            for unfinished in self._phases:
                self._report(unfinished, now)
            self._phases.clear()
            return
        if share >= 1.0:
            self._report(self._phases.pop(0), now)
            if not self._phases:
                return
            self._phase_started, self._phase_sent = now, 0
        # A step's padding goes in whole packets: at its rate, one every few ticks.
        interval = self.settings.interval
        if self._phases[0] is self._step and self.step_bps:
            interval = max(interval, self.settings.packet_size * 8 / self.step_bps)
        self._timer = asyncio.get_running_loop().call_later(interval, self._tick)

    def _awaits_echo(self, phase: _Phase, now: float) -> bool:
        """Whether `phase` waits for the step's echo: it reports on the same stream."""
        step = self._step
        if phase is not self._burst or step is None or step.reported_at is None:
            return False
        if not set(map(id, step.reported)) & set(map(id, phase.streams)):
            return False
        if step.answered() or now - step.reported_at >= PROBE_ANSWER_WITHIN:
            step.kept = step.answers()
            return False
        return True

    def _nacked_now(self) -> int:
        return sum(stream.link_stats.nacked_packets for stream in self._streams)

    def _report(self, phase: _Phase, now: float) -> None:
        """The reports go right behind the padding (aiortc's path, after these sends)."""
        phase.reported_at = now
        for stream in phase.streams:
            sending = stream.send_probe_report()
            if sending is None:
                continue
            phase.reported.append(stream)
            task = asyncio.ensure_future(sending)
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a transport closing (retrieved, not logged): unanswered

    @property
    def answers(self) -> list[float]:
        """The round trips of the burst's reports echoed so far."""
        return self._burst.answers()

    @property
    def rtt(self) -> float | None:
        """The longest round trip of the burst's reports (they crossed the same queue)."""
        return max(self.answers, default=None)

    @property
    def step_rtt(self) -> float | None:
        """The longest round trip of the step's reports (None: no step, or not echoed)."""
        return None if self._step is None else max(self._step.answers(), default=None)

    def done(self, now: float) -> bool:
        """Every report echoed, or no more to wait for."""
        burst = self._burst
        if burst.reported_at is None:
            return False
        if all(phase.answered() for phase in (self._step, burst) if phase is not None):
            return True
        return now - burst.reported_at >= PROBE_ANSWER_WITHIN

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
