"""A node's restart with a durable store (Redis): what each person had comes back.

Most of a call's state is in the store already as it changes: the participant
records (co-host, microphone and camera as the host left them), the raised hands
(by participant id, in raise order), settings and permissions by role, breakout
rooms (by user id, with a close countdown's deadline: Call counts it down again
when the first person is back), polls, the chat. What only this node knew is
which participant id a person had (the hands name it, other pages' tiles too),
the floor a host gave them, and the spotlight. `suspend` writes that per person
when the node drains (signalling/drain.py), with a time to live of the resume
grace plus a margin for the restart; `restore` gives it back when the same
person (same lesson, the token's user id and role) joins again: the same
participant id, so their hand is still theirs and in its place, co-host and host
mutes kept, the floor, past the waiting room.

Why at the drain and not as it changes: a SIGTERM'd node always drains, and the
few node-local things would otherwise cost a store write on every change for an
event that happens once a deploy. A killed node (SIGKILL, a crash) loses the floor
and the spotlight; the call, started again on another node (or this one), lets each
person take back their participant record as the store still has it (`_adopt`:
the same id, so the raised hands, co-host and host mutes are theirs again).
Why on the join and not on `resume`: the peer connections died with the process,
so the page must set its media up afresh, which its fresh join after a restart
(web_client/static/js/session.js rejoinAfterRestart) already does; the same
admission checks as any join apply.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from rooms.calls.core import CallCore, now
from rooms.calls.participant import Participant
from rooms.calls.spotlight import Spot, Spotlights
from rooms.model import ParticipantRecord

logger = logging.getLogger(__name__)

# Time for the node to stop and start again, on top of the resume grace.
RESTART_MARGIN_S = 60


class Restarts:
    def __init__(self, call: CallCore, spotlights: Spotlights) -> None:
        self.call = call
        self.spotlights = spotlights
        self.suspended = False  # the node drains for a restart: the call is kept as it is
        self._spots: dict[str, Spot] = {}  # participant id -> their spotlight, until let in
        self._orphaned: dict[str, ParticipantRecord] | None = None  # see _orphans

    async def suspend(self, ttl_seconds: int) -> int:
        """Keep every admitted person's node-local state in the store for `ttl_seconds`;
        how many were kept. From here the call's end leaves its polls open."""
        call = self.call
        self.suspended = True
        for person in list(call.participants.values()):
            spot = self.spotlights.of_room(person.room)
            state: dict[str, Any] = {
                "record": person.record.to_json(),
                "floor": person.floor,
                "spotlight": spot if spot and spot["participant_id"] == person.id else None,
            }
            await call.store.put_restart_state(call.id, person.user_id, state, ttl_seconds)
        return len(call.participants)

    async def restore(self, participant: Participant) -> bool:
        """`participant` joins: if they were in the call before this node restarted,
        they take back what they had; True if so (then they skip the waiting room)."""
        call = self.call
        orphan = (await self._orphans()).pop(participant.user_id, None)
        state = await call.store.take_restart_state(call.id, participant.user_id)
        if state is None:
            self._adopt(participant, orphan)
            return False  # an adopted record does not skip the waiting room
        try:
            old = ParticipantRecord.from_json(state["record"])
        except (KeyError, TypeError, ValueError):
            logger.warning("unreadable restart state of %s in %s", participant.user_id, call.id)
            return False
        if old.role is not participant.role or old.id in call.participants:
            return False  # another role now (a new token), or that id is someone's
        # No screen is shared yet on the new connection.
        participant.record = replace(old, name=participant.name, screen=False)
        participant.floor = bool(state.get("floor"))
        if isinstance(state.get("spotlight"), dict):
            self._spots[old.id] = state["spotlight"]
        await self._continue_presence(participant)
        logger.info("%s back in %s after the restart as %s", old.user_id, call.id, old.id)
        return True

    async def _orphans(self) -> dict[str, ParticipantRecord]:
        """The store's people of this call when it first started on this node: left by a
        node that died without a drain (SIGKILL, a crash) or stopped, by user id."""
        if self._orphaned is None:
            records = await self.call.store.participants(self.call.id)
            present = self.call.participants
            self._orphaned = {r.user_id: r for r in records if r.id not in present}
        return self._orphaned

    def _adopt(self, participant: Participant, orphan: ParticipantRecord | None) -> None:
        """A person whose node died takes back their participant id (their raised hand,
        in its place, names it), co-host and host mutes; the floor and a spotlight were
        the dead node's only."""
        call = self.call
        if orphan is None or orphan.role is not participant.role or orphan.id in call.participants:
            return
        participant.record = replace(orphan, name=participant.name, screen=False)
        logger.info("%s back in %s after a lost node as %s", orphan.user_id, call.id, orphan.id)

    async def _continue_presence(self, participant: Participant) -> None:
        """Attendance: the stretch of presence the restart cut goes on from that moment,
        so the restart costs no time present (the join after this changes nothing)."""
        call = self.call
        records = {r.user_id: r for r in await call.store.attendance(call.id)}
        cut: datetime | None = None
        if participant.user_id in records:
            cut = records[participant.user_id].last_leave
        who = (participant.user_id, participant.name, participant.role.value)
        await call.store.record_join(call.id, *who, cut or now())

    async def after_let_in(self, participant: Participant) -> None:
        """A spotlight that was on them is on again (their room is told)."""
        spot = self._spots.pop(participant.id, None)
        if spot is not None and self.spotlights.of_room(participant.room) is None:
            self.spotlights.put(participant.room, spot)
            await self.spotlights.tell_room(participant.room)
