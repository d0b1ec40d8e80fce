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
from sfu.probe import Probe, ProbeSettings
from tests.test_rooms_link_probes import Stream
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


async def test_a_step_leads_the_burst_at_its_rate_with_a_report_of_its_own() -> None:
    """Padding at the step's rate on top of the media, a report on half the streams
    behind it, then the burst and a report on the other half: two round trips, the
    queue the step built and the one the burst added (stand-in streams: the echoes are
    written as a subscriber's reports would carry them)."""
    first, second = Stream(), Stream()
    settings = ProbeSettings(step_seconds=0.2)
    probe = Probe([first, second], 8000, settings, step_bps=400e3)  # 10 kB over 0.2 s
    await asyncio.sleep(0.1)
    assert 3_000 < probe.bytes_sent < 7_500  # at its rate, not at once
    assert first.link_stats.probe_lsr is None and probe.reported_at is None
    while probe.reported_at is None:
        await asyncio.sleep(0.005)
    step_sent, burst_sent = first.link_stats.probe_sent_at, second.link_stats.probe_sent_at
    assert step_sent - probe.started_at >= 0.2 and step_sent <= burst_sent
    assert 18_000 <= probe.bytes_sent < 18_000 + 2 * settings.packet_size
    assert first.padding > 0 and second.padding > 0  # spread over every stream
    first.echo(0.004)
    assert probe.step_rtt is not None and abs(probe.step_rtt - 0.004) < 1e-3
    assert probe.rtt is None and not probe.done(burst_sent + 0.1)
    second.echo(0.030)
    assert probe.rtt is not None and abs(probe.rtt - 0.030) < 1e-3
    assert probe.done(burst_sent + 0.1)


async def test_with_one_stream_the_burst_waits_for_the_steps_echo() -> None:
    """A subscriber echoes only the last report it got: on one stream the burst's report
    would take the step's place. The burst goes once the step's report was echoed."""
    stream = Stream()
    probe = Probe([stream], 8000, ProbeSettings(step_seconds=0.05), step_bps=400e3)
    while stream.link_stats.probe_lsr is None:
        await asyncio.sleep(0.005)
    step_bytes = probe.bytes_sent
    await asyncio.sleep(0.1)
    assert probe.bytes_sent == step_bytes and probe.reported_at is None  # the burst waits
    stream.echo(0.004)
    while probe.reported_at is None:
        await asyncio.sleep(0.005)
    assert probe.bytes_sent >= step_bytes + 8000
    assert probe.step_rtt is not None and abs(probe.step_rtt - 0.004) < 1e-3
    assert probe.rtt is None and not probe.done(probe.reported_at)
    stream.echo(0.030)
    assert probe.rtt is not None and abs(probe.rtt - 0.030) < 1e-3
    assert probe.step_rtt is not None and abs(probe.step_rtt - 0.004) < 1e-3  # kept
    assert probe.done(probe.reported_at)


async def test_a_nack_under_the_step_stops_it_and_every_report_goes_out_at_once() -> None:
    """The media lost packets while the step's padding went out: its rate overflows the
    link's queue (a 450 kbit/s step froze both videos kept on a 1 Mbit/s link). The rest
    of the step and the burst are not sent; the reports measure the queue there is."""
    first, second = Stream(), Stream()
    probe = Probe([first, second], 8000, ProbeSettings(step_seconds=0.5), step_bps=400e3)
    await asyncio.sleep(0.1)
    assert probe.reported_at is None and not probe.aborted
    second.link_stats.nacked_packets += 2  # the subscriber NACKed two media packets
    while probe.reported_at is None:
        await asyncio.sleep(0.005)
    assert probe.aborted and probe.reported_at - probe.started_at < 0.3
    assert probe.bytes_sent < 25_000 * 0.6  # nor the rest of the step, nor the burst
    assert first.link_stats.probe_lsr is not None and second.link_stats.probe_lsr is not None
    sent = probe.bytes_sent
    await asyncio.sleep(0.05)
    assert probe.bytes_sent == sent
