"""Breakout rooms of a call: configuring, assigning, opening, visiting, closing.

The rules are breakout/model.py's (BreakoutState, in the store); `BreakoutControl`
receives the call's core, takes its lock for each change and has the core move
people's media between rooms (`move`: renegotiation, no new connections).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from breakout.model import BreakoutError, BreakoutState
from rooms.calls.chat_control import checked_text, post_text
from rooms.calls.core import CallCore, now
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant

# People times the room's size moved in one step (one pass of the event loop): a
# room of 3 takes its people at once (one offer each, naming all the roommates);
# the main room of 150 a few at a time.
MOVE_WORK_PER_TURN = 600

# Called with the rooms' ids, under the call's lock, before everyone comes back.
BeforeClose = Callable[[set[str]], Awaitable[None]]


class BreakoutControl:
    def __init__(self, call: CallCore, before_close: BeforeClose | None = None) -> None:
        self.call = call
        self._before_close = before_close  # what ends with the rooms (their polls)
        self._closing: asyncio.Task[None] | None = None  # the close countdown, if running

    async def _state(self) -> BreakoutState:
        return await self.call.store.get_breakout(self.call.id) or BreakoutState()

    async def _take_turn(self) -> None:
        # A move or a notice is a little CPU, but for 150 people at once it was a
        # stall of every lesson on the node: one person per pass of the event loop.
        if self.call.media is not None:
            await self.call.media.turns.take()

    async def _save(self, state: BreakoutState) -> None:
        call = self.call
        await call.store.set_breakout(call.id, state)

        async def tell(participant: Participant) -> None:
            await self._take_turn()
            await call.send_breakout(participant, state)

        await asyncio.gather(*(tell(p) for p in list(call.participants.values())))

    async def _apply_rooms(self, state: BreakoutState) -> None:
        """Put everybody present where `state` says they belong, a room at a time
        (the people of one room in one step: each of them gets one offer with all
        their roommates, not one per roommate as they arrive)."""
        moves: dict[str | None, list[Participant]] = {}
        for participant in self.call.participants.values():
            room = state.room_of(participant.user_id)
            if participant.room != room:
                moves.setdefault(room, []).append(participant)
        for room, people in moves.items():
            # A move subscribes the mover to everyone in the room and everyone to the
            # mover: work of the room's size. Back to a main room of 150 in one step was
            # a stall of half a second for every lesson on the node; so a large room
            # takes its people a few at a time, a turn each.
            size = len(self.call.in_room(room)) + len(people)
            step = max(1, MOVE_WORK_PER_TURN // size)
            for first in range(0, len(people), step):
                await self._take_turn()
                for participant in people[first : first + step]:
                    if participant.id in self.call.participants:  # not gone meanwhile
                        self.call.move(participant, room)

    async def configure(self, host: Participant, count: int, names: list[str] | None) -> None:
        self.call.require_host(host)
        wanted: list[str | None] = [None] * count
        for index, name in enumerate((names or [])[:count]):
            wanted[index] = name
        async with self.call.locked():
            current = await self._state()
            state = _rules(lambda: current.configure(wanted))
            await self._save(state)

    async def assign(self, host: Participant, assignments: dict[str, str | None]) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            changes = {call.target(pid).user_id: room for pid, room in assignments.items()}
            current = await self._state()
            state = _rules(lambda: current.assign(changes))
            await self._apply_rooms(state)
            await self._save(state)

    async def assign_random(self, host: Participant, include_hosts: bool) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            current = await self._state()
            people = [p.user_id for p in call.participants.values() if include_hosts or not p.host]
            if current.opened:  # only late joiners; the others stay where they are
                people = [u for u in people if u not in current.assignments]
            state = _rules(lambda: current.assign_random(people))
            await self._apply_rooms(state)
            await self._save(state)

    async def open(self, host: Participant, minutes: float | None, allow_return: bool) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            current = await self._state()
            state = _rules(lambda: current.open(now(), minutes, allow_return))
            await self._apply_rooms(state)
            await self._save(state)
            await call.post_system(
                "breakout_opened", {"count": len(state.rooms), "minutes": minutes}, room="*"
            )

    async def move(self, host: Participant, participant_id: str, room: str | None) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            target = call.target(participant_id)
            current = await self._state()
            state = _rules(lambda: current.assign({target.user_id: room}))
            await self._apply_rooms(state)
            await self._save(state)

    async def visit(self, host: Participant, room: str | None) -> None:
        self.call.require_host(host)
        async with self.call.locked():
            current = await self._state()
            if not current.opened:
                raise CallError("breakout_closed", "the rooms are not open")
            state = _rules(lambda: current.assign({host.user_id: room}))
            if room is not None:
                state = state.clear_help(room)
            await self._apply_rooms(state)
            await self._save(state)

    async def broadcast(self, host: Participant, text: str) -> None:
        call = self.call
        call.require_host(host)
        await post_text(call, host, checked_text(call, text), room="*")

    async def help(self, participant: Participant) -> None:
        self.call.require_admitted(participant)
        if participant.room is None:
            raise CallError("breakout_closed", "you are not in a breakout room")
        async with self.call.locked():
            room = participant.room
            current = await self._state()
            await self._save(_rules(lambda: current.ask_help(room)))

    async def return_to_main(self, participant: Participant) -> None:
        self.call.require_admitted(participant)
        async with self.call.locked():
            current = await self._state()
            if not current.opened or participant.room is None:
                raise CallError("breakout_closed", "you are in the main room already")
            if not current.allow_return and not participant.host:
                raise CallError("not_permitted", "the host has not allowed returning")
            state = current.assign({participant.user_id: None})
            await self._apply_rooms(state)
            await self._save(state)

    async def close(self, host: Participant, countdown: float) -> None:
        self.call.require_host(host)
        async with self.call.locked():
            current = await self._state()
            state = _rules(lambda: current.start_closing(now(), countdown))
            await self._save(state)
        if self._closing is not None:
            self._closing.cancel()
        self._closing = asyncio.ensure_future(self._close_after(countdown))

    async def resume_countdown(self) -> None:
        """A close countdown the store says is running that no one here counts (this node
        restarted during it, rooms/calls/restart.py): count down what is left of it."""
        state = await self.call.store.get_breakout(self.call.id)
        if self._closing is None and state and state.opened and state.closing_at:
            left = max(0.0, (state.closing_at - now()).total_seconds())
            self._closing = asyncio.ensure_future(self._close_after(left))

    async def _close_after(self, countdown: float) -> None:
        await asyncio.sleep(countdown)
        call = self.call
        async with call.locked():
            current = await self._state()
            if self._before_close is not None:
                await self._before_close({room.id for room in current.rooms})
            state = current.close()
            # A host's place in a room was a visit: it does not outlive the rooms.
            visits = {p.user_id: None for p in call.participants.values() if p.host}
            state = state.assign({u: r for u, r in visits.items() if u in state.assignments})
            await self._apply_rooms(state)
            await self._save(state)
            await call.post_system("breakout_closed", {}, room="*")
        self._closing = None
        await self.close_rooms()

    async def close_rooms(self) -> None:
        """Stop a close countdown (unless it is what calls this) and close the rooms' routers."""
        if self._closing is not None and self._closing is not asyncio.current_task():
            self._closing.cancel()
        self._closing = None
        await self.call.close_room_routers()


def _rules(change: Callable[[], BreakoutState]) -> BreakoutState:
    """Apply a breakout rule, turning its refusal into a CallError."""
    try:
        return change()
    except BreakoutError as exc:
        raise CallError(exc.code, exc.message) from None
