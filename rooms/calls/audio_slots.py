"""Bounded audio: which producers the SFU's audio slots pin, and their tick.

The media plane maps each subscriber's audio slots to the loudest producers it
may hear (sfu/audio_slots.py; on when the node's `[media] audio_slots` is set,
and only in rooms with more microphones than slots). This concern tells it who
is pinned (the hosts' microphones: the teacher is always heard) and updates it
every tick in each room. A host-muted microphone is a paused producer: the SFU
never maps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from rooms.calls.core import CallCore
from sfu.audio_slots import TICK
from sfu.router import Router

logger = logging.getLogger(__name__)


class AudioSlots:
    def __init__(self, call: CallCore, tick: float = TICK) -> None:
        self.call = call
        self.tick = tick
        self._task: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Update while anybody is in the call (called on every entry); nothing to do
        when the node does not bound audio."""
        if self.call.router.audio_slots is None:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        call = self.call
        while not call.ended and call.participants:
            await asyncio.sleep(self.tick)
            try:
                self.update_all(time.monotonic())
            except Exception:  # the call goes on; its slots stay as they are
                logger.exception("audio slots of %s failed", call.id)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
