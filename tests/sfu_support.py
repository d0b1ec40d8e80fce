"""Shared helpers for the SFU unit tests: the network edge replaced, nothing else.

WireRecorder stands in for aiortc's RTCDtlsTransport and records what would go on
the wire; receivers, senders, producers and consumers are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket

from sfu.aiortc_hooks import ForwardingReceiver, ForwardingSender, restrict_host_addresses
from sfu.consumer import Consumer
from sfu.ice import rtc_configuration
from sfu.pacer import Pacer, PacerSettings
from sfu.producer import Producer
from sfu.retransmit import RetransmitBudget
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport, TransportOptions

VP8_IN = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
VP8_OUT = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
RTX_IN = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


class WireRecorder:
    """Stands in for aiortc's RTCDtlsTransport: records what would be sent."""

    state = "connected"
    _stats_id = "transport_test"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.registered: list[Any] = []
        self._rtp_router = RtpRouter()  # aiortc's own: receivers route RTX SSRCs through it

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)

    def _register_rtp_receiver(self, receiver: Any, parameters: Any) -> None:
        self.registered.append(receiver)

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None:
        self.registered.append(sender)

    def _unregister_rtp_sender(self, sender: Any) -> None:
        self.registered.remove(sender)

    def _unregister_rtp_receiver(self, receiver: Any) -> None:
        self.registered.remove(receiver)

    def rtp(self) -> list[RtpPacket]:
        return [RtpPacket.parse(d) for d in self.sent if not (192 <= d[1] <= 223)]

    def rtcp(self) -> list[Any]:
        return [p for d in self.sent if 192 <= d[1] <= 223 for p in RtcpPacket.parse(d)]

    def plis(self) -> list[RtcpPsfbPacket]:
        return [p for p in self.rtcp() if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI]


async def make_producer(
    wire: WireRecorder,
    kind: str = "video",
    codecs: list[RTCRtpCodecParameters] | None = None,
    producer_id: str = "pr_test",
    keyframe_interval: float | None = None,
) -> tuple[Producer, ForwardingReceiver]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver(kind, wire))  # type: ignore[arg-type]
    receiver._set_rtcp_ssrc(1111)
    if codecs is None:
        codecs = [VP8_IN, RTX_IN] if kind == "video" else [OPUS]
    await receiver.receive(RTCRtpReceiveParameters(codecs=codecs, muxId="0"))
    producer = Producer(producer_id, kind, receiver, {"source": "camera"})
    if keyframe_interval is not None:
        producer.keyframe_interval = keyframe_interval
    return producer, receiver


async def make_consumer(
    wire: WireRecorder,
    kind: str = "video",
    codecs: list[RTCRtpCodecParameters] | None = None,
    start: bool = True,
    pacer: Pacer | None = None,
    budget: RetransmitBudget | None = None,
) -> Consumer:
    """A consumer sending to `wire`; unpaced unless given a pacer (tests publish
    bursts in no time; the pacer has tests of its own)."""
    sender = ForwardingSender.adopt(RTCRtpSender(kind, wire))  # type: ignore[arg-type]
    pacer = pacer or Pacer(PacerSettings(enabled=False))
    consumer = Consumer("co_test", kind, sender, pacer, budget)
    if start:
        if codecs is None:
            codecs = [VP8_OUT] if kind == "video" else [OPUS]
        await sender.send(RTCRtpSendParameters(codecs=codecs, muxId="0"))
    return consumer


def rtp(
    seq: int,
    ts: int,
    payload: bytes = b"\x10\x00frame",
    ssrc: int = 4242,
    payload_type: int = 96,
    marker: int = 0,
) -> RtpPacket:
    packet = RtpPacket(
        payload_type=payload_type, sequence_number=seq, timestamp=ts, ssrc=ssrc, marker=marker
    )
    packet.payload = payload
    packet.extensions.abs_send_time = 12345
    return packet


async def publish(receiver: ForwardingReceiver, *packets: RtpPacket) -> None:
    """Packets arriving from the publisher, as aiortc's DTLS transport hands them over."""
    for i, packet in enumerate(packets):
        await receiver._handle_rtp_packet(packet, arrival_time_ms=i)


# --------------------------------------------------------------------------- peer connections
# For router and transport tests: real RTCPeerConnections on loopback play the clients.


def transport_options() -> TransportOptions:
    restrict_host_addresses(["127.0.0.1"])
    return TransportOptions(
        configuration_factory=lambda: rtc_configuration([]), listen_addresses=("127.0.0.1",)
    )


async def client_offer(kinds: Sequence[str]) -> tuple[RTCPeerConnection, str]:
    """A client that sends one track of each of `kinds`: its pc and its offer."""
    pc = RTCPeerConnection(rtc_configuration([]))
    for kind in kinds:
        pc.addTransceiver(kind, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def publish_from_client(
    transport: PublisherTransport, kinds: Sequence[str], app_data: dict[str, Any] | None = None
) -> tuple[RTCPeerConnection, list[Producer]]:
    pc, offer = await client_offer(kinds)
    by_mid = {str(i): dict(app_data or {}, n=i) for i in range(len(kinds))}
    answer, producers = await transport.handle_offer(offer, by_mid)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, producers


class SubscribingClient:
    """The client side of a SubscriberTransport: keeps the offers, answers on request."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.offers: list[tuple[str, dict[str, Consumer]]] = []
        self.offered = asyncio.Event()

    async def send_offer(self, sdp: str, tracks: dict[str, Consumer]) -> None:
        self.offers.append((sdp, dict(tracks)))
        self.offered.set()

    async def next_offer(self) -> tuple[str, dict[str, Consumer]]:
        await asyncio.wait_for(self.offered.wait(), 10)
        self.offered.clear()
        return self.offers[-1]

    async def answer(self, transport: SubscriberTransport) -> None:
        sdp, _ = await self.next_offer()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await transport.handle_answer(self.pc.localDescription.sdp)
