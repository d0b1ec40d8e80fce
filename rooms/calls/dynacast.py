"""Dynacast: a camera encodes only the simulcast layers somebody receives (LiveKit's
dynacast).

In a class, nobody shows a pupil's camera large: its top layer (640x360, about 60 %
of the camera's bits) goes up the pupil's home link and into the server for
nothing. Once a second, for every simulcast camera, the layers wanted are worked out
from what each subscriber's consumer of it wants (`Consumer.layers`: the tile's size,
capped by the person's bandwidth plan; a video held back or parked wants nothing),
and the publisher is told how many layers to encode, smallest first
(`publish_layers`, docs/protocol.md): at once when more are wanted, after
`OFF_AFTER` seconds of fewer (a page flip back and forth does not restart an
encoder). The two smallest layers are always sent (MIN_LAYERS). A publisher found
sending a layer it was told to stop (a new connection after an ICE restart starts
with all) is told again, at most every `OFF_AFTER`.
A layer that stops is replaced at once by the best one still sent
(sfu/layer_select.py); one that starts again is switched to at its keyframe.
"""

from __future__ import annotations

from rooms.calls.core import CallCore
from rooms.calls.participant import Participant, safe_send
from rooms.calls.ticker import CallTicker
from sfu.producer import Producer

INTERVAL = 1.0
# Fewer layers are asked for only after this long of nobody wanting the others.
OFF_AFTER = 5.0
# Never fewer: the smallest is the recorder's and a new viewer's first picture; the
# middle one is every grid tile's, and the publisher's bandwidth estimate follows
# what it sends (our REMB measures what arrives): from the smallest alone (~50
# kbit/s) Chromium took 14 s to send the middle one again once asked.
MIN_LAYERS = 2
# Packets of a stopped layer arriving this long after the publisher was told were sent
# after it had the message.
IN_FLIGHT = 1.0


class Dynacast:
    def __init__(self, call: CallCore, interval: float = INTERVAL) -> None:
        self.call = call
        self.enabled = True  # [media] dynacast
        self._ticker = CallTicker(call, interval, self.update_all, "dynacast")
        self.told: dict[str, int] = {}  # producer id -> layers the publisher was told
        self._fewer_since: dict[str, float] = {}
        self._told_at: dict[str, float] = {}

    def watch(self) -> None:
        if self.enabled:
            self._ticker.watch()

    async def stop(self) -> None:
        await self._ticker.stop()

    def wanted(self) -> dict[str, int]:
        """Producer id -> how many of its layers some consumer forwards or wants."""
        wanted: dict[str, int] = {}
        for person in self.call.participants.values():
            subscriber = person.subscriber
            if subscriber is None:
                continue
            for consumer in subscriber.consumers:
                producer = consumer.producer
                if producer is None or consumer.paused or producer.layer_count < 2:
                    continue
                layers = consumer.layers
                top = layers.target(producer.layer_count) + 1
                if top > wanted.get(producer.id, 0):
                    wanted[producer.id] = top
        return wanted

    async def update_all(self, now: float) -> None:
        wanted = self.wanted()
        cameras = {
            producer.id: (person, source, producer)
            for person in self.call.participants.values()
            for source, producer in person.producers.items()
            if producer.layer_count > 1
        }
        for gone in set(self.told) - set(cameras):
            del self.told[gone]
            self._fewer_since.pop(gone, None)
            self._told_at.pop(gone, None)
        for pid, (person, source, producer) in cameras.items():
            want = min(producer.layer_count, max(MIN_LAYERS, wanted.get(pid, 1)))
            told = self.told.get(pid, producer.layer_count)
            if want > told:
                await self._tell(person, source, producer, want, now)
            elif want == told:
                self._fewer_since.pop(pid, None)
                if self._sends_more(producer, told, now):
                    await self._tell(person, source, producer, told, now)
            elif now - self._fewer_since.setdefault(pid, now) >= OFF_AFTER:
                await self._tell(person, source, producer, want, now)

    def _sends_more(self, producer: Producer, told: int, now: float) -> bool:
        """A layer it was told to stop still comes: packets of it well after the telling
        (not those already on their way), and not told just now."""
        told_at = self._told_at.get(producer.id)
        if told_at is None or now - told_at < OFF_AFTER:
            return False
        return any(layer.last_packet_at > told_at + IN_FLIGHT for layer in producer.layers[told:])

    async def _tell(
        self, person: Participant, source: str, producer: Producer, count: int, now: float
    ) -> None:
        self.told[producer.id] = count
        self._told_at[producer.id] = now
        self._fewer_since.pop(producer.id, None)
        await safe_send(person, {"type": "publish_layers", "source": source, "layers": count})
