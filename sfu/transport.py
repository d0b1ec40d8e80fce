"""WebRTC transports: one RTCPeerConnection each, in one of two roles.

- PublisherTransport: the remote side offers and sends; each sending
  m-section becomes a Producer.
- SubscriberTransport: we offer and send; each m-section is a slot that a
  Consumer fills. Slots are reused when a producer goes away, so the
  subscriber's connection only ever renegotiates, never reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from sfu.aiortc_hooks import ForwardingReceiver, ForwardingSender, gather_hosts_with
from sfu.audio_sdp import publisher_answer, red_accepted, red_codecs_offered, subscriber_offer
from sfu.bandwidth import BandwidthEstimator
from sfu.consumer import Consumer
from sfu.ice import announce_address
from sfu.media_ports import MediaPorts
from sfu.pacer import Pacer, PacerSettings
from sfu.producer import KEYFRAME_INTERVAL, Producer
from sfu.retransmit import RetransmitBudget, RetransmitSettings
from sfu.rtx_sdp import distinct_rtx_payload_types
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


def _check_sdp(sdp: str) -> None:
    # aiortc skips lines it does not know, so any text would "parse" as a
    # description without media; a real one starts with "v=0" (RFC 8866, 5).
    if sdp.split("\n", 1)[0].rstrip("\r") != "v=0":
        raise SdpError("sdp does not start with a v=0 line")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


class WebRtcTransport:
    def __init__(self, options: TransportOptions) -> None:
        self.id = _new_id("tr")
        self.options = options
        self.pc = RTCPeerConnection(options.configuration_factory())
        self._closed = False
        # Read often (every forward, every slot tick): kept, not looked up each time.
        self._dtls: RTCDtlsTransport | None = None

    def _gather_in_port_range(self) -> None:
        # Before each setLocalDescription: the transceivers' transports exist by then.
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
        _check_sdp(sdp)
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
            self._gather_in_port_range()
            await self.pc.setLocalDescription(RTCSessionDescription(answer_sdp, "answer"))
        except Exception as exc:
            raise SdpError(f"cannot answer offer: {exc}") from exc
        created = []
        for mid, transceiver, receiver in new:
            producer = Producer(
                _new_id("pr"),
                transceiver.kind,
                receiver,
                dict(app_data_by_mid.get(mid, {})),
                keyframe_interval=self.options.keyframe_interval,
            )
            self.producers[mid] = producer
            created.append(producer)
        return simulcast_answer(self._local_sdp(), simulcast), created

    async def close(self) -> None:
        for producer in self.producers.values():
            producer.close()
        await super().close()


@dataclass
class _Slot:
    transceiver: RTCRtpTransceiver
    consumer: Consumer


OfferCallback = Callable[[str, dict[str, Consumer]], Awaitable[None]]


@dataclass
class _Negotiation:
    wanted: bool = False
    outstanding: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SubscriberTransport(WebRtcTransport):
    def __init__(self, options: TransportOptions, send_offer: OfferCallback) -> None:
        super().__init__(options)
        self._send_offer = send_offer
        self._slots: list[_Slot] = []
        self._negotiation = _Negotiation()
        self._tasks: set[asyncio.Task[None]] = set()
        # (consumer, producer) pairs the outstanding offer described.
        self._offered: list[tuple[Consumer, Producer | None]] = []
        # Shared by this subscriber's consumers: one link, one queue, one budget.
        self.pacer = Pacer(options.pacing)
        self.retransmit_budget = RetransmitBudget(options.retransmission)
        # The subscriber's downlink, from its REMB and reports (sfu/bandwidth.py):
        # rooms/ reads it to choose what to hold back, and has the pacer follow it
        # while the link is congested (`pace_by_estimate`).
        self.bandwidth = BandwidthEstimator(
            lambda: self.pacer.video_bps + self.pacer.retransmission_bps
        )
        # Producers forwarded to every other subscriber but held back from this one.
        self._held: frozenset[str] = frozenset()
        # The simulcast layer wanted of a producer (by id), for its consumer now or later.
        self._preferred_layers: dict[str, int | None] = {}
        # Audio slots (sfu/audio_slots.py): consumers whose producer the slot allocator
        # chooses; `consume` never reuses them. Those in `_negotiated_slots` have had
        # their m-section answered, so a producer put in them is sent at once.
        self._reserved: set[Consumer] = set()
        self._negotiated_slots: set[Consumer] = set()
        self._offered_slots: list[Consumer] = []

    @property
    def consumers(self) -> list[Consumer]:
        return [slot.consumer for slot in self._slots]

    def consume(self, producer: Producer) -> Consumer:
        """Start sending `producer` to this subscriber (renegotiates as needed)."""
        if self.closed:
            raise RuntimeError("transport closed")
        for existing in self._slots:
            if existing.consumer.producer is producer:
                return existing.consumer
        slot = next(
            (
                s
                for s in self._slots
                if s.consumer.producer is None
                and s.transceiver.kind == producer.kind
                and s.consumer not in self._reserved
            ),
            None,
        )
        if slot is None:
            slot = self._new_slot(producer.kind)
        # Media starts once the subscriber has answered an offer naming its source.
        slot.consumer.set_target_layer(self._preferred_layers.get(producer.id))
        slot.consumer.attach(producer, ready=False)
        self._apply_hold(slot.consumer)
        self.request_negotiation()
        return slot.consumer

    def _new_slot(self, kind: str) -> _Slot:
        transceiver = self.pc.addTransceiver(kind, direction="sendonly")
        sender = ForwardingSender.adopt(transceiver.sender)
        sender.feedback = self.bandwidth
        consumer = Consumer(_new_id("co"), kind, sender, self.pacer, self.retransmit_budget)
        slot = _Slot(transceiver, consumer)
        self._slots.append(slot)
        return slot

    # --- audio slots: consumers the allocator (sfu/audio_slots.py) fills

    def open_audio_slot(self) -> Consumer:
        """A new audio m-section for the slot allocator (renegotiates)."""
        if self.closed:
            raise RuntimeError("transport closed")
        free = next(  # an m-section left over (from another router) before a new one
            (
                s
                for s in self._slots
                if s.consumer.producer is None
                and s.transceiver.kind == "audio"
                and s.consumer not in self._reserved
            ),
            None,
        )
        consumer = (free or self._new_slot("audio")).consumer
        self._reserved.add(consumer)
        self.request_negotiation()
        return consumer

    def adopt_audio_slot(self, consumer: Consumer) -> None:
        """An audio consumer of this transport becomes a slot, keeping its producer."""
        self._reserved.add(consumer)
        if consumer.ready and consumer.producer is not None:
            self._negotiated_slots.add(consumer)
        # Same m-sections, but the next offer's description labels it a slot: the
        # page then plays it on its own, not on the tile of whoever spoke in it first.
        self.request_negotiation()

    def fill_audio_slot(
        self, consumer: Consumer, producer: Producer | None, replay: float = 0.0
    ) -> None:
        """Forward `producer` (None: nothing) in this slot, with no renegotiation: the
        consumer's rewriter keeps its sequence numbers and timestamps continuous.
        `replay`: first send its last this many seconds again from its cache (the
        start of what the speaker said before the slot was theirs)."""
        if producer is None:
            consumer.detach()
            return
        consumer.attach(producer, ready=consumer in self._negotiated_slots)
        self._apply_hold(consumer)
        if replay <= 0.0 or consumer.paused or not consumer.ready:
            return
        now = time.monotonic()
        for entry in producer.recent(replay):
            pending = consumer.forward(entry, now)
            if pending is not None:  # aiortc's own path: in order, on the loop
                task = asyncio.ensure_future(pending)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    @property
    def audio_slots(self) -> list[Consumer]:
        """The consumers that are audio slots now (empty: this subscriber is not bounded)."""
        return [s.consumer for s in self._slots if s.consumer in self._reserved]

    def release_audio_slots(self) -> list[Consumer]:
        """The slots become ordinary consumers again (their router no longer bounds audio)."""
        released = [s.consumer for s in self._slots if s.consumer in self._reserved]
        self._reserved.clear()
        self._negotiated_slots.clear()
        return released

    def prefer_layer(self, producer_id: str, layer: int | None) -> None:
        """Forward this simulcast layer of a producer (0: the smallest; None: the
        highest; or the nearest one sent), now and whenever it is consumed again."""
        self._preferred_layers[producer_id] = layer
        for slot in self._slots:
            producer = slot.consumer.producer
            if producer is not None and producer.id == producer_id:
                slot.consumer.set_target_layer(layer)

    def hold(self, producer_ids: Iterable[str]) -> None:
        """Forward nothing of these producers to this subscriber (by producer id), the
        rest as usual; a producer no longer named resumes from its next keyframe.
        Also applies to producers consumed later. No renegotiation: the m-sections
        stay, only their packets stop."""
        self._held = frozenset(producer_ids)
        for slot in self._slots:
            self._apply_hold(slot.consumer)

    def pace_by_estimate(self, on: bool) -> None:
        """Pace this subscriber by its bandwidth estimate (on) or by what it was sent."""
        if on:
            self.pacer.follow(self.bandwidth.estimate_bps, self.bandwidth.delivered_bps)
        else:
            self.pacer.follow(None)

    @property
    def held(self) -> frozenset[str]:
        return self._held

    def _apply_hold(self, consumer: Consumer) -> None:
        producer = consumer.producer
        if producer is not None and producer.id in self._held:
            consumer.pause()
        else:
            consumer.resume()

    def switch_source(self, old: Producer, new: Producer) -> None:
        """Forward `new` where `old` was (a publisher's replaced connection): same
        m-section and outgoing SSRC, so the subscriber sees its stream go on from
        `new`'s next keyframe, with no renegotiation."""
        for slot in self._slots:
            if slot.consumer.producer is old:
                if old.id in self._held:
                    self._held = self._held | {new.id}
                slot.consumer.attach(new, ready=slot.consumer.ready)
                self._apply_hold(slot.consumer)
        self._offered = [(c, new if p is old else p) for c, p in self._offered]

    def stop_consuming(self, producer: Producer) -> None:
        self._preferred_layers.pop(producer.id, None)
        for slot in self._slots:
            if slot.consumer.producer is producer:
                slot.consumer.detach()
                if slot.consumer not in self._reserved:  # a slot's m-section stays as it is
                    self.request_negotiation()

    def tracks(self) -> dict[str, Consumer]:
        """Consumers carrying media now, by the mid of their m-section."""
        return {
            slot.transceiver.mid: slot.consumer
            for slot in self._slots
            if slot.transceiver.mid is not None and slot.consumer.producer is not None
        }

    def request_negotiation(self) -> None:
        self._negotiation.wanted = True
        if not self._negotiation.outstanding and not self.closed:
            task = asyncio.ensure_future(self._negotiate())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _negotiate(self) -> None:
        negotiation = self._negotiation
        async with negotiation.lock:
            if not negotiation.wanted or negotiation.outstanding or self.closed:
                return
            if not self._slots:
                negotiation.wanted = False
                return
            negotiation.wanted = False
            negotiation.outstanding = True
            try:
                await self.options.sdp_turns.take()
                offer = await self.pc.createOffer()
                offer_sdp = distinct_rtx_payload_types(subscriber_offer(offer.sdp))
                self._gather_in_port_range()
                await self.pc.setLocalDescription(RTCSessionDescription(offer_sdp, "offer"))
                tracks = self.tracks()
                self._offered = [(c, c.producer) for c in tracks.values()]
                self._offered_slots = [
                    s.consumer
                    for s in self._slots
                    if s.consumer in self._reserved and s.transceiver.mid is not None
                ]
                # Every slot's m-section is named, an empty one too (it may carry
                # someone before the next offer).
                named = dict(tracks)
                for slot in self._slots:
                    if slot.consumer in self._offered_slots and slot.transceiver.mid is not None:
                        named[slot.transceiver.mid] = slot.consumer
                await self._send_offer(self._local_sdp(), named)
            except Exception:
                negotiation.outstanding = False
                if self.closed or self.pc.connectionState in ("closed", "failed"):
                    logger.debug("renegotiation of a closing transport failed", exc_info=True)
                else:
                    logger.exception("subscriber renegotiation failed")

    async def handle_answer(self, sdp: str) -> None:
        if not self._negotiation.outstanding:
            raise NegotiationError("no offer is waiting for an answer")
        _check_sdp(sdp)
        try:
            await self.options.sdp_turns.take()
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            raise SdpError(f"cannot apply answer: {exc}") from exc
        finally:
            # Even a bad answer ends this round; the next offer starts afresh.
            self._negotiation.outstanding = False
        red = red_accepted(sdp)
        for slot in self._slots:
            if slot.transceiver.mid in red:
                slot.consumer.red_payload_type = red[slot.transceiver.mid]
        # The subscriber now knows whose media each offered m-section carries.
        for consumer, producer in self._offered:
            if consumer.producer is producer:
                consumer.mark_ready()
        self._offered = []
        # A slot's m-section is set up whatever it carries now or later.
        for consumer in self._offered_slots:
            self._negotiated_slots.add(consumer)
            if consumer.producer is not None:
                consumer.mark_ready()
        self._offered_slots = []
        if self._negotiation.wanted:
            self.request_negotiation()

    async def close(self) -> None:
        for slot in self._slots:
            slot.consumer.close()
        self.pacer.close()
        for task in list(self._tasks):
            task.cancel()
        await super().close()
