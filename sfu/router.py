"""Router: the set of transports, producers and consumers of one call or breakout room."""

from __future__ import annotations

import secrets
from typing import Any

from sfu.active_speaker import ActiveSpeakerDetector
from sfu.audio_slots import AudioSlotAllocator, SlotSettings
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.stats import ForwardingTotals
from sfu.subscriber_transport import OfferCallback, SubscriberTransport
from sfu.transport import PublisherTransport, TransportOptions, WebRtcTransport


class Router:
    def __init__(
        self,
        options: TransportOptions,
        app_data: dict[str, Any] | None = None,
        retired: ForwardingTotals | None = None,
    ) -> None:
        self.id = f"rt_{secrets.token_hex(6)}"
        # Where a closing transport leaves its counts (the engine's, shared by its routers).
        self.retired = retired if retired is not None else ForwardingTotals()
        self.app_data = app_data or {}
        self._options = options
        self.transports: dict[str, WebRtcTransport] = {}
        self.closed = False
        # Who speaks among this router's producers; whoever needs it updates it
        # (rooms/calls/speakers.py, once per update interval).
        self.speakers = ActiveSpeakerDetector()
        # Bounded audio (sfu/audio_slots.py), once `bound_audio` is called.
        self.audio_slots: AudioSlotAllocator | None = None

    @property
    def options(self) -> TransportOptions:
        return self._options

    def create_publisher_transport(self) -> PublisherTransport:
        transport = PublisherTransport(self._options)
        self.transports[transport.id] = transport
        return transport

    def create_subscriber_transport(self, send_offer: OfferCallback) -> SubscriberTransport:
        transport = SubscriberTransport(self._options, send_offer)
        self.transports[transport.id] = transport
        return transport

    @property
    def producers(self) -> list[Producer]:
        return [
            p
            for t in self.transports.values()
            if isinstance(t, PublisherTransport)
            for p in t.producers.values()
            if not p.closed
        ]

    @property
    def consumers(self) -> list[Consumer]:
        return [
            c
            for t in self.transports.values()
            if isinstance(t, SubscriberTransport)
            for c in t.consumers
        ]

    @property
    def subscribers(self) -> list[SubscriberTransport]:
        return [t for t in self.transports.values() if isinstance(t, SubscriberTransport)]

    def bound_audio(self, settings: SlotSettings) -> AudioSlotAllocator:
        """From now on, once the call is larger than the slots, each subscriber gets
        the loudest `settings.slots` audio producers (plus the pinned ones)."""
        if self.audio_slots is None:
            self.audio_slots = AudioSlotAllocator(
                lambda: self.producers, lambda: self.subscribers, self.speakers, settings
            )
        return self.audio_slots

    def has_producer(self, producer: Producer) -> bool:
        # By its transport, not over every producer: a breakout close moves 150 people
        # into a router of 150, each consuming everyone (this was 14 % of that).
        transport = self.transports.get(producer.transport_id or "")
        return (
            isinstance(transport, PublisherTransport)
            and not producer.closed
            and any(p is producer for p in transport.producers.values())
        )

    def consume(
        self, subscriber: SubscriberTransport, producer: Producer, pinned: bool = False
    ) -> Consumer | None:
        """Forward `producer` to `subscriber`; both must belong to this router. None:
        the producer is audio that reaches the subscriber through its audio slots, or
        a video parked past the subscriber's bound (`pinned`: never parked)."""
        if self.transports.get(subscriber.id) is not subscriber or not self.has_producer(producer):
            raise ValueError("a router forwards only between its own transports")
        slots = self.audio_slots
        if slots is not None and slots.takes(producer):
            slots.offer(subscriber, producer)
            return None
        return subscriber.consume(producer, pinned)

    def switch_producer(self, old: Producer, new: Producer) -> None:
        """Every subscriber of `old` in this router receives `new` in its place."""
        if self.audio_slots is not None:
            self.audio_slots.replace(old, new)
        for transport in self.transports.values():
            if isinstance(transport, SubscriberTransport):
                transport.switch_source(old, new)

    def transfer(self, transport: WebRtcTransport, target: Router) -> None:
        """Move a transport (and its producers or consumers) to another router.

        Its peer connection stays up; what it forwarded in this router stops
        (the caller then subscribes it in the target). Renegotiation follows
        on the subscriber connections concerned.
        """
        if self.transports.get(transport.id) is not transport:
            raise ValueError("transport is not in this router")
        del self.transports[transport.id]
        if isinstance(transport, PublisherTransport):
            self._stop_forwarding(list(transport.producers.values()))
        elif isinstance(transport, SubscriberTransport):
            if self.audio_slots is not None:
                self.audio_slots.forget(transport)
            transport.stop_all()
        target.transports[transport.id] = transport

    def _stop_forwarding(self, producers: list[Producer]) -> None:
        """Nobody in this router receives these producers any more."""
        if self.audio_slots is not None:
            for producer in producers:
                self.audio_slots.withdraw(producer)
        for other in self.transports.values():
            if isinstance(other, SubscriberTransport):
                for producer in producers:
                    other.stop_consuming(producer)

    async def close_transport(self, transport: WebRtcTransport) -> None:
        if self.transports.pop(transport.id, None) is not None:
            # It leaves the live walk of the metrics: its counts go to the retired totals
            # (whether or not aiortc already closed its connection itself).
            self.retired.retire(transport)
        if isinstance(transport, PublisherTransport):
            self._stop_forwarding(list(transport.producers.values()))
        await transport.close()

    async def close(self) -> None:
        self.closed = True
        for transport in list(self.transports.values()):
            await self.close_transport(transport)
