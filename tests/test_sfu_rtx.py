"""Retransmission to a real subscriber: RTX on the wire, holes filled, RTT and loss measured.

Real aiortc peers over loopback: a publisher encoding a test pattern, the SFU's
transports, and a subscriber that decodes. The subscriber's side of the link
loses every 8th video packet (a wrapper in front of its RTP handling drops the
first copy); its own NACKs must bring each one back as RTX, which aiortc's
receiver unwraps, so every frame still decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from bench.media import PatternVideoTrack
from sfu.ice import rtc_configuration
from sfu.retransmit import OVER_BUDGET, WITHIN_RTT, RetransmitSettings
from sfu.transport import PublisherTransport, SubscriberTransport
from tests.sfu_support import SubscribingClient, transport_options

# 90 kHz / 30 fps: the publisher's timestamp step per frame (its pts is rounded: ±2).
FRAME_TICKS = 3000


@pytest.fixture(autouse=True)
def _rtx_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # RTX is off by default (sfu/consumer.py, RTX_ENABLED); these tests are about it.
    monkeypatch.setattr("sfu.consumer.RTX_ENABLED", True)


async def publishing_client(transport: PublisherTransport) -> tuple[RTCPeerConnection, Any]:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(PatternVideoTrack((200, 40, 40)), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer, producers = await transport.handle_offer(pc.localDescription.sdp, {"0": {}})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, producers[0]


class LossyLink:
    """In front of the subscriber's RTP handling: drops the first copy of every 8th
    media packet while `dropping`, and counts what arrives as RTX."""

    def __init__(self, dtls: Any, media_ssrc: int, rtx_ssrc: int) -> None:
        self.media_ssrc, self.rtx_ssrc = media_ssrc, rtx_ssrc
        self.dropping = False
        self.dropped: set[int] = set()
        self.rtx_original_seqs: list[int] = []
        self.last_media_seq: int | None = None
        self._deliver = dtls._handle_rtp_data  # aiortc's own (test-side access)
        dtls._handle_rtp_data = self._arrive

    async def _arrive(self, data: bytes, arrival_time_ms: int) -> None:
        ssrc = int.from_bytes(data[8:12], "big")
        seq = int.from_bytes(data[2:4], "big")
        if ssrc == self.rtx_ssrc:
            # After the header and its extensions (abs-send-time): RFC 4588's OSN.
            payload = RtpPacket.parse(data).payload
            self.rtx_original_seqs.append(int.from_bytes(payload[:2], "big"))
        elif ssrc == self.media_ssrc:
            self.last_media_seq = seq
            if self.dropping and seq % 8 == 0 and seq not in self.dropped:
                self.dropped.add(seq)
                return
        await self._deliver(data, arrival_time_ms)


async def test_lost_packets_come_back_as_rtx_and_every_frame_decodes() -> None:
    options = transport_options()
    publisher = PublisherTransport(options)
    pub_pc, producer = await publishing_client(publisher)
    client = SubscribingClient()
    subscriber = SubscriberTransport(options, client.send_offer)
    consumer = subscriber.consume(producer)
    reader: asyncio.Task[None] | None = None
    try:
        await client.answer(subscriber)
        transceiver = client.pc.getTransceivers()[0]
        link = LossyLink(transceiver.receiver.transport, consumer.ssrc, consumer.sender.rtx_ssrc)
        track = transceiver.receiver.track
        pts: list[int] = []

        async def read() -> None:
            while True:
                frame = await track.recv()
                pts.append(frame.pts)

        reader = asyncio.ensure_future(read())
        for _ in range(100):
            if len(pts) >= 10:
                break
            await asyncio.sleep(0.1)
        assert len(pts) >= 10, "no video decoded before the loss started"
        link.dropping = True
        await asyncio.sleep(4.0)
        link.dropping = False
        await asyncio.sleep(1.5)  # the last holes filled; a receiver report or two more

        # Every 8th packet was lost on the link, and each came back once, as RTX.
        assert len(link.dropped) >= 10
        assert set(link.rtx_original_seqs) >= link.dropped
        report = consumer.link
        assert report.retransmitted == len(link.rtx_original_seqs)
        assert report.retransmitted <= len(link.dropped) + 2
        assert set(report.retransmissions_refused) <= {WITHIN_RTT}
        # aiortc's receiver unwrapped them into the stream: no frame went missing
        # (its jitter buffer waits at a hole, then throws whole frames away).
        steps = [b - a for a, b in itertools.pairwise(pts)]
        assert all(abs(step - FRAME_TICKS) <= 5 for step in steps), sorted(set(steps))
        assert len(pts) >= 10 + 4.0 * 30 * 0.8
        # The subscriber's receiver reports: the loss it saw, and the round trip.
        assert report.reports_received >= 2 and report.packets_lost >= 1
        assert report.rtt is not None and 0 <= report.rtt < 0.25
        assert report.nacks_received >= 1
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await subscriber.close()
        await publisher.close()
        await pub_pc.close()
        await client.pc.close()


async def test_a_nack_storm_gets_no_more_than_the_retransmission_budget() -> None:
    # Issue 16: a congested browser NACKed the same packets many times a second and
    # got each of them again every time. Here the subscriber asks for its last 60
    # packets every 10 ms for 3 s (at 1 RTT of a few ms on loopback).
    options = transport_options()
    publisher = PublisherTransport(options)
    pub_pc, producer = await publishing_client(publisher)
    client = SubscribingClient()
    subscriber = SubscriberTransport(options, client.send_offer)
    consumer = subscriber.consume(producer)
    try:
        await client.answer(subscriber)
        receiver = client.pc.getTransceivers()[0].receiver
        link = LossyLink(receiver.transport, consumer.ssrc, consumer.sender.rtx_ssrc)
        for _ in range(100):
            if consumer.packets_sent >= 60:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a measured delivery rate
        before = consumer.link
        nacks = 0
        start = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - start < 3.0:
            assert link.last_media_seq is not None
            lost = sorted((link.last_media_seq - i) % 65536 for i in range(60))
            await receiver._send_rtcp_nack(consumer.ssrc, lost)  # aiortc's own (test side)
            nacks += 1
            await asyncio.sleep(0.01)
        elapsed = asyncio.get_running_loop().time() - start
        await asyncio.sleep(0.2)
        after = consumer.link
        asked = (after.nacked_packets - before.nacked_packets) / elapsed
        resent = (after.retransmitted_bytes - before.retransmitted_bytes) / elapsed
        media = (after.bytes_sent - before.bytes_sent) / elapsed
        settings = RetransmitSettings()
        # What the budget allows: 25 % of the delivery rate, at least 64 kbit/s, plus
        # the bucket's half second spread over the run (and RTP headers on media).
        allowed = max(settings.budget_share * media * 1.1, settings.min_budget_bps / 8) * 1.2
        # The storm: hundreds of packets asked a second (the stream has ~30-60).
        assert asked > 600 and nacks > 50, (asked, nacks)
        assert 0 < resent <= allowed, (resent, media, asked)
        refused = after.retransmissions_refused
        assert refused.get(OVER_BUDGET, 0) > 0 and refused.get(WITHIN_RTT, 0) > 0
    finally:
        await subscriber.close()
        await publisher.close()
        await pub_pc.close()
        await client.pc.close()
