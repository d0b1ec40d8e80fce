"""WebRTC transports: one RTCPeerConnection each, in one of two roles.

- PublisherTransport (here): the remote side offers and sends; each sending
  m-section becomes a Producer.
- SubscriberTransport (sfu/subscriber_transport.py): we offer and send; each
  m-section is a slot that a Consumer fills.

Here also what both share: the options, the errors, the peer connection.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from sfu.aiortc_fast_receive import receive_fast
from sfu.aiortc_hooks import ForwardingReceiver, gather_hosts_with
from sfu.audio_sdp import publisher_answer, red_codecs_offered
from sfu.ice import announce_address
from sfu.ice_consent import consent_from_peer
from sfu.media_ports import MediaPorts
from sfu.pacer import PacerSettings
from sfu.producer import KEYFRAME_INTERVAL, Producer
from sfu.retransmit import RetransmitSettings
from sfu.simulcast import RidDemux
from sfu.simulcast_sdp import simulcast_answer, simulcast_offered
from sfu.turns import Turns

logger = logging.getLogger(__name__)


class SdpError(ValueError):
    """The remote description could not be applied."""


class NegotiationError(RuntimeError):
    """An answer arrived with no offer outstanding."""


@dataclass(frozen=True)
class TransportOptions:
    configuration_factory: Callable[[], RTCConfiguration]
    listen_addresses: tuple[str, ...]
    announced_address: str | None = None
    # This node's SDP work (offers, answers, publishers' offers), one step per
    # pass of the event loop (sfu/turns.py): when a whole class renegotiates
    # (breakout rooms) forwarding runs between the steps instead of stalling.
    sdp_turns: Turns = field(default_factory=Turns)
    # A publisher is asked for a keyframe at most once per this many seconds.
    keyframe_interval: float = KEYFRAME_INTERVAL
    # Sending to each subscriber: pacing (sfu/pacer.py), retransmission limits
    # (sfu/retransmit.py).
    pacing: PacerSettings = field(default_factory=PacerSettings)
    retransmission: RetransmitSettings = field(default_factory=RetransmitSettings)
    # ICE host sockets in this UDP port range (sfu/media_ports.py); None: any port.
    media_ports: MediaPorts | None = None
    # Video m-sections per subscriber carrying unpinned producers (sfu/video_slots.py);
    # 0: no bound.
    video_slots: int = 0


def check_sdp(sdp: str) -> None:
    # aiortc skips lines it does not know, so any text would "parse" as a
    # description without media; a real one starts with "v=0" (RFC 8866, 5).
    if sdp.split("\n", 1)[0].rstrip("\r") != "v=0":
        raise SdpError("sdp does not start with a v=0 line")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


class WebRtcTransport:
    def __init__(self, options: TransportOptions) -> None:
        self.id = new_id("tr")
        self.options = options
        self.pc = RTCPeerConnection(options.configuration_factory())
        self._closed = False
        # Read often (every forward, every slot tick): kept, not looked up each time.
        self._dtls: RTCDtlsTransport | None = None

    def _prepare_transports(self) -> None:
        # Before each setLocalDescription: the transceivers' transports exist by then.
        receive_fast(self.pc)
        consent_from_peer(self.pc)
        if self.options.media_ports is not None:
            gather_hosts_with(self.pc, self.options.media_ports.gather_hosts)

    def _local_sdp(self) -> str:
        sdp = self.pc.localDescription.sdp
        return announce_address(sdp, self.options.listen_addresses, self.options.announced_address)

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState

    @property
    def closed(self) -> bool:
        # aiortc closes a peer connection by itself when its DTLS ends (ICE
        # consent expired), a moment after: from the DTLS end on, the connection
        # takes no new media (aiortc refuses a new m-section on it).
        if self._closed or self.pc.connectionState in ("closed", "failed"):
            return True
        if self._dtls is None:  # one DTLS transport for every m-section (BUNDLE)
            transceivers = self.pc.getTransceivers()
            if not transceivers:
                return False
            self._dtls = transceivers[0].sender.transport
        return self._dtls.state == "closed"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.pc.close()


class PublisherTransport(WebRtcTransport):
    def __init__(self, options: TransportOptions) -> None:
        super().__init__(options)
        self.producers: dict[str, Producer] = {}  # by mid

    async def handle_offer(
        self, sdp: str, app_data_by_mid: dict[str, dict[str, Any]]
    ) -> tuple[str, list[Producer]]:
        """Apply the client's offer; return our answer and the producers it created."""
        if self.closed:
            raise SdpError("transport closed")
        check_sdp(sdp)
        await self.options.sdp_turns.take()
        return await self._answer_offer(sdp, app_data_by_mid)

    async def _answer_offer(
        self, sdp: str, app_data_by_mid: dict[str, dict[str, Any]]
    ) -> tuple[str, list[Producer]]:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises many types for bad SDP
            raise SdpError(f"cannot apply offer: {exc}") from exc
        # Before anything awaits: aiortc starts receivers from a task it has
        # just scheduled, and they must start as forwarding receivers.
        red = red_codecs_offered(sdp)
        simulcast = simulcast_offered(sdp)
        new: list[tuple[str, RTCRtpTransceiver, ForwardingReceiver]] = []
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid in self.producers:
                continue
            if transceiver.direction not in ("recvonly", "sendrecv"):
                continue
            receiver = ForwardingReceiver.adopt(transceiver.receiver)
            receiver.extra_codecs = [red[mid]] if mid in red else []
            if mid in simulcast and simulcast[mid].simulcast:
                receiver.extra_header_extensions = simulcast[mid].header_extensions()
                receiver.rids = RidDemux(simulcast[mid].rids)
            new.append((mid, transceiver, receiver))
        try:
            answer = await self.pc.createAnswer()
            answer_sdp = publisher_answer(answer.sdp, red)
            self._prepare_transports()
            await self.pc.setLocalDescription(RTCSessionDescription(answer_sdp, "answer"))
        except Exception as exc:
            raise SdpError(f"cannot answer offer: {exc}") from exc
        created = []
        for mid, transceiver, receiver in new:
            producer = Producer(
                new_id("pr"),
                transceiver.kind,
                receiver,
                dict(app_data_by_mid.get(mid, {})),
                keyframe_interval=self.options.keyframe_interval,
            )
            producer.transport_id = self.id
            self.producers[mid] = producer
            created.append(producer)
        return simulcast_answer(self._local_sdp(), simulcast), created

    async def close(self) -> None:
        for producer in self.producers.values():
            producer.close()
        await super().close()
