"""sfu/producer.py: fan-out, pause and resume, the NACK cache, keyframe requests, close.

Real receivers, senders, producers and consumers; only the wire is a recorder.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from sfu.consumer import Consumer
from sfu.producer import CACHE_SIZE, KEYFRAME_INTERVAL, STARTUP_KEYFRAME_INTERVAL
from sfu.rtp_header import RTP_HEADER
from tests.sfu_support import WireRecorder, make_consumer, make_producer, publish, rtp


async def test_one_packet_fans_out_to_every_consumer_under_its_own_ssrc() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wires = [WireRecorder() for _ in range(3)]
    consumers = [await make_consumer(w) for w in wires]
    for consumer in consumers:
        consumer.attach(producer)
    assert producer.consumers == consumers

    await publish(receiver, rtp(100, 9000, b"\x10\x00one"), rtp(101, 12000, b"\x10\x00two"))

    for consumer, wire in zip(consumers, wires, strict=True):
        sent = wire.rtp()
        assert [p.payload for p in sent] == [b"\x10\x00one", b"\x10\x00two"]
        assert {p.ssrc for p in sent} == {consumer.ssrc}
        assert consumer.packets_sent == 2
    assert len({c.ssrc for c in consumers}) == 3
    assert producer.packets_received == 2
    assert producer.bytes_received == len(b"\x10\x00one") + len(b"\x10\x00two")
    await receiver.stop()


async def test_a_detached_consumer_gets_nothing_more_and_the_others_go_on() -> None:
    producer, receiver = await make_producer(WireRecorder())
    kept_wire, gone_wire = WireRecorder(), WireRecorder()
    kept, gone = await make_consumer(kept_wire), await make_consumer(gone_wire)
    kept.attach(producer)
    gone.attach(producer)
    await publish(receiver, rtp(1, 0))
    gone.detach()
    assert producer.consumers == [kept] and gone.producer is None
    await publish(receiver, rtp(2, 3000))
    assert len(kept_wire.rtp()) == 2
    assert len(gone_wire.rtp()) == 1
    await receiver.stop()


async def test_paused_producer_keeps_caching_but_forwards_nothing() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    (await make_consumer(wire)).attach(producer)
    producer.pause()
    await publish(receiver, rtp(7, 0, b"\x10\x00paused"))
    assert wire.rtp() == []
    assert producer.packets_received == 1
    entry = producer.cached(7)
    assert entry is not None and entry.payload == b"\x10\x00paused"
    await receiver.stop()


async def test_resume_starts_a_new_segment_and_asks_for_a_keyframe() -> None:
    pub_wire, wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    (await make_consumer(wire)).attach(producer)
    await publish(receiver, rtp(10, 90000))
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.05)  # past the attach's own request
    producer.pause()
    before = len(pub_wire.plis())
    await producer.resume()
    assert len(pub_wire.plis()) == before + 1
    # The publisher's numbering jumped while paused; the subscriber's does not.
    await publish(receiver, rtp(5000, 9_000_000))
    first, second = wire.rtp()
    assert second.sequence_number == (first.sequence_number + 1) % 65536
    assert second.timestamp != first.timestamp
    await producer.resume()  # not paused: nothing happens, no keyframe asked
    assert len(pub_wire.plis()) == before + 1
    await receiver.stop()


async def test_keyframe_requests_are_throttled_to_one_per_interval() -> None:
    pub_wire = WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    await publish(receiver, rtp(1, 0))  # the receiver learns the publisher's SSRC
    await producer.request_keyframe()
    await producer.request_keyframe()
    await producer.request_keyframe()
    assert [p.media_ssrc for p in pub_wire.plis()] == [4242]
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.05)
    await producer.request_keyframe()
    assert len(pub_wire.plis()) == 2
    await receiver.stop()


async def test_audio_and_closed_producers_never_ask_for_keyframes() -> None:
    audio_wire, video_wire = WireRecorder(), WireRecorder()
    audio, audio_receiver = await make_producer(audio_wire, kind="audio")
    await publish(audio_receiver, rtp(1, 0, b"\x01opus", payload_type=111))
    await audio.request_keyframe()
    assert audio_wire.plis() == []

    video, video_receiver = await make_producer(video_wire)
    await publish(video_receiver, rtp(1, 0))
    video.close()
    await video.request_keyframe()
    assert video_wire.plis() == []
    await audio_receiver.stop()
    await video_receiver.stop()


async def test_cache_answers_recent_sequence_numbers_only() -> None:
    producer, receiver = await make_producer(WireRecorder())
    await publish(receiver, *(rtp(seq % 65536, seq * 3000) for seq in range(65530, 65540)))
    hit = producer.cached(3)  # after the wrap-around
    assert hit is not None and hit.seq == 3 and hit.ts == 65539 * 3000
    assert producer.cached(20) is None  # never received
    # A packet CACHE_SIZE later takes the same slot: the old one is gone.
    await publish(receiver, rtp((3 + CACHE_SIZE) % 65536, 0))
    assert producer.cached(3) is None
    assert producer.cached((3 + CACHE_SIZE) % 65536) is not None
    await receiver.stop()


async def test_publishers_sender_report_is_kept_for_the_consumers() -> None:
    producer, receiver = await make_producer(WireRecorder())
    assert producer.last_sender_report is None
    info = RtcpSenderInfo(
        ntp_timestamp=123 << 32, rtp_timestamp=4500, packet_count=1, octet_count=9
    )
    await receiver._handle_rtcp_packet(RtcpSrPacket(ssrc=4242, sender_info=info))
    assert producer.last_sender_report is not None
    assert producer.last_sender_report[:2] == (123 << 32, 4500)
    await receiver.stop()


async def test_close_detaches_consumers_and_stops_forwarding_and_taps() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer: Consumer = await make_consumer(wire)
    consumer.attach(producer)
    tapped: list[int] = []
    producer.add_tap(lambda _producer, packet: tapped.append(packet.seq))
    await publish(receiver, rtp(1, 0))
    producer.close()
    assert producer.closed and producer.consumers == [] and producer.taps == []
    assert consumer.producer is None
    await publish(receiver, rtp(2, 3000))
    assert len(wire.rtp()) == 1 and tapped == [1]
    assert producer.packets_received == 1  # the receiver no longer feeds it
    await receiver.stop()


async def test_a_request_inside_the_interval_is_postponed_not_lost() -> None:
    # Consumers that become ready a few ms apart all need the keyframe (issue 15:
    # dropped requests left a re-used slot showing the previous person).
    pub_wire = WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    await publish(receiver, rtp(1, 0))
    await producer.request_keyframe()
    for _ in range(5):  # five more consumers, within the interval
        await producer.request_keyframe()
    assert len(pub_wire.plis()) == 1
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.1)
    assert len(pub_wire.plis()) == 2  # one deferred PLI answers all five
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.1)
    assert len(pub_wire.plis()) == 2  # and nothing more
    # Counted for metrics: two sent, five postponed, four of them into the first's PLI.
    assert producer.keyframe_requests_sent == 2
    assert producer.keyframe_requests_deferred == 5
    assert producer.keyframe_requests_coalesced == 4
    await producer.request_keyframe()
    producer.close()  # a deferred request dies with the producer
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.1)
    assert len(pub_wire.plis()) == 3
    await receiver.stop()


class TimedWire(WireRecorder):
    """Also notes when each PLI left."""

    def __init__(self) -> None:
        super().__init__()
        self.pli_times: list[float] = []

    async def _send_rtp(self, data: bytes) -> None:
        await super()._send_rtp(data)
        if len(self.plis()) > len(self.pli_times):
            self.pli_times.append(time.monotonic())


async def test_the_keyframe_floor_holds_however_many_subscribers_ask() -> None:
    # Issue 16: congested pupils' PLIs made every publisher send a keyframe every
    # ~0.5 s. Three subscribers asking every 0.1 s for 2 s get the publisher asked
    # at most once per floor interval, and the last request is still answered.
    floor = 0.4
    pub_wire = TimedWire()
    producer, receiver = await make_producer(pub_wire, keyframe_interval=floor)
    await publish(receiver, rtp(1, 0))
    consumers = [await make_consumer(WireRecorder()) for _ in range(3)]
    for consumer in consumers:
        consumer.attach(producer)
    await asyncio.sleep(0.5)  # their own start-up requests (the short floor) are done
    measured_from = time.monotonic()
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        for consumer in consumers:
            consumer._last_subscriber_request = -1.0  # (each PLI of its own passes)
            await consumer.on_keyframe_request()
        last_ask = time.monotonic()
        await asyncio.sleep(0.1)
    await asyncio.sleep(floor + 0.2)
    times = [t for t in pub_wire.pli_times if t >= measured_from]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= floor - 0.01
    assert len(times) <= 2.0 / floor + 2
    assert times[-1] >= last_ask - 0.01  # the last request was answered, not dropped
    assert producer.keyframe_requests_sent == len(pub_wire.pli_times)
    assert sum(c.link.plis_received for c in consumers) >= 3 * 15
    await receiver.stop()


async def test_a_request_before_the_first_packet_is_not_counted_as_sent() -> None:
    # The publisher's SSRC is not known yet: no PLI can go (its first frame is a keyframe).
    pub_wire = WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    await producer.request_keyframe()
    assert pub_wire.plis() == [] and producer.keyframe_requests_sent == 0
    await receiver.stop()


async def test_a_viewer_without_a_picture_waits_only_the_startup_floor() -> None:
    # A 1 s floor for everything made first pictures at join wait up to 1.2 s
    # (bench.first_frame); a starting consumer's request keeps the short floor,
    # and brings forward a repair request already waiting for the long one.
    pub_wire = TimedWire()
    producer, receiver = await make_producer(pub_wire, keyframe_interval=1.0)
    await publish(receiver, rtp(1, 0))
    await producer.request_keyframe()
    first = pub_wire.pli_times[-1]
    await producer.request_keyframe()  # a repair: deferred to first + 1.0
    await producer.request_keyframe(starting=True)  # a new viewer: first + 0.3
    await asyncio.sleep(STARTUP_KEYFRAME_INTERVAL + 0.15)
    assert len(pub_wire.pli_times) == 2
    assert STARTUP_KEYFRAME_INTERVAL - 0.01 <= pub_wire.pli_times[1] - first < 0.6
    await asyncio.sleep(1.0)
    assert len(pub_wire.pli_times) == 2  # the repair was answered by that PLI
    await receiver.stop()


async def test_a_consumer_that_lost_its_picture_to_congestion_asks_at_the_long_floor() -> None:
    # The pacer dropped video: the retry of a broken (not a missing) picture must not
    # use the start-up floor, or a congested pupil sets everyone's keyframe rate again.
    pub_wire = TimedWire()
    producer, receiver = await make_producer(pub_wire, keyframe_interval=1.0)
    consumer = await make_consumer(WireRecorder())
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    consumer.paced_video_dropped(3, RTP_HEADER.pack(0x80, 96, 2, 0, consumer.ssrc))
    for seq in range(2, 30):  # delta frames while waiting: retries every KEYFRAME_RETRY
        await publish(receiver, rtp(seq, seq * 3000, payload=b"\x10\x01delta"))
        await asyncio.sleep(0.1)
    asked = [t for t in pub_wire.pli_times if t >= start]
    assert len(asked) >= 2, pub_wire.pli_times  # it does ask again, at the long floor
    assert min(b - a for a, b in itertools.pairwise(asked)) >= 1.0 - 0.01, asked
    assert consumer.held_for_keyframe > 20
    await receiver.stop()
