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
from collections.abc import AsyncIterator
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from bench.media import PatternVideoTrack
from sfu.ice import rtc_configuration
from sfu.retransmit import OVER_BUDGET, WITHIN_RTT, RetransmitSettings
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport
from tests.sfu_support import SubscribingClient, transport_options

# 90 kHz / 30 fps: the publisher's timestamp step per frame (its pts is rounded: ±2).
FRAME_TICKS = 3000


@contextlib.asynccontextmanager
async def one_video_subscribed() -> AsyncIterator[
    tuple[SubscribingClient, SubscriberTransport, Any]
]:
    """A publisher's test pattern consumed by one subscriber connection (not answered
    yet): its client, its transport and the consumer; everything closed after."""
    options = transport_options()
    publisher = PublisherTransport(options)
    pub_pc, producer = await publishing_client(publisher)
    client = SubscribingClient()
    subscriber = SubscriberTransport(options, client.send_offer)
    consumer = subscriber.consume(producer)
    try:
        yield client, subscriber, consumer
    finally:
        await subscriber.close()
        await publisher.close()
        await pub_pc.close()
        await client.pc.close()


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


class LossyVideo:
    """One forwarded video as its subscriber sees it: a LossyLink in front of it (they
    chain, one per stream on the bundled transport) and the pts of what it decodes."""

    def __init__(self, transceiver: Any, consumer: Any) -> None:
        self.consumer = consumer
        self.link = LossyLink(
            transceiver.receiver.transport, consumer.ssrc, consumer.sender.rtx_ssrc
        )
        self.track = transceiver.receiver.track
        self.pts: list[int] = []

    async def read(self) -> None:
        while True:
            frame = await self.track.recv()
            self.pts.append(frame.pts)

    def check(self) -> None:
        """Every 8th packet was lost on the link, each came back once as RTX, and
        aiortc's receiver unwrapped them into the stream: no frame went missing (its
        jitter buffer waits at a hole, then throws whole frames away)."""
        link, report = self.link, self.consumer.link
        assert len(link.dropped) >= 10
        assert set(link.rtx_original_seqs) >= link.dropped
        assert report.retransmitted == len(link.rtx_original_seqs)
        assert report.retransmitted <= len(link.dropped) + 2
        assert set(report.retransmissions_refused) <= {WITHIN_RTT}
        steps = [b - a for a, b in itertools.pairwise(self.pts)]
        assert all(abs(step - FRAME_TICKS) <= 5 for step in steps), sorted(set(steps))
        assert len(self.pts) >= 10 + 4.0 * 30 * 0.8


async def _decode_through_loss(videos: int) -> list[LossyVideo]:
    """`videos` publishers' cameras to one subscriber connection (one m-section each),
    4 s of losing every 8th packet of each, then 1.5 s for the last holes to fill."""
    options = transport_options()
    publishers = [PublisherTransport(options) for _ in range(videos)]
    published = [await publishing_client(publisher) for publisher in publishers]
    client = SubscribingClient()
    subscriber = SubscriberTransport(options, client.send_offer)
    consumers = [subscriber.consume(producer) for _, producer in published]
    readers: list[asyncio.Task[None]] = []
    try:
        await client.answer(subscriber)
        seen = [
            LossyVideo(t, c) for t, c in zip(client.pc.getTransceivers(), consumers, strict=True)
        ]
        readers = [asyncio.ensure_future(video.read()) for video in seen]
        for _ in range(100):
            if all(len(video.pts) >= 10 for video in seen):
                break
            await asyncio.sleep(0.1)
        assert all(len(video.pts) >= 10 for video in seen), "no video decoded before the loss"
        for video in seen:
            video.link.dropping = True
        await asyncio.sleep(4.0)
        for video in seen:
            video.link.dropping = False
        await asyncio.sleep(1.5)  # the last holes filled; a receiver report or two more
        return seen
    finally:
        for reader in readers:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await subscriber.close()
        for publisher in publishers:
            await publisher.close()
        for pc, _ in published:
            await pc.close()
        await client.pc.close()


async def test_lost_packets_come_back_as_rtx_and_every_frame_decodes() -> None:
    (video,) = await _decode_through_loss(1)
    video.check()
    # The subscriber's receiver reports: the loss it saw, and the round trip.
    report = video.consumer.link
    assert report.reports_received >= 2 and report.packets_lost >= 1
    assert report.rtt is not None and 0 <= report.rtt < 0.25
    assert report.nacks_received >= 1


async def test_rtx_reaches_each_of_several_videos_of_one_subscriber() -> None:
    # The weak-link bench's aiortc subscriber of four videos stopped decoding with RTX:
    # aiortc's receiving side routes an RTX packet by its payload type alone (its
    # RtpRouter registers only media SSRCs), and dropped every one while several
    # m-sections shared that payload type.
    seen = await _decode_through_loss(3)
    assert len({video.consumer.sender.rtx_ssrc for video in seen}) == 3
    # Each m-section's RTX has a payload type of its own (sfu/rtx_sdp.py).
    rtx_types = [set(video.consumer.rtx.payload_types.values()) for video in seen]
    assert all(rtx_types) and len(set.union(*rtx_types)) == sum(map(len, rtx_types)), rtx_types
    for video in seen:
        video.check()


async def test_a_nack_storm_gets_no_more_than_the_retransmission_budget() -> None:
    # Issue 16: a congested browser NACKed the same packets many times a second and
    # got each of them again every time. Here the subscriber asks for its last 60
    # packets every 10 ms for 3 s (at 1 RTT of a few ms on loopback).
    async with one_video_subscribed() as (client, subscriber, consumer):
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


async def test_rtx_from_a_publisher_of_two_videos_fills_the_holes_of_both() -> None:
    # The same aiortc router is ours on the publishing side: a browser sending its
    # camera and its screen (two video m-sections, one RTX payload type) had every
    # retransmission to the server dropped.
    options = transport_options()
    publisher = PublisherTransport(options)
    pc = RTCPeerConnection(rtc_configuration([]))
    for rgb in ((200, 40, 40), (40, 200, 40)):
        pc.addTransceiver(PatternVideoTrack(rgb), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer, producers = await publisher.handle_offer(pc.localDescription.sdp, {})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        dtls = publisher.pc.getTransceivers()[0].receiver.transport
        senders = [t.sender for t in pc.getTransceivers()]
        links = [LossyLink(dtls, s._ssrc, s._rtx_ssrc) for s in senders]  # aiortc's (test side)
        received: list[set[int]] = [set(), set()]
        for producer, seqs in zip(producers, received, strict=True):
            producer.add_tap(lambda _producer, entry, seqs=seqs: seqs.add(entry.seq))
        for _ in range(100):
            if all(len(seqs) >= 30 for seqs in received):
                break
            await asyncio.sleep(0.1)
        for link in links:
            link.dropping = True
        await asyncio.sleep(4.0)
        for link in links:
            link.dropping = False
        await asyncio.sleep(1.5)
        for link, seqs in zip(links, received, strict=True):
            assert len(link.dropped) >= 10
            assert set(link.rtx_original_seqs) >= link.dropped
            assert link.dropped <= seqs, sorted(link.dropped - seqs)
    finally:
        await publisher.close()
        await pc.close()
