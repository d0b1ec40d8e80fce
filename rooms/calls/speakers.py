"""Active speakers: who in each room is speaking, told to the people of that room.

The SFU ranks producers by loudness (sfu/active_speaker.py, each router's
`speakers`: the main room and each breakout room); this concern updates them and turns producers
into people and leaves out whoever must not be shown speaking: a microphone
that is off (`media_state`), muted by a host or without the right to speak (the
core pauses those producers, and the detector never ranks a paused one), a
person gone or in another room.

Once an update interval (0.4 s) each person is sent `active_speakers` when the
ordered list of their room's speakers differs from the last one they got (the
levels alone do not count as a change): at most 2.5 messages a second each,
none while nothing changes, and someone who joins or changes rooms hears the
current list at the next update.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rooms.calls.core import CallCore
from rooms.calls.participant import Participant, safe_send
from rooms.calls.ticker import CallTicker
from sfu.active_speaker import UPDATE_INTERVAL, Speaker
from sfu.router import Router

# More than this many people speaking at once is noise, not a list to show.
MAX_LISTED = 8


class ActiveSpeakers:
    def __init__(self, call: CallCore, interval: float = UPDATE_INTERVAL) -> None:
        self.call = call
        self.interval = interval  # the detectors' own (SpeakerSettings.update_interval)
        self._told: dict[str, tuple[str, ...]] = {}  # participant id -> speakers' ids told
        self._ticker = CallTicker(call, interval, self.update_all, "active speakers")

    def watch(self) -> None:
        """Update while anybody is in the call (called on every entry)."""
        self._ticker.watch()

    async def stop(self) -> None:
        await self._ticker.stop()

    def speaking(self, room: str | None = None) -> list[dict[str, Any]]:
        """The room's speakers as people, loudest first, from the last update."""
        router = self._router(room)
        return self._people(room, router.speakers.speakers) if router is not None else []

    async def update_all(self, now: float) -> None:
        """One update: each room's detector, then whoever's list changed is told."""
        call = self.call
        rooms: list[str | None] = [None, *call.room_routers]
        sends = []
        for room in rooms:
            router = self._router(room)
            if router is None:
                continue
            listed = self._people(room, router.speakers.update(router.producers, now))
            ids = tuple(entry["participant_id"] for entry in listed)
            message = {"type": "active_speakers", "speakers": listed}
            for person in call.in_room(room):
                if self._told.get(person.id, ()) != ids:  # nobody, until told otherwise
                    self._told[person.id] = ids
                    sends.append(safe_send(person, message))
        for gone in set(self._told) - set(call.participants):
            del self._told[gone]
        await asyncio.gather(*sends)

    def _router(self, room: str | None) -> Router | None:
        return self.call.router if room is None else self.call.room_routers.get(room)

    def _people(self, room: str | None, speakers: list[Speaker]) -> list[dict[str, Any]]:
        listed = []
        for speaker in speakers:
            person = self._speaker(room, speaker.producer_id)
            if person is not None:
                listed.append({"participant_id": person.id, "level": round(speaker.level, 3)})
            if len(listed) == MAX_LISTED:
                break
        return listed

    def _speaker(self, room: str | None, producer_id: str) -> Participant | None:
        """The person whose unmuted microphone this producer is, if they may be heard."""
        for person in self.call.in_room(room):
            microphone = person.producers.get("microphone")
            if microphone is not None and microphone.id == producer_id:
                heard = person.record.audio and not microphone.paused
                return person if heard else None
        return None
