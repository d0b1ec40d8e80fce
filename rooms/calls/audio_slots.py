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
from sfu.router import Router


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
        for room in [None, *call.room_routers]:
            router = call.router_of(room)
            slots = router.audio_slots
            if slots is None:
                continue
            slots.set_pinned(self._pinned(room, router))
            slots.update(now)

    def _pinned(self, room: str | None, router: Router) -> set[str]:
        """The hosts' microphones in this room."""
        pinned = set()
        for person in self.call.in_room(room):
            microphone = person.producers.get("microphone")
            if person.host and microphone is not None and router.has_producer(microphone):
                pinned.add(microphone.id)
        return pinned
