"""sfu/pacer.py: audio first, a burst spread at the pacing rate, retransmissions before
new video, the queue bounded in time; and a consumer behind a real pacer.

The pacer is driven with explicit times (its timer is recorded, the test fires it),
so nothing here depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from sfu.pacer import AUDIO, RETRANSMISSION, VIDEO, Pacer, PacerSettings
from tests.sfu_support import WireRecorder, make_consumer, make_producer, publish, rtp


class Timer:
    def __init__(self, clock: Clock, delay: float) -> None:
        self.due = clock.now + delay
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """Stands in for the event loop's call_later; `run_until` fires the pacer's timers."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[Timer, Callable[[], None]]] = []

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self, delay)
        self.timers.append((timer, callback))
        return timer

    def run_until(self, pacer: Pacer, end: float) -> None:
        while self.timers:
            timer, _ = self.timers.pop(0)
            if timer.cancelled:
                continue
            if timer.due > end:
                self.timers.insert(0, (timer, _))
                break
            self.now = timer.due
            pacer._timer = None  # what Pacer._on_timer does before process()
            pacer.process(self.now)
        self.now = end


class Sink:
    """Records what the pacer lets go, and when."""

    def __init__(self, clock: Clock, name: str) -> None:
        self.clock = clock
        self.name = name
        self.sent: list[tuple[float, bytes, int]] = []
        self.dropped = 0
        self.first_dropped: list[bytes] = []  # the oldest packet of each drop

    def transmit(
        self, data: bytes, priority: int, arrived: float | None = None
    ) -> Coroutine[Any, Any, None] | None:
        self.sent.append((self.clock.now, data, priority))
        return None

    def paced_video_dropped(self, count: int, first: bytes) -> None:
        self.dropped += count
        self.first_dropped.append(first)


def offer(pacer: Pacer, sink: Sink, data: bytes, priority: int, now: float) -> None:
    """What a consumer does with each packet."""
    if pacer.admit(len(data), priority, now):
        sink.transmit(data, priority)
    else:
        pacer.enqueue(data, sink, priority, now)


def make(settings: PacerSettings) -> tuple[Clock, Pacer]:
    clock = Clock()
    return clock, Pacer(settings, schedule=clock.schedule)


def test_a_single_packet_goes_at_once_without_a_timer() -> None:
    clock, pacer = make(PacerSettings())
    sink = Sink(clock, "a")
    offer(pacer, sink, b"v" * 1200, VIDEO, clock.now)
    offer(pacer, sink, b"a" * 100, AUDIO, clock.now)
    assert [len(d) for _, d, _ in sink.sent] == [1200, 100]
    assert clock.timers == [] and pacer.queued == 0


def test_a_keyframe_burst_is_spread_at_the_pacing_rate() -> None:
    # 2 Mbit/s floor = 250,000 bytes/s: 30 packets of 1,200 bytes take about 144 ms.
    clock, pacer = make(PacerSettings(floor_bps=2_000_000, drain_target=10.0))
    sink = Sink(clock, "v")
    start = clock.now
    for i in range(30):
        offer(pacer, sink, bytes([i]) * 1200, VIDEO, start)
    at_once = len(sink.sent)
    assert 1 <= at_once <= 6  # the 20 ms burst allowance, not the whole keyframe
    clock.run_until(pacer, start + 1.0)
    times = [t - start for t, _, _ in sink.sent]
    assert [d[0] for _, d, _ in sink.sent] == list(range(30))  # in order
    assert 0.10 <= times[-1] <= 0.16
    # Evenly: 4 packets (4,800 bytes, 19 ms at the rate) never leave within 15 ms.
    drained = times[at_once:]
    for early, late in zip(drained, drained[4:], strict=False):
        assert late - early >= 0.014  # (float rounding)
    assert pacer.queued == 30 - at_once and pacer.dropped_video == 0


def test_a_long_queue_raises_the_rate_to_drain_in_time() -> None:
    clock, pacer = make(PacerSettings(floor_bps=2_000_000, drain_target=0.25))
    sink = Sink(clock, "v")
    start = clock.now
    for i in range(200):  # 240 kB: about 1 s at the floor rate
        offer(pacer, sink, bytes([i % 256]) * 1200, VIDEO, start)
    clock.run_until(pacer, start + 2.0)
    assert len(sink.sent) == 200 and sink.dropped == 0
    assert sink.sent[-1][0] - start <= 0.25 + 0.006


def test_audio_goes_ahead_of_queued_video() -> None:
    clock, pacer = make(PacerSettings())
    video, audio = Sink(clock, "v"), Sink(clock, "a")
    start = clock.now
    for i in range(30):
        offer(pacer, video, bytes([i]) * 1200, VIDEO, start)
    clock.run_until(pacer, start + 0.02)
    offer(pacer, audio, b"a" * 120, AUDIO, clock.now)
    # Audio left at once although video was waiting; the video behind it waits on.
    assert audio.sent == [(start + 0.02, b"a" * 120, AUDIO)]
    assert len(video.sent) < 30
    waiting = 30 - len(video.sent)
    clock.run_until(pacer, start + 1.0)
    assert len(video.sent) == 30 and waiting > 0


def test_retransmissions_go_before_new_video_and_after_audio() -> None:
    clock, pacer = make(PacerSettings())
    sink = Sink(clock, "v")
    start = clock.now
    for i in range(20):
        offer(pacer, sink, b"n" + bytes([i]) * 1199, VIDEO, start)
    before = len(sink.sent)
    offer(pacer, sink, b"r" * 1200, RETRANSMISSION, start + 0.001)
    offer(pacer, sink, b"a" * 100, AUDIO, start + 0.001)
    clock.run_until(pacer, start + 1.0)
    kinds = [d[:1] for _, d, _ in sink.sent[before:]]
    assert kinds[0] == b"a" and kinds[1] == b"r"
    assert kinds[2:] == [b"n"] * (20 - before)


def test_video_that_waited_too_long_is_dropped_and_its_stream_told() -> None:
    # A ceiling below what is queued: the queue cannot drain within 0.5 s.
    settings = PacerSettings(floor_bps=200_000, ceiling_bps=200_000, max_queue_delay=0.5)
    clock, pacer = make(settings)
    slow, other = Sink(clock, "slow"), Sink(clock, "other")
    start = clock.now
    for i in range(30):  # 36 kB at 25 kB/s: about 1.4 s
        offer(pacer, slow, b"s" + bytes([i]) * 1199, VIDEO, start)
    clock.run_until(pacer, start + 0.3)
    offer(pacer, other, b"o" * 1200, VIDEO, clock.now)  # queued later, behind them
    sent_by_then = len(slow.sent)
    clock.run_until(pacer, start + 3.0)
    # After 0.5 s the rest of the slow stream's queue went (and it was told), the
    # other stream's packet, queued later, still went out.
    assert slow.dropped == 30 - len(slow.sent) > 0
    assert all(t - start <= 0.5 + 0.006 for t, _, _ in slow.sent)
    assert len(slow.sent) >= sent_by_then and len(other.sent) == 1
    assert pacer.dropped_video == slow.dropped
    assert pacer.queued_bytes == 0 and pacer.longest_wait <= 0.5 + 0.006
    # It was handed the oldest packet dropped: the first one it did not send.
    assert slow.first_dropped == [b"s" + bytes([len(slow.sent)]) * 1199]


def test_disabled_lets_everything_go_at_once() -> None:
    clock, pacer = make(PacerSettings(enabled=False))
    sink = Sink(clock, "v")
    for i in range(100):
        offer(pacer, sink, bytes([i]) * 1200, VIDEO, clock.now)
    assert len(sink.sent) == 100 and clock.timers == []


def test_the_send_rate_is_measured_and_sets_the_pacing_rate() -> None:
    clock, pacer = make(PacerSettings(floor_bps=100_000))
    sink = Sink(clock, "v")
    start = clock.now
    # 4 Mbit/s of media for a second, in 1000-byte packets every 2 ms.
    for i in range(501):
        offer(pacer, sink, b"x" * 1000, AUDIO, start + i * 0.002)
    assert 3.5e6 <= pacer.media_bps <= 4.5e6
    assert 8.7e6 <= pacer.pacing_bps <= 11.3e6  # 2.5 times


# --------------------------------------------------------------------------- consumer


async def test_a_consumer_waits_for_a_keyframe_after_the_pacer_dropped_its_video() -> None:
    pub_wire, wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    pacer = Pacer(PacerSettings(floor_bps=80_000, ceiling_bps=80_000, max_queue_delay=0.2))
    consumer = await make_consumer(wire, pacer=pacer)
    consumer.attach(producer)
    big = bytes(1000)
    # A keyframe of 20 packets: 20 kB at 10 kB/s cannot leave within 0.2 s.
    await publish(
        receiver, *(rtp(i, 0, (b"\x10\x00" if i == 0 else b"\x00") + big) for i in range(20))
    )
    await asyncio.sleep(0.5)
    sent = len(wire.rtp())
    assert 0 < sent < 20 and consumer.link.paced_drops == 20 - sent
    plis = len(pub_wire.plis())
    # Delta frames now wait for the next keyframe, which was asked for.
    await publish(receiver, rtp(20, 3000, b"\x00delta"))
    await asyncio.sleep(0.05)
    assert len(wire.rtp()) == sent and consumer.held_for_keyframe == 1
    await asyncio.sleep(1.1)  # the producer's keyframe floor
    assert len(pub_wire.plis()) > plis
    await publish(receiver, rtp(21, 6000, b"\x10\x00key"))
    await asyncio.sleep(0.05)
    assert [p.payload for p in wire.rtp()[sent:]] == [b"\x10\x00key"]
    # What was dropped was never sent: the stream goes on from the last sequence number
    # that was, so the subscriber sees no loss (nor asks for it again) on a clean link.
    seqs = [p.sequence_number for p in wire.rtp()]
    assert seqs[sent] == (seqs[sent - 1] + 1) % 65536
    pacer.close()
    await receiver.stop()
