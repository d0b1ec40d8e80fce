"""The subscriber's transport: we offer and send; each m-section is a slot that a
Consumer fills. Slots are reused when a producer goes away, so the subscriber's
connection only ever renegotiates, never reconnects; audio slots
(sfu/audio_slots.py) and the video bound (sfu/video_slots.py) keep the number
of m-sections bounded by what the subscriber hears and sees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiortc import RTCRtpTransceiver, RTCSessionDescription, sdp

from sfu.aiortc_hooks import ForwardingSender
from sfu.audio_sdp import amend_subscriber_offer, red_accepted
from sfu.bandwidth import BandwidthEstimator
from sfu.consumer import Consumer
from sfu.pacer import Pacer
from sfu.probe import Probe
from sfu.producer import Producer
from sfu.retransmit import RetransmitBudget
from sfu.rtx_sdp import distinct_rtx
from sfu.transport import (
    NegotiationError,
    SdpError,
    TransportOptions,
    WebRtcTransport,
    check_sdp,
    new_id,
)
from sfu.video_slots import VideoBound

logger = logging.getLogger(__name__)


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
        # The highest VP8 temporal layer forwarded of a producer (absent: all).
        self._temporal_caps: dict[str, int] = {}
        # Audio slots (sfu/audio_slots.py): consumers whose producer the slot allocator
        # chooses; `consume` never reuses them. Those in `_negotiated_slots` have had
        # their m-section answered, so a producer put in them is sent at once.
        self._reserved: set[Consumer] = set()
        self._negotiated_slots: set[Consumer] = set()
        self._offered_slots: list[Consumer] = []
        # Bounded video (sfu/video_slots.py): past the bound a video is parked, with
        # no m-section, until the holds say it is shown.
        self.video_bound = VideoBound(options.video_slots)
        self._probe: Probe | None = None

    @property
    def consumers(self) -> list[Consumer]:
        return [slot.consumer for slot in self._slots]

    def consume(self, producer: Producer, pinned: bool = False) -> Consumer | None:
        """Start sending `producer` to this subscriber (renegotiates as needed). None:
        a video parked past the bound (sfu/video_slots.py), sent once it is shown;
        a `pinned` video always has its m-section."""
        if self.closed:
            raise RuntimeError("transport closed")
        bound = self.video_bound
        if pinned and producer.kind == "video":
            bound.pinned.add(producer.id)
            bound.parked.pop(producer.id, None)  # pinned since it was parked
        for existing in self._slots:
            if existing.consumer.producer is producer:
                return existing.consumer
        if producer.id in bound.parked:
            return None
        if bound.counts(producer) and not self._video_room(producer):
            bound.park(producer)
            return None
        return self._carry(producer)

    def _carry(self, producer: Producer) -> Consumer:
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
        slot.consumer.set_temporal_cap(self._temporal_caps.get(producer.id))
        slot.consumer.attach(producer, ready=False)
        self._apply_hold(slot.consumer)
        self.request_negotiation()
        return slot.consumer

    # --- bounded video (sfu/video_slots.py)

    def _video_room(self, producer: Producer) -> bool:
        """Whether `producer` may have a video m-section now: under the bound, or in
        place of a held video (parked in its stead). A held video evicts nobody."""
        bound = self.video_bound
        carried = [
            s.consumer
            for s in self._slots
            if s.consumer.producer is not None and bound.counts(s.consumer.producer)
        ]
        if len(carried) < bound.limit:
            return True
        if producer.id in self._held:
            return False
        victim = bound.victim(carried, self._held)
        if victim is None or victim.producer is None:
            return False
        bound.park(victim.producer)
        victim.detach()  # its m-section is free: `_carry` takes it
        return True

    def _unpark(self) -> None:
        """Parked videos that are shown now take m-sections (free or held ones)."""
        for producer in self.video_bound.wanted(self._held):
            if not self._video_room(producer):
                return
            self.video_bound.parked.pop(producer.id, None)
            self._carry(producer)

    @property
    def parked(self) -> list[Producer]:
        """Videos to be received that have no m-section now (sfu/video_slots.py)."""
        return list(self.video_bound.parked.values())

    def _new_slot(self, kind: str) -> _Slot:
        transceiver = self.pc.addTransceiver(kind, direction="sendonly")
        sender = ForwardingSender.adopt(transceiver.sender)
        sender.feedback = self.bandwidth
        consumer = Consumer(new_id("co"), kind, sender, self.pacer, self.retransmit_budget)
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

    def cap_temporal(self, producer_id: str, cap: int | None) -> None:
        """Forward a producer's VP8 temporal layers up to this one (None: all; 1: half
        the frame rate, sfu/temporal_layers.py), now and whenever it is consumed again."""
        if cap is None:
            self._temporal_caps.pop(producer_id, None)
        else:
            self._temporal_caps[producer_id] = cap
        for slot in self._slots:
            producer = slot.consumer.producer
            if producer is not None and producer.id == producer_id:
                slot.consumer.set_temporal_cap(cap)

    def hold(self, producer_ids: Iterable[str]) -> None:
        """Forward nothing of these producers to this subscriber (by producer id), the
        rest as usual; a producer no longer named resumes from its next keyframe.
        Also applies to producers consumed later. No renegotiation: the m-sections
        stay, only their packets stop."""
        self._held = frozenset(producer_ids)
        for slot in self._slots:
            self._apply_hold(slot.consumer)
        if self.video_bound.on:
            shown = [s.consumer.producer.id for s in self._slots if s.consumer.producer]
            shown += [pid for pid in self.video_bound.parked]
            self.video_bound.note_shown(
                (pid for pid in shown if pid not in self._held), time.monotonic()
            )
            self._unpark()

    @property
    def can_probe(self) -> bool:
        """Whether a video stream could carry a probe's padding now (`probe`)."""
        return bool(self._padded_streams())

    def _padded_streams(self) -> list[Consumer]:
        return [c for c in self.consumers if c.kind == "video" and c.can_pad]

    def probe(self, size: int, step_bps: float | None = None) -> Probe | None:
        """Probe the link with a burst of `size` bytes on top of its media, led by
        padding at `step_bps` for a moment when given (sfu/probe.py); None when no video
        stream can carry padding (none sending, or no RTX)."""
        streams = self._padded_streams()
        if self.closed or not streams:
            return None
        if self._probe is not None:
            self._probe.cancel()
        self._probe = Probe(streams, size, step_bps=step_bps)
        return self._probe

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
        elif consumer.paused:
            consumer.resume()
            self.bandwidth.on_resumed(consumer.ssrc, consumer.rewriter.last_out_seq)

    def switch_source(self, old: Producer, new: Producer) -> None:
        """Forward `new` where `old` was (a publisher's replaced connection): same
        m-section and outgoing SSRC, so the subscriber sees its stream go on from
        `new`'s next keyframe, with no renegotiation."""
        self.video_bound.replace(old, new)
        if old.id in self._held:
            self._held = self._held | {new.id}
        for slot in self._slots:
            if slot.consumer.producer is old:
                slot.consumer.attach(new, ready=slot.consumer.ready)
                self._apply_hold(slot.consumer)
        self._offered = [(c, new if p is old else p) for c, p in self._offered]

    def stop_consuming(self, producer: Producer) -> None:
        self._preferred_layers.pop(producer.id, None)
        self._temporal_caps.pop(producer.id, None)
        if self.video_bound.forget(producer.id):
            return  # it was parked: nothing was sent
        for slot in self._slots:
            if slot.consumer.producer is producer:
                slot.consumer.detach()
                if slot.consumer not in self._reserved:  # a slot's m-section stays as it is
                    self.request_negotiation()
        if producer.kind == "video" and self.video_bound.parked:
            self._unpark()  # a shown one takes the m-section

    def stop_all(self) -> None:
        """Receive nothing of this router any more (the subscriber moves to another)."""
        self.video_bound.clear()
        for consumer in self.consumers:
            if consumer.producer is not None:
                self.stop_consuming(consumer.producer)

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
                # Parsed once for both amendments (SDP work is what a whole class
                # renegotiating at once waits for).
                description = sdp.SessionDescription.parse(offer.sdp)
                amend_subscriber_offer(description)
                distinct_rtx(description)
                offer_sdp = str(description)
                self._prepare_transports()
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
        check_sdp(sdp)
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
        if self._probe is not None:
            self._probe.cancel()
        for task in list(self._tasks):
            task.cancel()
        await super().close()
