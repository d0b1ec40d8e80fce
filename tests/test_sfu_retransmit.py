"""sfu/retransmit.py and what a consumer does with NACKs: once per RTT, an age limit,
a budget per subscriber, RTX when negotiated; RTT and loss from receiver reports.

The limiter is pure logic, driven with explicit times; the consumer tests use real
receivers, senders, producers and consumers, only the wire is a recorder.
"""

from __future__ import annotations

import asyncio
import struct

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket

from sfu.consumer import Consumer
from sfu.pacer import Pacer
from sfu.retransmit import (
    BEFORE_KEYFRAME,
    NOT_CACHED,
    OVER_BUDGET,
    TOO_OLD,
    WITHIN_RTT,
    RetransmitBudget,
    RetransmitLimiter,
    RetransmitSettings,
)
from sfu.rtp_header import RTP_HEADER
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport
from tests.sfu_support import (
    VP8_OUT,
    SubscribingClient,
    WireRecorder,
    make_consumer,
    make_producer,
    publish,
    publish_from_client,
    rtp,
    transport_options,
)

RTX_OUT = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}
)


def limiter(**settings: float) -> RetransmitLimiter:
    return RetransmitLimiter(RetransmitBudget(RetransmitSettings(**settings)))


def test_a_packet_is_resent_at_most_once_per_rtt() -> None:
    limits = limiter()
    assert limits.refusal(7, 1000, original_at=0.0, now=0.10, rtt=0.05, delivery_bps=1e6) is None
    assert limits.refusal(7, 1000, 0.0, now=0.14, rtt=0.05, delivery_bps=1e6) == WITHIN_RTT
    assert limits.refusal(8, 1000, 0.0, now=0.14, rtt=0.05, delivery_bps=1e6) is None  # another
    assert limits.refusal(7, 1000, 0.0, now=0.16, rtt=0.05, delivery_bps=1e6) is None
    # Unmeasured, the RTT is taken as 100 ms; a measured one is held within the bounds.
    assert limits.refusal(9, 1000, 0.0, now=0.2, rtt=None, delivery_bps=1e6) is None
    assert limits.refusal(9, 1000, 0.0, now=0.29, rtt=None, delivery_bps=1e6) == WITHIN_RTT
    assert limits.rtt(0.0001) == 0.02 and limits.rtt(3.0) == 0.5 and limits.rtt(0.2) == 0.2
    # The same slot 1024 sequence numbers on is another packet.
    assert limits.refusal(7 + 1024, 1000, 0.0, now=0.17, rtt=0.05, delivery_bps=1e6) is None


def test_a_packet_older_than_the_age_limit_is_not_resent() -> None:
    limits = limiter(max_age=1.0)
    assert limits.refusal(1, 1000, original_at=10.0, now=11.01, rtt=0.05, delivery_bps=1e6) == (
        TOO_OLD
    )
    assert limits.refusal(2, 1000, original_at=10.0, now=10.99, rtt=0.05, delivery_bps=1e6) is None


def test_the_budget_is_a_share_of_the_delivery_rate() -> None:
    # 25 % of 800 kbit/s = 25,000 bytes/s; the bucket holds half a second of it.
    budget = RetransmitBudget(RetransmitSettings(budget_share=0.25, burst_seconds=0.5))
    limits = RetransmitLimiter(budget)
    now, sent, refused = 0.0, 0, 0
    for seq in range(2000):  # a NACK storm: 1000-byte packets asked every 1 ms for 2 s
        now = seq * 0.001
        reason = limits.refusal(seq, 1000, now - 0.01, now, rtt=0.05, delivery_bps=800_000)
        if reason is None:
            sent += 1
        else:
            assert reason == OVER_BUDGET
            refused += 1
    # What went: the initial bucket (4 kB, before any rate was known) + 2 s at 25 kB/s.
    assert 50 <= sent <= 56
    assert refused == 2000 - sent


def test_the_budget_has_a_floor_for_a_subscriber_just_starting() -> None:
    budget = RetransmitBudget(RetransmitSettings(min_budget_bps=64_000))
    assert budget.take(1200, 0.0, delivery_bps=0.0)
    assert budget.take(1200, 0.0, delivery_bps=0.0)
    # 64 kbit/s = 8 kB/s: after the first 4 kB, about one 1200-byte packet per 150 ms.
    assert budget.take(1200, 0.0, delivery_bps=0.0)
    assert not budget.take(1200, 0.001, delivery_bps=0.0)
    assert budget.take(1200, 0.2, delivery_bps=0.0)


# --------------------------------------------------------------------------- consumer


def nack(consumer: Consumer, *seqs: int) -> RtcpRtpfbPacket:
    packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=consumer.ssrc)
    packet.lost = list(seqs)
    return packet


async def consumer_with_packets(
    codecs: list[RTCRtpCodecParameters], count: int = 10
) -> tuple[Consumer, WireRecorder, list[int], list[bytes]]:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire, codecs=codecs)
    consumer.attach(producer)
    payloads = [(b"\x10\x00" if i == 0 else b"\x00") + bytes([i]) * 20 for i in range(count)]
    await publish(receiver, *(rtp(100 + i, i * 3000, p) for i, p in enumerate(payloads)))
    seqs = [p.sequence_number for p in wire.rtp()]
    wire.sent.clear()
    return consumer, wire, seqs, payloads


async def test_repeated_nacks_within_an_rtt_get_one_retransmission() -> None:
    consumer, wire, seqs, payloads = await consumer_with_packets([VP8_OUT])
    for _ in range(5):  # a congested browser asks again and again
        await consumer.sender._handle_rtcp_packet(nack(consumer, seqs[3], seqs[4]))
    resent = wire.rtp()
    assert [p.sequence_number for p in resent] == [seqs[3], seqs[4]]
    assert [p.payload for p in resent] == [payloads[3], payloads[4]]
    link = consumer.link
    assert (link.nacks_received, link.nacked_packets, link.retransmitted) == (5, 10, 2)
    assert link.retransmitted_bytes == sum(12 + len(p) for p in payloads[3:5])
    assert link.retransmissions_refused == {WITHIN_RTT: 8}
    assert link.packets_sent == 10  # retransmissions are not counted as media


async def test_retransmissions_go_as_rtx_when_the_subscriber_negotiated_it() -> None:
    consumer, wire, seqs, payloads = await consumer_with_packets([VP8_OUT, RTX_OUT])
    await consumer.sender._handle_rtcp_packet(nack(consumer, seqs[2], seqs[6]))
    resent = wire.rtp()
    assert {p.ssrc for p in resent} == {consumer.sender.rtx_ssrc} != {consumer.ssrc}
    assert {p.payload_type for p in resent} == {98}
    assert resent[1].sequence_number == (resent[0].sequence_number + 1) % 65536  # its own count
    # RFC 4588: the original sequence number, then the original payload.
    assert [struct.unpack("!H", p.payload[:2])[0] for p in resent] == [seqs[2], seqs[6]]
    assert [p.payload[2:] for p in resent] == [payloads[2], payloads[6]]
    assert [p.timestamp for p in resent] == [
        consumer.rewriter.out_timestamp(t) for t in (2 * 3000, 6 * 3000)
    ]
    assert consumer.link.retransmitted == 2


def unsent(consumer: Consumer, seq: int) -> bytes:
    """The header of the packet numbered `seq` the pacer dropped (the first not sent)."""
    return RTP_HEADER.pack(0x80, 96, seq % 65536, 0, consumer.ssrc)


async def test_what_cannot_or_need_not_be_resent_is_counted_by_reason() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, b"\x10\x00key"), rtp(2, 3000, b"\x00delta"))
    seqs = [p.sequence_number for p in wire.rtp()]
    wire.sent.clear()
    await consumer.sender._handle_rtcp_packet(nack(consumer, (seqs[-1] + 50) % 65536))
    assert consumer.link.retransmissions_refused == {NOT_CACHED: 1}
    # The stream restarts from a keyframe (here: after the pacer dropped video): what
    # came before it is of no use to the subscriber's decoder, before or after it came.
    consumer.paced_video_dropped(3, unsent(consumer, seqs[-1] + 1))
    await consumer.sender._handle_rtcp_packet(nack(consumer, seqs[1]))
    await publish(receiver, rtp(3, 6000, b"\x10\x00key"), rtp(4, 9000, b"\x00delta"))
    after = [p.sequence_number for p in wire.rtp()]
    wire.sent.clear()
    await consumer.sender._handle_rtcp_packet(nack(consumer, seqs[1], after[0], after[1]))
    assert [p.sequence_number for p in wire.rtp()] == after
    # Before the keyframe came, seqs[1] was of the stream still (before its keyframe);
    # after it, of a segment that ended: the new one numbers on from the last sent.
    assert consumer.link.retransmissions_refused == {NOT_CACHED: 2, BEFORE_KEYFRAME: 1}
    assert consumer.link.paced_drops == 3
    await receiver.stop()


async def test_old_packets_are_not_resent() -> None:
    producer, receiver = await make_producer(WireRecorder())
    wire = WireRecorder()
    consumer = await make_consumer(wire)
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, b"\x10\x00key"), rtp(2, 3000, b"\x00late"))
    seq = wire.rtp()[1].sequence_number
    wire.sent.clear()
    await asyncio.sleep(RetransmitSettings().max_age + 0.05)
    await consumer.sender._handle_rtcp_packet(nack(consumer, seq))
    assert wire.rtp() == [] and consumer.link.retransmissions_refused == {TOO_OLD: 1}


async def test_subscribers_share_one_budget() -> None:
    # Two streams to one subscriber draw on one bucket: 4 kB before any rate is known.
    producer, receiver = await make_producer(WireRecorder())
    budget = RetransmitBudget()
    wires = [WireRecorder(), WireRecorder()]
    consumers = [await make_consumer(w, budget=budget) for w in wires]
    for consumer in consumers:
        consumer.attach(producer)
    payload = b"\x10\x00" + bytes(986)  # 1000 bytes on the wire with the header
    await publish(receiver, *(rtp(i, i * 3000, payload) for i in range(8)))
    for consumer, wire in zip(consumers, wires, strict=True):
        seqs = [p.sequence_number for p in wire.rtp()]
        await consumer.on_nack(seqs[:3])
    sent = [c.link.retransmitted for c in consumers]
    assert sent == [3, 1]
    assert consumers[1].link.retransmissions_refused == {OVER_BUDGET: 2}


async def test_rtt_and_loss_come_from_the_subscribers_receiver_reports() -> None:
    consumer, _, _, _ = await consumer_with_packets([VP8_OUT])
    assert consumer.link.rtt is None
    report = consumer.sender_report()
    assert report is not None
    lsr = (report.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
    await asyncio.sleep(0.05)  # the report travels, waits 20 ms at the subscriber, comes back
    block = RtcpReceiverInfo(
        ssrc=consumer.ssrc,
        fraction_lost=64,
        packets_lost=12,
        highest_sequence=0,
        jitter=900,
        lsr=lsr,
        dlsr=int(0.02 * 65536),
    )
    other = RtcpReceiverInfo(
        ssrc=consumer.ssrc ^ 1,
        fraction_lost=255,
        packets_lost=1,
        highest_sequence=0,
        jitter=0,
        lsr=0,
        dlsr=0,
    )
    await consumer.sender._handle_rtcp_packet(RtcpRrPacket(ssrc=1, reports=[other, block]))
    link = consumer.link
    assert link.rtt is not None and 0.025 <= link.rtt < 0.2
    assert (link.fraction_lost, link.packets_lost, link.jitter) == (0.25, 12, 0.01)
    assert link.reports_received == 1 and link.last_report_at is not None
    # A report that echoes no report of ours (LSR 0) updates loss but not the RTT.
    block.lsr, block.fraction_lost = 0, 0
    await consumer.sender._handle_rtcp_packet(RtcpRrPacket(ssrc=1, reports=[block]))
    assert consumer.link.rtt == link.rtt and consumer.link.fraction_lost == 0.0


async def test_a_transport_gives_its_consumers_one_pacer_and_budget() -> None:
    options = transport_options()
    publisher = PublisherTransport(options)
    pc, producers = await publish_from_client(publisher, ["audio", "video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(options, client.send_offer)
    consumers = [subscriber.consume(p) for p in producers]
    assert all(isinstance(c.pacer, Pacer) and c.pacer is subscriber.pacer for c in consumers)
    assert all(c._limiter.budget is subscriber.retransmit_budget for c in consumers)
    await subscriber.close()
    await publisher.close()
    await pc.close()
    await client.pc.close()
