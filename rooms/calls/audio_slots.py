"""Bounded audio: which producers the SFU's audio slots pin, and their tick.

The media plane maps each subscriber's audio slots to the loudest producers it
may hear (sfu/audio_slots.py; on when the node's `[media] audio_slots` is set,
and only in rooms with more microphones than slots). This concern tells it who
is pinned (the hosts' microphones: the teacher is always heard) and updates it
every tick in each room. A host-muted microphone is a paused producer: the SFU
never maps it.
"""

from __future__ import annotations

from rooms.calls.core import CallCore
from rooms.calls.ticker import CallTicker
from sfu.audio_slots import TICK
from sfu.producer import Producer


class AudioSlots:
    def __init__(self, call: CallCore, tick: float = TICK) -> None:
        self.call = call
        self.tick = tick
        self._ticker = CallTicker(call, tick, self.update_all, "audio slots")

    def watch(self) -> None:
        """Update while anybody is in the call (called on every entry); nothing to do
        when the node does not bound audio."""
        if self.call.router.audio_slots is not None:
            self._ticker.watch()

    async def stop(self) -> None:
        await self._ticker.stop()

    def update_all(self, now: float) -> None:
        call = self.call
        hosts_microphones = self._hosts_microphones()
        for room in [None, *call.room_routers]:
            router = call.router_of(room)
            slots = router.audio_slots
            if slots is None:
                continue
            pinned = {m.id for m in hosts_microphones.get(room, ()) if router.has_producer(m)}
            slots.set_pinned(pinned)
            slots.update(now)

    def _hosts_microphones(self) -> dict[str | None, list[Producer]]:
        """The hosts' microphones by room: one pass over the call, not one per room (a
        tick with 50 breakout rooms would otherwise walk everybody 51 times)."""
        by_room: dict[str | None, list[Producer]] = {}
        for person in self.call.participants.values():
            if person.host:
                microphone = person.producers.get("microphone")
                if microphone is not None:
                    by_room.setdefault(person.room, []).append(microphone)
        return by_room
