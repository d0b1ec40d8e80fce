"""Forwarding path units: producer cache, consumer rewrite, NACK, PLI, sender reports.

aiortc's DTLS transport is replaced by a recorder of what would go on the
wire; everything else (receivers, senders, our hooks) is the real code.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

from sfu.aiortc_hooks import ForwardingSender
from sfu.consumer import Consumer
from sfu.producer import CACHE_SIZE, Producer
from tests.sfu_support import WireRecorder, make_consumer, make_producer, rtp


@pytest.fixture
async def path() -> Any:
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    consumer = await make_consumer(sub_wire)
    consumer.attach(producer)
    yield producer, receiver, consumer, pub_wire, sub_wire
    await receiver.stop()
    await consumer.sender.stop()


async def test_receiver_starts_no_decoder_and_forwards_payload_unchanged(path: Any) -> None:
    _producer, receiver, consumer, _, sub_wire = path
    assert receiver._RTCRtpReceiver__decoder_thread is None
    for i in range(3):
        await receiver._handle_rtp_packet(
            rtp(1000 + i, 9000 + i * 3000, b"\x10\x00" + bytes([i]) * 50), arrival_time_ms=i
        )
    sent = sub_wire.rtp()
    assert [p.payload for p in sent] == [b"\x10\x00" + bytes([i]) * 50 for i in range(3)]
    assert {p.ssrc for p in sent} == {consumer.ssrc}
    assert {p.payload_type for p in sent} == {97}  # the subscriber's payload type
    seqs = [p.sequence_number for p in sent]
    assert seqs == [(seqs[0] + i) % 65536 for i in range(3)]
    assert [p.timestamp - sent[0].timestamp for p in sent] == [0, 3000, 6000]
    # The publisher's header extensions stay behind (they carry its own mid).
    assert sub_wire.sent[0][0] & 0x10 == 0


async def test_padding_only_packets_are_not_forwarded(path: Any) -> None:
    _, receiver, _, _, sub_wire = path
    await receiver._handle_rtp_packet(rtp(5, 0, b""), arrival_time_ms=0)
    assert sub_wire.rtp() == []


async def test_rtx_is_unwrapped_into_the_original_stream(path: Any) -> None:
    _, receiver, _, _, sub_wire = path
    receiver._RTCRtpReceiver__rtx_ssrc[5555] = 4242
    await receiver._handle_rtp_packet(rtp(10, 0), arrival_time_ms=0)
    retransmission = RtpPacket(payload_type=97, sequence_number=77, timestamp=3000, ssrc=5555)
    retransmission.payload = struct.pack("!H", 11) + b"\x10\x00late"
    await receiver._handle_rtp_packet(retransmission, arrival_time_ms=1)
    sent = sub_wire.rtp()
    assert [p.payload for p in sent] == [b"\x10\x00frame", b"\x10\x00late"]
    assert sent[1].sequence_number == (sent[0].sequence_number + 1) % 65536


async def test_subscriber_nack_is_answered_from_the_producer_cache(path: Any) -> None:
    _, receiver, consumer, _, sub_wire = path
    for i in range(20):
        # A keyframe first (a consumer forwards a source from its keyframe on), then
        # packets of distinct payloads.
        start = b"\x10\x00" if i == 0 else b"\x00"
        await receiver._handle_rtp_packet(
            rtp((65530 + i) % 65536, i * 3000, start + bytes([i]) * 10), arrival_time_ms=i
        )
    first = sub_wire.rtp()
    lost = [first[3].sequence_number, first[15].sequence_number]
    sub_wire.sent.clear()
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=consumer.ssrc)
    nack.lost = lost
    await consumer.sender._handle_rtcp_packet(nack)
    resent = sub_wire.rtp()
    assert [p.sequence_number for p in resent] == lost
    assert [bytes(p.payload) for p in resent] == [first[3].payload, first[15].payload]
    assert [p.timestamp for p in resent] == [first[3].timestamp, first[15].timestamp]
    assert consumer.link.retransmitted == 2


async def test_nack_for_packets_out_of_cache_sends_nothing(path: Any) -> None:
    _, receiver, consumer, _, sub_wire = path
    for i in range(CACHE_SIZE + 10):
        await receiver._handle_rtp_packet(rtp(i % 65536, i * 3000), arrival_time_ms=i)
    oldest = sub_wire.rtp()[0].sequence_number
    sub_wire.sent.clear()
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=consumer.ssrc)
    nack.lost = [oldest]
    await consumer.sender._handle_rtcp_packet(nack)
    assert sub_wire.sent == []


async def test_subscriber_pli_reaches_the_publisher(path: Any) -> None:
    producer, receiver, consumer, pub_wire, _ = path
    await receiver._handle_rtp_packet(rtp(1, 0), arrival_time_ms=0)
    pub_wire.sent.clear()
    producer._last_keyframe_request = 0.0
    await consumer.sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=consumer.ssrc)
    )
    plis = [p for p in pub_wire.rtcp() if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI]
    assert len(plis) == 1 and plis[0].media_ssrc == 4242
    # A burst of requests from many subscribers costs the publisher one keyframe.
    await consumer.sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=consumer.ssrc)
    )
    assert len([p for p in pub_wire.rtcp() if isinstance(p, RtcpPsfbPacket)]) == 1


async def test_new_consumer_asks_for_a_keyframe() -> None:
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    await receiver._handle_rtp_packet(rtp(1, 0), arrival_time_ms=0)
    consumer = await make_consumer(sub_wire)
    consumer.attach(producer)
    import asyncio

    await asyncio.sleep(0.01)
    assert any(isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI for p in pub_wire.rtcp())
    await receiver.stop()


async def test_sender_report_maps_the_publishers_clock(path: Any) -> None:
    _, receiver, consumer, _, _ = path
    assert consumer.sender_report() is None  # nothing sent yet
    await receiver._handle_rtp_packet(rtp(1, 90000), arrival_time_ms=0)
    ntp = 0xE000_0000_8000_0000
    await receiver._handle_rtcp_packet(
        RtcpSrPacket(
            ssrc=4242,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp, rtp_timestamp=90000, packet_count=1, octet_count=5
            ),
        )
    )
    report = consumer.sender_report()
    assert report is not None and report.ssrc == consumer.ssrc
    out_ts = consumer.rewriter.out_timestamp(90000)
    # Extrapolated by the (tiny) time since the publisher's report arrived.
    assert 0 <= (report.sender_info.rtp_timestamp - out_ts) % 2**32 < 90000 // 10
    assert 0 <= report.sender_info.ntp_timestamp - ntp < 2**32 // 10
    assert report.sender_info.packet_count == 1


async def test_paused_producer_forwards_nothing_and_resumes_continuously(path: Any) -> None:
    producer, receiver, _, _, sub_wire = path
    await receiver._handle_rtp_packet(rtp(1, 0), arrival_time_ms=0)
    producer.pause()
    await receiver._handle_rtp_packet(rtp(2, 3000), arrival_time_ms=1)
    assert len(sub_wire.rtp()) == 1
    await producer.resume()
    await receiver._handle_rtp_packet(rtp(50, 150000), arrival_time_ms=2)
    sent = sub_wire.rtp()
    assert len(sent) == 2
    assert sent[1].sequence_number == (sent[0].sequence_number + 1) % 65536


async def test_codec_without_a_match_on_the_subscriber_is_not_sent() -> None:
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    sender = ForwardingSender.adopt(RTCRtpSender("video", sub_wire))  # type: ignore[arg-type]
    consumer = Consumer("co", "video", sender)
    h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
    await sender.send(RTCRtpSendParameters(codecs=[h264], muxId="0"))
    consumer.attach(producer)
    await receiver._handle_rtp_packet(rtp(1, 0), arrival_time_ms=0)
    assert sub_wire.rtp() == []
    await receiver.stop()


async def test_taps_see_forwarded_packets_only_and_a_broken_tap_is_dropped(path: Any) -> None:
    producer, receiver, _, _, sub_wire = path
    seen: list[tuple[int, int, bytes]] = []

    class Recorder:
        def tap(self, tapped: Producer, packet: Any) -> None:
            assert tapped is producer
            seen.append((packet.seq, packet.marker, packet.payload))

    def broken(tapped: Producer, packet: Any) -> None:
        raise RuntimeError("a recorder bug")

    recorder = Recorder()
    producer.add_tap(recorder.tap)
    producer.add_tap(recorder.tap)  # once is enough
    producer.add_tap(broken)
    await receiver._handle_rtp_packet(rtp(1, 0, b"\x10\x00a"), arrival_time_ms=0)
    assert producer.taps == [recorder.tap]  # the broken one is gone, forwarding went on
    producer.pause()  # what subscribers do not get, a recording does not get either
    await receiver._handle_rtp_packet(rtp(2, 3000, b"\x10\x00b"), arrival_time_ms=1)
    await producer.resume()
    await receiver._handle_rtp_packet(rtp(3, 6000, b"\x10\x00c"), arrival_time_ms=2)
    producer.remove_tap(recorder.tap)  # a fresh bound method: removed all the same
    await receiver._handle_rtp_packet(rtp(4, 9000, b"\x10\x00d"), arrival_time_ms=3)
    assert seen == [(1, 0, b"\x10\x00a"), (3, 0, b"\x10\x00c")]
    assert [p.payload for p in sub_wire.rtp()] == [b"\x10\x00a", b"\x10\x00c", b"\x10\x00d"]
