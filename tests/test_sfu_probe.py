"""sfu/probe.py over a real link: a probe's padding goes out on the RTX stream at its
rate, reaches a real aiortc subscriber and is dropped there (the video decodes on, no
NACK for it), and the sender report behind it comes back echoed with its round trip,
apart from the link's usual one (sfu/link.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiortc.rtp import RtcpReceiverInfo, RtpPacket

from sfu.link import PROBE_ANSWER_WITHIN, LinkStats
from tests.test_sfu_rtx import one_video_subscribed


class PaddingArrivals:
    """In front of the subscriber's RTP handling: counts padding-only packets of `ssrc`."""

    def __init__(self, dtls: Any, ssrc: int) -> None:
        self.ssrc = ssrc
        self.packets = 0
        self.bytes = 0
        self._deliver = dtls._handle_rtp_data  # aiortc's own (test-side access)
        dtls._handle_rtp_data = self._arrive

    async def _arrive(self, data: bytes, arrival_time_ms: int) -> None:
        if int.from_bytes(data[8:12], "big") == self.ssrc:
            packet = RtpPacket.parse(data)
            if packet.payload == b"" and packet.padding_size:
                self.packets += 1
                self.bytes += len(data)
        await self._deliver(data, arrival_time_ms)


async def test_a_probe_is_padding_on_rtx_then_a_report_whose_echo_is_its_round_trip() -> None:
    frames: list[int] = []

    async def read(track: Any) -> None:
        while True:
            frames.append((await track.recv()).pts)

    reader: asyncio.Task[None] | None = None
    async with one_video_subscribed() as (client, subscriber, consumer):
        try:
            assert not subscriber.can_probe and subscriber.probe(10_000) is None  # none sent
            await client.answer(subscriber)
            transceiver = client.pc.getTransceivers()[0]
            arrivals = PaddingArrivals(transceiver.receiver.transport, consumer.sender.rtx_ssrc)
            reader = asyncio.ensure_future(read(transceiver.receiver.track))
            for _ in range(100):
                if len(frames) >= 10 and consumer.link.rtt is not None:
                    break
                await asyncio.sleep(0.1)
            assert subscriber.can_probe and len(frames) >= 10 and consumer.link.rtt is not None
            nacked = consumer.link.nacked_packets

            probe = subscriber.probe(12_000)
            assert probe is not None
            while probe.reported_at is None:
                await asyncio.sleep(0.005)
            # All of it (to within the smallest packet: a header and a byte), all arrived.
            assert 12_000 <= probe.bytes_sent < 12_000 + 21
            await asyncio.sleep(0.05)
            assert arrivals.bytes == probe.bytes_sent  # (as sent: after SRTP is taken off)
            # Until its report is echoed, no regular one takes its place.
            assert consumer.sender_report() is None
            deadline = time.monotonic() + PROBE_ANSWER_WITHIN + 1
            while not probe.done(time.monotonic()):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert probe.rtt is not None and 0 <= probe.rtt < 0.1
            assert consumer.link_stats.probe_rtt == probe.rtt
            assert consumer.sender_report() is not None  # answered: regular reports again
            # The subscriber dropped the padding: nothing NACKed, the video decodes on.
            decoded = len(frames)
            await asyncio.sleep(0.5)
            assert len(frames) >= decoded + 8
            assert consumer.link.nacked_packets == nacked
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


def report(lsr_of: int, dlsr: float) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=1,
        fraction_lost=0,
        packets_lost=0,
        highest_sequence=100,
        jitter=0,
        lsr=(lsr_of >> 16) & 0xFFFFFFFF,
        dlsr=int(dlsr * 65536),
    )


def test_a_probe_report_is_answered_apart_from_the_links_round_trip() -> None:
    stats = LinkStats(90000)
    usual, probing = 0x1234_5678_9ABC_0000, 0x1234_5679_0000_0000
    stats.sender_report_sent(usual, 10.0)
    stats.sender_report_sent(probing, 11.0, probe=True)
    assert stats.probe_pending(11.0) and stats.probe_pending(11.0 + PROBE_ANSWER_WITHIN - 0.01)
    assert not stats.probe_pending(11.0 + PROBE_ANSWER_WITHIN)
    stats.report_received(report(probing, 0.5), 11.56)  # 60 ms in the link's queue
    assert stats.probe_rtt is not None and abs(stats.probe_rtt - 0.06) < 1e-3
    assert stats.rtt is None and stats.rtt_sample is None  # not the link's usual
    assert not stats.probe_pending(11.6)
    # The next report echoes it again (no newer one reached the subscriber): no sample.
    stats.report_received(report(probing, 1.5), 12.56)
    assert stats.rtt is None and stats.rtt_sample is None
    stats.report_received(report(usual, 0.999), 11.0)
    assert stats.rtt_sample is not None and abs(stats.rtt_sample - 0.001) < 1e-3
    assert stats.probe_rtt is not None and abs(stats.probe_rtt - 0.06) < 1e-3
