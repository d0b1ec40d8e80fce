"""sfu/consumer.py: SSRC, payload type and numbering rewrite, readiness, source switches.

Real receivers, senders, producers and consumers; only the wire is a recorder.
"""

from __future__ import annotations

import asyncio

from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters

from tests.sfu_support import (
    VP8_IN,
    VP8_OUT,
    WireRecorder,
    make_consumer,
    make_producer,
    publish,
    rtp,
)

H264_IN = RTCRtpCodecParameters(
    mimeType="video/H264",
    clockRate=90000,
    payloadType=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
)


def h264(payload_type: int, profile: str = "42e01f", mode: str = "1") -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90000,
        payloadType=payload_type,
        parameters={"packetization-mode": mode, "profile-level-id": profile},
    )


VP8_SUB = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=120)


async def test_each_codec_goes_out_under_the_subscribers_payload_type() -> None:
    producer, receiver = await make_producer(WireRecorder(), codecs=[VP8_IN, H264_IN])
    wire = WireRecorder()
    consumer = await make_consumer(wire, codecs=[h264(100, profile="42E034"), VP8_SUB])
    consumer.attach(producer)
    await publish(
        receiver,
        rtp(1, 0, b"\x10\x00vp8", payload_type=96),
        rtp(2, 3000, b"h264", payload_type=102, marker=1),
    )
    sent = wire.rtp()
    assert [(p.payload_type, p.payload) for p in sent] == [(120, b"\x10\x00vp8"), (100, b"h264")]
    assert [p.marker for p in sent] == [0, 1]
    assert {p.ssrc for p in sent} == {consumer.ssrc}
    await receiver.stop()


async def test_a_codec_the_subscriber_cannot_take_is_not_sent() -> None:
    producer, receiver = await make_producer(WireRecorder(), codecs=[H264_IN])
    other_profile, other_mode = WireRecorder(), WireRecorder()
    (await make_consumer(other_profile, codecs=[h264(100, profile="640c1f")])).attach(producer)
    (await make_consumer(other_mode, codecs=[h264(100, mode="0")])).attach(producer)
    await publish(receiver, rtp(1, 0, b"h264", payload_type=102))
    assert other_profile.rtp() == [] and other_mode.rtp() == []
    await receiver.stop()


async def test_switching_producers_keeps_one_continuous_stream() -> None:
    first, first_receiver = await make_producer(WireRecorder(), producer_id="pr_a")
    second, second_receiver = await make_producer(WireRecorder(), producer_id="pr_b")
    wire = WireRecorder()
    consumer = await make_consumer(wire)
    consumer.attach(first)
    await publish(first_receiver, rtp(100, 1000), rtp(101, 4000))
    consumer.attach(second)
    assert first.consumers == [] and second.consumers == [consumer]
    await publish(first_receiver, rtp(102, 7000))  # the old source: no longer sent
    await publish(second_receiver, rtp(40000, 777_777, ssrc=9999), rtp(40001, 780_777, ssrc=9999))
    sent = wire.rtp()
    assert len(sent) == 4
    seqs = [p.sequence_number for p in sent]
    assert seqs == [(seqs[0] + i) % 65536 for i in range(4)]
    assert {p.ssrc for p in sent} == {consumer.ssrc}
    # Timestamps go forward across the switch, then follow the new source's spacing.
    assert 0 < (sent[2].timestamp - sent[1].timestamp) % 2**32 < 90000
    assert (sent[3].timestamp - sent[2].timestamp) % 2**32 == 3000
    await first_receiver.stop()
    await second_receiver.stop()


async def test_attaching_the_same_producer_again_changes_nothing() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    await publish(receiver, rtp(10, 0))
    consumer.attach(producer)
    await publish(receiver, rtp(11, 3000))
    assert producer.consumers == [consumer]
    first, second = wire.rtp()
    assert second.sequence_number == (first.sequence_number + 1) % 65536
    assert (second.timestamp - first.timestamp) % 2**32 == 3000
    await receiver.stop()


async def test_nothing_is_sent_before_ready_and_ready_asks_for_a_keyframe() -> None:
    pub_wire, wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    await publish(receiver, rtp(1, 0))
    consumer = await make_consumer(wire)
    consumer.attach(producer, ready=False)
    await publish(receiver, rtp(2, 3000))
    await asyncio.sleep(0.01)
    assert wire.rtp() == [] and pub_wire.plis() == []
    consumer.mark_ready()
    await asyncio.sleep(0.01)
    assert len(pub_wire.plis()) == 1
    await publish(receiver, rtp(3, 6000))
    assert [p.payload for p in wire.rtp()] == [b"\x10\x00frame"]
    await receiver.stop()


async def test_nothing_is_sent_before_negotiation_then_a_keyframe_is_asked() -> None:
    pub_wire, wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    await publish(receiver, rtp(1, 0))
    consumer = await make_consumer(wire, start=False)
    consumer.attach(producer)
    await publish(receiver, rtp(2, 3000))
    await asyncio.sleep(0.01)
    assert wire.rtp() == [] and pub_wire.plis() == []
    # The subscriber answered: aiortc starts the sender with the negotiated codecs.
    await consumer.sender.send(RTCRtpSendParameters(codecs=[VP8_OUT], muxId="0"))
    await asyncio.sleep(0.01)
    assert len(pub_wire.plis()) == 1
    await publish(receiver, rtp(3, 6000))
    assert len(wire.rtp()) == 1
    await receiver.stop()


async def test_counts_and_sender_report_without_a_publisher_report() -> None:
    producer, receiver = await make_producer(WireRecorder())
    consumer = await make_consumer(WireRecorder())
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, b"\x10\x00abc"), rtp(2, 3000, b"\x10\x00defg"))
    assert consumer.packets_sent == 2
    assert consumer.bytes_sent == len(b"\x10\x00abc") + len(b"\x10\x00defg")
    assert consumer.fast_sent == 0  # not a real DTLS transport: aiortc's own path
    report = consumer.sender_report()
    assert report is not None and report.ssrc == consumer.ssrc
    assert report.sender_info.packet_count == 2
    assert report.sender_info.octet_count == consumer.bytes_sent
    last = consumer.rewriter.last_out_ts
    assert 0 <= (report.sender_info.rtp_timestamp - last) % 2**32 < 9000
    await receiver.stop()


async def test_close_detaches_and_leaves_the_sender_without_a_source() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    consumer.close()
    assert consumer.producer is None and producer.consumers == []
    assert consumer.sender.source is None
    assert consumer.sender_report() is None
    await publish(receiver, rtp(1, 0))
    assert wire.rtp() == []
    await receiver.stop()


async def test_a_subscriber_cannot_set_the_publishers_keyframe_rate() -> None:
    # A client sending PLI every 0.33 s once made the publisher send a keyframe
    # every 0.33 s for everybody (issue 15).
    from sfu.consumer import SUBSCRIBER_KEYFRAME_INTERVAL
    from sfu.producer import KEYFRAME_INTERVAL

    pub_wire, wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0))
    await asyncio.sleep(KEYFRAME_INTERVAL + 0.1)  # past the attach's own request
    before = len(pub_wire.plis())
    for _ in range(4):
        await consumer.on_keyframe_request()
        await asyncio.sleep(0.1)
    await asyncio.sleep(KEYFRAME_INTERVAL)
    assert len(pub_wire.plis()) == before + 1
    assert consumer.keyframe_requests_dropped == 3
    await asyncio.sleep(SUBSCRIBER_KEYFRAME_INTERVAL)
    await consumer.on_keyframe_request()
    await asyncio.sleep(KEYFRAME_INTERVAL)
    assert len(pub_wire.plis()) == before + 2
    await receiver.stop()


async def test_a_new_source_is_held_back_until_its_keyframe() -> None:
    # Delta frames of a new person in a re-used slot would show the previous
    # person's picture (issue 15): nothing of the new source goes out before
    # its keyframe, and the keyframe is asked for again if it is slow to come.
    from sfu.consumer import KEYFRAME_RETRY

    first_wire, second_wire, wire = WireRecorder(), WireRecorder(), WireRecorder()
    first, first_receiver = await make_producer(first_wire, producer_id="pr_first")
    second, second_receiver = await make_producer(second_wire, producer_id="pr_second")
    consumer = await make_consumer(wire)
    consumer.attach(first)
    await publish(first_receiver, rtp(1, 0, b"\x10\x01delta"))  # no keyframe yet
    assert wire.rtp() == []
    await publish(first_receiver, rtp(2, 3000, b"\x10\x00key"))
    await publish(first_receiver, rtp(3, 6000, b"\x10\x01delta"))
    assert [p.payload for p in wire.rtp()] == [b"\x10\x00key", b"\x10\x01delta"]

    consumer.attach(second)  # the slot changes hands
    plis = len(second_wire.plis())
    await publish(second_receiver, rtp(50, 90000, b"\x10\x01delta", ssrc=5151))
    await asyncio.sleep(KEYFRAME_RETRY + 0.1)
    await publish(second_receiver, rtp(51, 93000, b"\x10\x01delta", ssrc=5151))
    await asyncio.sleep(0.05)
    assert len(wire.rtp()) == 2  # still only the first person's packets
    assert consumer.held_for_keyframe == 3
    assert len(second_wire.plis()) > plis  # asked again while waiting
    await publish(second_receiver, rtp(52, 96000, b"\x10\x00key", ssrc=5151))
    sent = wire.rtp()
    assert [p.payload for p in sent[2:]] == [b"\x10\x00key"]
    # The subscriber's numbering runs on across the switch, without a gap.
    assert sent[2].sequence_number == (sent[1].sequence_number + 1) % 65536
    await first_receiver.stop()
    await second_receiver.stop()


async def test_keyframe_requests_of_a_stream_waiting_for_its_keyframe_are_not_the_links() -> None:
    # A video given back after a weak link held it (or a new source in the slot) waits
    # for a keyframe, and the subscriber's decoder asks for one meanwhile: the weak-link
    # judge counted those as loss and stopped the climb back up (rooms/link_quality.py).
    wire, pub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, b"\x10\x01delta"))  # waiting for a keyframe
    await consumer.on_keyframe_request()
    consumer.pause()
    await consumer.on_keyframe_request()  # held back: its decoder stalls and asks
    consumer.resume()
    await publish(receiver, rtp(2, 3000, b"\x10\x00key"))
    await publish(receiver, rtp(3, 6000, b"\x10\x01delta"))
    assert consumer.link.plis_received == 2 and consumer.link_counters.plis_received == 0
    await consumer.on_keyframe_request()  # the stream runs: this one is the link's
    assert consumer.link.plis_received == 3 and consumer.link_counters.plis_received == 1
    await receiver.stop()
