"""Paced sending towards one subscriber: bursts spread out, audio first.

A keyframe is 20-30 packets that arrive from the publisher within a few ms;
written to the subscriber's socket at once, they overflow a small router
queue on a home link and audio waits behind them. As libwebrtc's pacer does,
each subscriber transport has one pacer with a byte budget that fills at the
pacing rate:

- The pacing rate is 2.5 times what was sent to this subscriber over the
  last half second (libwebrtc's pacing factor, over its estimate), at least
  `floor_bps` (2 Mbit/s: a 30 kB keyframe takes 120 ms at most, while the
  first picture of a joining subscriber must not wait much longer), at most
  `ceiling_bps` if one is set. A queue whose oldest packet would not leave
  within `drain_target` (0.25 s) at that rate raises it so it does (libwebrtc
  does the same for its expected queue length).
- With a bandwidth estimate of the subscriber's video (sfu/bandwidth.py,
  `follow`) the rate is instead the estimate times `estimate_headroom`, at
  least `estimate_floor_bps` (1 Mbit/s, not 2: enough for a keyframe within
  `max_queue_delay`), a queue does not raise it, and audio does not
  use up the budget (the estimate is of video alone). Audio is still never
  held back.
- Priorities as libwebrtc's: audio is never queued (it is sent at once and
  only uses up budget, so video yields to it), retransmissions go before new
  video, video keeps its order.
- The budget can hold `burst_seconds` (20 ms) of the rate, and a packet goes
  while it is positive (it may overdraw it), so an ordinary video frame of
  a few packets goes out at once, synchronously, without a queue or a timer:
  only a burst is spread, every `interval` (5 ms, as libwebrtc), from
  loop.call_later.
- The queue is bounded in time: video that waited `max_queue_delay` (0.5 s)
  is dropped, oldest first, with the rest of that stream's queued video, and
  that stream waits for a keyframe again (its sink is told); an old
  retransmission is dropped too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from sfu.latency import LatencyBuckets

logger = logging.getLogger(__name__)

AUDIO, RETRANSMISSION, VIDEO = 0, 1, 2
# What was sent is measured over windows of at least this long.
RATE_WINDOW = 0.5


class PacedSink(Protocol):
    """Whoever queues packets in a pacer (sfu.consumer.Consumer)."""

    def transmit(
        self, data: bytes, priority: int, arrived: float | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """Send one packet now (`arrived`: when it was queued, for media when it reached
        the SFU: sfu/latency.py); a coroutine to run when it could not go synchronously."""
        ...

    def paced_video_dropped(self, count: int, first: bytes) -> None:
        """`count` of its queued video packets were dropped, `first` the oldest (all it
        had queued: none of them, nor anything after them, was sent): wait for a keyframe."""
        ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# schedule(delay, callback): the running loop's call_later unless a test drives the clock.
Schedule = Callable[[float, Callable[[], None]], Cancellable]


@dataclass(frozen=True)
class PacerSettings:
    enabled: bool = True
    factor: float = 2.5
    floor_bps: float = 2_000_000
    ceiling_bps: float | None = None
    interval: float = 0.005
    burst_seconds: float = 0.02
    drain_target: float = 0.25
    max_queue_delay: float = 0.5
    # With a bandwidth estimate (sfu/bandwidth.py) the rate is the estimate times this,
    # with no floor: the pacer spreads bursts and caps the excess, while rooms/ fits
    # what is sent under the estimate (the estimate lags a link that frees up, and
    # receive-side estimators allow at most 1.5 times what arrives).
    # Twice: a REMB answers over-use with 0.85 of what arrived, and paced at 1.5 times
    # that, the videos of the seconds before rooms/ holds some back queued past
    # max_queue_delay and were dropped: streams broken until a keyframe, less
    # arriving, a lower REMB, more dropped (bench.weak_link: the estimate fell to
    # 180 kbit/s on a 1.5 Mbit/s link, every video held back).
    estimate_headroom: float = 2.0
    # ... and never below this: a keyframe (20-30 kB) still leaves within max_queue_delay.
    estimate_floor_bps: float = 1_000_000
    # What the link delivered caps the rate (`follow`), down to this at the least.
    delivered_floor_bps: float = 250_000


class _Queued:
    __slots__ = ("data", "enqueued_at", "priority", "sink")

    def __init__(self, data: bytes, sink: PacedSink, priority: int, enqueued_at: float) -> None:
        self.data = data
        self.sink = sink
        self.priority = priority
        self.enqueued_at = enqueued_at


class Pacer:
    def __init__(self, settings: PacerSettings | None = None, schedule: Schedule | None = None):
        self.settings = settings or PacerSettings()
        self._paced = self.settings.enabled  # read on every packet
        self._schedule = schedule
        self._retransmissions: deque[_Queued] = deque()
        self._video: deque[_Queued] = deque()
        self.queued_bytes = 0
        self._timer: Cancellable | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._rate = 0.0  # bytes per second
        # The subscriber's video estimate (bps) when known: the rate follows it.
        self._estimate: Callable[[float], float | None] | None = None
        self.estimate_bps: float | None = None
        # What the link was measured to deliver (bps), when known: video never goes faster.
        self._delivered: Callable[[float], float | None] | None = None
        self.delivered_bps: float | None = None
        self._cap = 0.0
        self._set_rate(0.0)
        self._budget = self._cap
        self._budget_at = 0.0
        self._window_start = float("-inf")
        self._window_bytes = [0, 0, 0]  # by priority
        # Measured over the last window: what this subscriber was sent.
        self.media_bps = 0.0  # audio and video, retransmissions not included
        self.video_bps = 0.0
        self.retransmission_bps = 0.0
        self.queued = 0  # packets that waited in the queue
        self.dropped_video = 0
        self.dropped_retransmissions = 0
        self.longest_wait = 0.0  # seconds, of a packet that was sent
        # Sampled forwarding latency of this subscriber's consumers (sfu/latency.py).
        self.latency = LatencyBuckets()

    @property
    def pacing_bps(self) -> float:
        return self._rate * 8

    def follow(
        self,
        estimate: Callable[[float], float | None] | None,
        delivered: Callable[[float], float | None] | None = None,
    ) -> None:
        """Pace by `estimate(now)` (bps, None: unknown) from the next rate window on,
        never faster than `delivered(now)` (what the link's reports say it carried, when
        known: an estimate that jumps does not empty a queue into the link at once);
        `None`: by what was sent, as before."""
        self._estimate = estimate
        self._delivered = delivered if estimate is not None else None
        if estimate is None:
            self.estimate_bps = self.delivered_bps = None

    def _set_rate(self, sent_bps: float) -> None:
        settings = self.settings
        estimate = self.estimate_bps
        if self.delivered_bps is not None:  # measured: no headroom, no jumps
            bps = max(self.delivered_bps, settings.delivered_floor_bps)
        elif estimate is not None:
            bps = max(estimate * settings.estimate_headroom, settings.estimate_floor_bps)
        else:
            bps = max(settings.factor * sent_bps, settings.floor_bps)
        if settings.ceiling_bps is not None:
            bps = min(bps, settings.ceiling_bps)
        self._rate = bps / 8
        self._cap = max(self._rate * settings.burst_seconds, 1500.0)

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        counts = self._window_bytes
        self.media_bps = (counts[AUDIO] + counts[VIDEO]) * 8 / elapsed
        self.retransmission_bps = counts[RETRANSMISSION] * 8 / elapsed
        self.video_bps = counts[VIDEO] * 8 / elapsed
        self._window_bytes = [0, 0, 0]
        self._window_start = now
        if self._estimate is not None:
            self.estimate_bps = self._estimate(now)
        if self._delivered is not None:
            self.delivered_bps = self._delivered(now)
        self._set_rate(self.media_bps + self.retransmission_bps)

    def admit(self, size: int, priority: int, now: float) -> bool:
        """May a packet of `size` bytes go now? If so it is counted as sent; if not,
        the caller enqueues it. The per-packet fast path: no queue, no timer."""
        if now - self._window_start >= RATE_WINDOW:
            self._roll(now)
        if priority == AUDIO or not self._paced:
            if self.estimate_bps is None:  # the estimate is of video alone (sfu/bandwidth.py)
                self._budget -= size  # audio is never held back, but video yields to it
        elif self._retransmissions or (priority == VIDEO and self._video):
            return False  # behind what already waits (a stream keeps its order)
        else:
            budget = self._budget + (now - self._budget_at) * self._rate
            if budget > self._cap:
                budget = self._cap
            self._budget_at = now
            if budget <= 0:
                self._budget = budget
                return False
            self._budget = budget - size
        self._window_bytes[priority] += size
        return True

    def enqueue(self, data: bytes, sink: PacedSink, priority: int, now: float) -> None:
        queue = self._retransmissions if priority == RETRANSMISSION else self._video
        queue.append(_Queued(data, sink, priority, now))
        self.queued_bytes += len(data)
        self.queued += 1
        if self._timer is None:
            self._timer = self._later(self.settings.interval)

    def _later(self, delay: float) -> Cancellable:
        if self._schedule is not None:
            return self._schedule(delay, self._on_timer)
        return asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.process(time.monotonic())

    def process(self, now: float) -> None:
        """Send what the budget allows, most urgent first; come back while any waits."""
        if now - self._window_start >= RATE_WINDOW:
            self._roll(now)
        self._drop_stale(now)
        rate = self._rate
        if self.estimate_bps is None:  # with an estimate, a queue does not raise the rate
            rate = max(rate, self._rate_to_drain(now))
        if self.settings.ceiling_bps is not None:
            rate = min(rate, self.settings.ceiling_bps / 8)
        cap = max(self._cap, rate * self.settings.burst_seconds)
        budget = min(self._budget + (now - self._budget_at) * rate, cap)
        while budget > 0:
            queue = self._retransmissions or self._video
            if not queue:
                break
            item = queue.popleft()
            size = len(item.data)
            self.queued_bytes -= size
            budget -= size
            self._window_bytes[item.priority] += size
            self.longest_wait = max(self.longest_wait, now - item.enqueued_at)
            self._transmit(item)
        self._budget = budget
        self._budget_at = now
        if (self._retransmissions or self._video) and self._timer is None:
            self._timer = self._later(max(self.settings.interval, -budget / rate))

    def _rate_to_drain(self, now: float) -> float:
        """The rate at which the oldest packet waiting leaves within `drain_target`."""
        heads = [q[0].enqueued_at for q in (self._retransmissions, self._video) if q]
        if not heads:
            return 0.0
        time_left = self.settings.drain_target - (now - min(heads))
        return self.queued_bytes / max(time_left, self.settings.interval)

    def _transmit(self, item: _Queued) -> None:
        try:
            pending = item.sink.transmit(item.data, item.priority, item.enqueued_at)
        except Exception:  # one broken stream must not stop the subscriber's others
            logger.exception("paced send failed")
            return
        if pending is not None:  # not on the fast path: aiortc's own, in order
            task = asyncio.ensure_future(pending)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _drop_stale(self, now: float) -> None:
        limit = now - self.settings.max_queue_delay
        while self._retransmissions and self._retransmissions[0].enqueued_at < limit:
            self.queued_bytes -= len(self._retransmissions.popleft().data)
            self.dropped_retransmissions += 1
        if not self._video or self._video[0].enqueued_at >= limit:
            return
        dropped: dict[PacedSink, list[Any]] = {}  # sink: [count, its oldest packet]
        while self._video and self._video[0].enqueued_at < limit:
            item = self._video.popleft()
            dropped.setdefault(item.sink, [0, item.data])[0] += 1
        # The rest of those streams' queued video is of no use without what went before.
        kept: deque[_Queued] = deque()
        for item in self._video:
            if item.sink in dropped:
                dropped[item.sink][0] += 1
            else:
                kept.append(item)
        self._video = kept
        self.queued_bytes = sum(len(i.data) for i in (*self._retransmissions, *kept))
        for sink, (count, first) in dropped.items():
            self.dropped_video += count
            sink.paced_video_dropped(count, first)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._retransmissions.clear()
        self._video.clear()
        self.queued_bytes = 0
