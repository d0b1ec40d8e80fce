"""REMB from a real subscriber: real aiortc peers on loopback, the SFU's own transports.

A publisher client sends a test pattern; the SubscriberTransport forwards it to an
aiortc subscriber, whose receiver estimates its downlink from the abs-send-time
our consumer stamps, and sends REMB. The transport's estimator must get it and
report an estimate (and its pacer follow it). Without abs-send-time in the
subscriber's answer no REMB comes, so the first test fails if stamping breaks.
"""

from __future__ import annotations

import asyncio
import re
import time

from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.media import PatternVideoTrack
from sfu.bandwidth import ABS_SEND_TIME_URI
from sfu.ice import rtc_configuration
from sfu.producer import Producer
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport
from tests.sfu_support import SubscribingClient, transport_options

_AST_LINE = re.compile(r"^a=extmap:\d+ " + re.escape(ABS_SEND_TIME_URI) + r"\r?\n", re.M)


async def _publishing(transport: PublisherTransport) -> tuple[RTCPeerConnection, Producer]:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTrack(PatternVideoTrack((200, 40, 40)))
    await pc.setLocalDescription(await pc.createOffer())
    answer, (producer,) = await transport.handle_offer(pc.localDescription.sdp, {"0": {}})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, producer


class _Subscriber(SubscribingClient):
    def __init__(self, with_abs_send_time: bool) -> None:
        super().__init__()
        self.with_abs_send_time = with_abs_send_time

    async def answer(self, transport: SubscriberTransport) -> None:
        sdp, _ = await self.next_offer()
        assert _AST_LINE.search(sdp), "the subscriber offer has no abs-send-time"
        assert "goog-remb" in sdp
        if not self.with_abs_send_time:
            sdp = _AST_LINE.sub("", sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await transport.handle_answer(self.pc.localDescription.sdp)


async def _run(with_abs_send_time: bool, seconds: float) -> tuple[SubscriberTransport, int]:
    """Forward for up to `seconds` (until the first REMBs when expected); the
    subscriber transport (still open) and the video packets it sent."""
    publisher = PublisherTransport(transport_options())
    pub_pc, producer = await _publishing(publisher)
    client = _Subscriber(with_abs_send_time)
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    closers = [subscriber.close, publisher.close, client.pc.close, pub_pc.close]
    try:
        consumer = subscriber.consume(producer)
        await client.answer(subscriber)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if with_abs_send_time and subscriber.bandwidth.rembs_received >= 3:
                break
        estimate = subscriber.bandwidth.estimate_bps(time.monotonic())
        # Reported alike on the transport (what rooms/ reads) and followed by its pacer.
        if estimate is not None:
            subscriber.pace_by_estimate(True)  # what rooms/ does on a congested link
            subscriber.pacer.admit(0, 0, time.monotonic() + 1.0)  # a new rate window
            assert subscriber.pacer.estimate_bps is not None
        return subscriber, consumer.packets_sent
    finally:
        for close in closers:
            await close()


async def test_an_aiortc_subscriber_sends_remb_and_the_estimate_is_reported() -> None:
    subscriber, sent = await _run(with_abs_send_time=True, seconds=15.0)
    bandwidth = subscriber.bandwidth
    assert sent > 50, "no video forwarded"
    assert bandwidth.rembs_received >= 3, f"REMBs received: {bandwidth.rembs_received}"
    assert bandwidth.remb_bps is not None and bandwidth.remb_at is not None
    # No tighter bound on the figure: aiortc's delay-based estimator, in Python on a
    # loaded machine, has said anything from 24 kbit/s to several Mbit/s here.
    assert bandwidth.remb_bps > 0
    assert bandwidth.estimate_bps(bandwidth.remb_at) == bandwidth.remb_bps


async def test_without_abs_send_time_no_remb_comes_and_nothing_is_known() -> None:
    subscriber, sent = await _run(with_abs_send_time=False, seconds=6.0)
    assert sent > 50, "no video forwarded"
    assert subscriber.bandwidth.rembs_received == 0
    assert subscriber.bandwidth.estimate_bps(time.monotonic()) is None
