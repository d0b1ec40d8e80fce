"""rooms/calls/downlink.py: a subscriber's sample from real consumers and real RTCP.

Real producer, consumer and sender (the wire is a recorder, tests/sfu_support.py);
the subscriber's receiver reports and NACKs go in through the sender's own RTCP
handler, as aiortc delivers them, and are read back from `Consumer.link`.
"""

from __future__ import annotations

from typing import Any

from aiortc.rtp import RTCP_RTPFB_NACK, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket

from rooms.calls.downlink import DownlinkSampler
from sfu.consumer import Consumer
from tests.sfu_support import WireRecorder, make_consumer, make_producer, publish, rtp

KEY = b"\x10\x00key"
DELTA = b"\x10\x01delta"


class OneStream:
    """What DownlinkSampler reads of a subscriber connection: its consumers."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumers = [consumer]


async def report(consumer: Consumer, lost: int, lsr: int = 0) -> None:
    """A receiver report covering everything sent so far, `lost` of it lost in all
    (`lsr`: the sender report it echoes, at once)."""
    highest = consumer.rewriter.last_out_seq
    block = RtcpReceiverInfo(
        ssrc=consumer.ssrc,
        fraction_lost=0,
        packets_lost=lost,
        highest_sequence=highest,
        jitter=0,
        lsr=lsr,
        dlsr=0,
    )
    await consumer.sender._handle_rtcp_packet(RtcpRrPacket(ssrc=7, reports=[block]))


def out_seq(consumer: Consumer, seq: int) -> int:
    """The subscriber's number for the publisher's packet `seq`."""
    return (seq + consumer.rewriter.seq_offset) % 65536


async def nack(consumer: Consumer, lost: list[int]) -> None:
    packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=7, media_ssrc=consumer.ssrc, lost=lost)
    await consumer.sender._handle_rtcp_packet(packet)


async def stream() -> tuple[Consumer, Any, OneStream]:
    producer, receiver = await make_producer(WireRecorder())
    consumer = await make_consumer(WireRecorder())
    consumer.attach(producer)
    return consumer, receiver, OneStream(consumer)


async def test_loss_on_the_link_counts_and_so_do_nacks_for_packets_sent() -> None:
    consumer, receiver, subscriber = await stream()
    sampler = DownlinkSampler()
    await publish(receiver, rtp(1, 0, KEY), *(rtp(seq, seq * 3000, DELTA) for seq in range(2, 101)))
    await report(consumer, lost=0)
    assert sampler.sample(subscriber, 0.0) is None  # the first one only sets the baseline
    await publish(receiver, *(rtp(seq, seq * 3000, DELTA) for seq in range(101, 201)))
    await report(consumer, lost=15)  # 15 of these 100 did not arrive
    await nack(consumer, [out_seq(consumer, seq) for seq in range(151, 161)])
    sample = sampler.sample(subscriber, 1.0)
    assert sample is not None
    assert (sample.expected, sample.lost) == (100, 15)
    assert (sample.video_sent, sample.nacked, sample.video_streams) == (100, 10, 1)
    assert sample.seconds == 1.0
    await receiver.stop()


async def test_what_never_reached_the_server_is_not_the_subscribers_loss() -> None:
    consumer, receiver, subscriber = await stream()
    sampler = DownlinkSampler()
    await publish(receiver, rtp(1, 0, KEY), *(rtp(seq, seq * 3000, DELTA) for seq in range(2, 101)))
    await report(consumer, lost=0)
    sampler.sample(subscriber, 0.0)
    # The publisher's link lost every tenth packet: gaps in what the server forwards.
    arrived = [seq for seq in range(101, 201) if seq % 10]
    await publish(receiver, *(rtp(seq, seq * 3000, DELTA) for seq in arrived))
    await report(consumer, lost=10)  # the subscriber counts the gaps as lost
    # ... and asks for them: the server never had them, so they do not count.
    await nack(consumer, [out_seq(consumer, seq) for seq in range(110, 201, 10)])
    sample = sampler.sample(subscriber, 1.0)
    assert sample is not None
    # 99 numbers covered, 90 sent: the 9 gaps inside are upstream (the 10th is the
    # last, not yet covered); the one lost beyond them is rounding.
    assert sample.expected == 99 and sample.lost <= 1
    assert (sample.video_sent, sample.nacked) == (90, 0)
    await receiver.stop()


async def test_a_paused_stream_counts_for_nothing() -> None:
    consumer, receiver, subscriber = await stream()
    sampler = DownlinkSampler()
    await publish(receiver, rtp(1, 0, KEY), *(rtp(seq, seq * 3000, DELTA) for seq in range(2, 51)))
    await report(consumer, lost=0)
    sampler.sample(subscriber, 0.0)
    consumer.pause()
    await publish(receiver, *(rtp(seq, seq * 3000, DELTA) for seq in range(51, 101)))
    await report(consumer, lost=3)
    sample = sampler.sample(subscriber, 1.0)
    assert sample is not None
    assert (sample.expected, sample.lost, sample.video_sent, sample.video_streams) == (0, 0, 0, 0)
    await receiver.stop()


async def test_the_round_trip_of_a_report_in_the_interval_and_none_without_one() -> None:
    consumer, receiver, subscriber = await stream()
    sampler = DownlinkSampler()
    await publish(receiver, rtp(1, 0, KEY), *(rtp(seq, seq * 3000, DELTA) for seq in range(2, 51)))
    sampler.sample(subscriber, 0.0)
    sender_report = consumer.sender_report()
    assert sender_report is not None
    await report(consumer, lost=0, lsr=(sender_report.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF)
    sample = sampler.sample(subscriber, 1.0)
    assert sample is not None and sample.rtt is not None and 0 <= sample.rtt < 0.5
    # The last round trip measured, not smoothed, for the queue's judge (one stream:
    # the median and the longest are it).
    assert sample.rtt_median == sample.rtt_peak == consumer.link_counters.rtt_sample
    assert sample.rtt_median is not None and 0 <= sample.rtt_median < 0.5
    # No report since: the round trip measured then is not this second's.
    assert consumer.link.rtt is not None
    later = sampler.sample(subscriber, 2.0)
    assert later is not None and later.rtt is None and later.rtt_median is None
    await receiver.stop()


async def report_at(consumer: Consumer, highest: int, lost: int) -> None:
    block = RtcpReceiverInfo(ssrc=consumer.ssrc, fraction_lost=0, packets_lost=lost,
                             highest_sequence=highest, jitter=0, lsr=0, dlsr=0)  # fmt: skip
    await consumer.sender._handle_rtcp_packet(RtcpRrPacket(ssrc=7, reports=[block]))


async def test_loss_from_before_a_pause_seen_after_it_is_not_the_links_now() -> None:
    """The link dropped the last packets sent before the stream was held back (the cut
    came because it was full); the receiver sees that gap only when the stream is given
    back, and reports it then: not loss of the link as it is now (it undid climbs on a
    link lifted to 20 Mbit/s)."""
    consumer, receiver, subscriber = await stream()
    sampler = DownlinkSampler()
    await publish(receiver, rtp(1, 0, KEY), *(rtp(seq, seq * 3000, DELTA) for seq in range(2, 51)))
    last = consumer.rewriter.last_out_seq
    await report_at(consumer, last - 4, lost=0)  # the last 4 never arrived
    sampler.sample(subscriber, 0.0)
    consumer.pause()
    await report_at(consumer, last - 4, lost=0)
    assert sampler.sample(subscriber, 1.0) is not None
    consumer.resume()
    await publish(
        receiver, *(rtp(seq, seq * 3000, KEY if seq == 60 else DELTA) for seq in range(60, 81))
    )
    await report_at(consumer, consumer.rewriter.last_out_seq, lost=4)  # the gap, seen now
    sample = sampler.sample(subscriber, 2.0)
    assert sample is not None and sample.lost == 0
    # From there on, loss counts as before.
    await publish(receiver, *(rtp(seq, seq * 3000, DELTA) for seq in range(81, 101)))
    await report_at(consumer, consumer.rewriter.last_out_seq, lost=7)
    sample = sampler.sample(subscriber, 3.0)
    assert sample is not None and (sample.expected, sample.lost) == (20, 3)
    await receiver.stop()
