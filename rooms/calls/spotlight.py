"""The host's spotlight: whose tile (camera or shared screen) every page in a room
shows large (docs/protocol.md "spotlight").

One spotlight per room (the main room and each breakout room: a room has its own
media, so its own stage). It names a person who is in that room; it is cleared when
they leave the call or the room. Kept with the call on its node, as the people it
names are (participant ids are this node's). Every person is sent their room's
spotlight in `joined` / `resumed`, and a `spotlight` message whenever what they were
last told changes (a host's switch, the person named leaving, a move between rooms).
"""

from __future__ import annotations

from typing import Any

from rooms.calls.core import CallCore
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant, safe_send

Spot = dict[str, Any]  # {"participant_id", "source": "camera" | "screen", "by": {id, name}}


def _room_key(room: str | None) -> str:
    return room or ""


class Spotlights:
    def __init__(self, call: CallCore) -> None:
        self.call = call
        self._by_room: dict[str, Spot] = {}
        self._told: dict[str, Spot | None] = {}  # participant id -> what they were told last

    def of_room(self, room: str | None) -> Spot | None:
        return self._by_room.get(_room_key(room))

    def told(self, participant: Participant) -> Spot | None:
        """The spotlight for `joined` / `resumed`: it is what this person knows from now."""
        spot = self.of_room(participant.room)
        self._told[participant.id] = spot
        return spot

    def put(self, room: str | None, spot: Spot) -> None:
        """A room's spotlight as it was before a restart (rooms/calls/restart.py)."""
        self._by_room[_room_key(room)] = spot

    async def set(self, host: Participant, participant_id: str | None, source: str) -> None:
        """Spotlight a person of the host's room (their camera or screen), or nobody (None)."""
        call = self.call
        call.require_host(host)
        call.require_admitted(host)
        room = _room_key(host.room)
        if participant_id is None:
            self._by_room.pop(room, None)
        else:
            target = call.target(participant_id)
            if _room_key(target.room) != room:
                raise CallError("unknown_participant", "that participant is not in your room")
            self._by_room[room] = {
                "participant_id": target.id,
                "source": source,
                "by": host.brief(),
            }
        await self.tell_room(host.room)

    async def tell(self, participant: Participant) -> None:
        """Send `participant` their room's spotlight, if it is not what they know."""
        spot = self.of_room(participant.room)
        if participant.id in self._told and self._told[participant.id] == spot:
            return
        self._told[participant.id] = spot
        await safe_send(participant, {"type": "spotlight", "spotlight": spot})

    async def tell_room(self, room: str | None) -> None:
        for participant in self.call.in_room(room):
            await self.tell(participant)

    def follow_people(self) -> None:
        """Drop each spotlight whose person is no longer in its room (left, or moved)."""
        for room, spot in list(self._by_room.items()):
            target = self.call.participants.get(spot["participant_id"])
            if target is None or _room_key(target.room) != room:
                del self._by_room[room]

    async def after_leave(self, participant: Participant) -> None:
        """`participant` left the call: a spotlight on them goes, their room is told."""
        self._told.pop(participant.id, None)
        if self.call.ended:
            return
        self.follow_people()
        await self.tell_room(participant.room)
