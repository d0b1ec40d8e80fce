"""Polls in a call: a host asks, the people in the room answer, the result goes into
the chat (rooms/polls.py has the rules; the store keeps polls and answers).

A poll belongs to the room it was asked in (the main room or a breakout room): only
the people there see it, answer it and get its results, and its host there closes
it. Everyone in the room gets the `polls` message (the room's open polls, as the
receiver may see them) whenever a poll opens, closes or is shared, after `joined`,
`resumed` and every change of room; results go to the room's hosts (and to everyone
once shared) at most every RESULTS_INTERVAL while answers come in.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from rooms.calls.core import CallCore, now
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant, safe_send
from rooms.model import ChatMessage
from rooms.polls import (
    PollAnswer,
    PollError,
    PollRecord,
    check_room_for_poll,
    checked_choices,
    checked_question,
    tally,
)
from rooms.vocabulary import Role

# Answers coming in are shown at most this often (a class answering at once is one
# update, not thirty).
RESULTS_INTERVAL = 0.3
Snapshot = list[tuple[PollRecord, list[PollAnswer]]]
T = TypeVar("T")


class PollControl:
    def __init__(self, call: CallCore) -> None:
        self.call = call
        self._pending: dict[str, asyncio.Task[None]] = {}  # room -> results about to go out

    # ------------------------------------------------------------------ requests

    async def create(
        self,
        host: Participant,
        question: str,
        options: list[str],
        multiple: bool,
        anonymous: bool,
    ) -> PollRecord:
        call = self.call
        call.require_host(host)
        call.require_admitted(host)
        question, answers = _rules(lambda: checked_question(question, options))
        room = host.room or ""
        async with call.locked():
            polls = await call.store.polls(call.id)
            _rules(lambda: check_room_for_poll(polls, room))
            poll = PollRecord(
                id="poll_" + secrets.token_hex(6),
                room=room,
                question=question,
                options=answers,
                multiple=multiple,
                anonymous=anonymous,
                author_id=host.id,
                author_user_id=host.user_id,
                author_name=host.name,
                author_role=host.role.value,
                created_at=now(),
            )
            await call.store.put_poll(call.id, poll)
        await self.send_room(room)
        return poll

    async def answer(self, participant: Participant, poll_id: str, choices: list[int]) -> None:
        call = self.call
        call.require_admitted(participant)
        # Under the lock: an answer is either counted in the closing card or refused.
        async with call.locked():
            poll = await self._poll_here(participant, poll_id)
            picked = _rules(lambda: checked_choices(poll, choices))
            answer = PollAnswer(participant.user_id, participant.name, picked, now())
            if not await call.store.answer_poll(call.id, poll.id, answer):
                raise CallError(
                    "already_answered", "you have answered this poll already; an answer is final"
                )
        await self.send_state(participant)
        self._results_soon(poll.room)

    async def share(self, host: Participant, poll_id: str, shared: bool) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            poll = await self._poll_here(host, poll_id)
            await call.store.put_poll(call.id, replace(poll, shared=shared))
        await self.send_room(poll.room)

    async def close(self, host: Participant, poll_id: str) -> ChatMessage:
        call = self.call
        call.require_host(host)
        async with call.locked():
            poll = await self._poll_here(host, poll_id)
            message = await self._close(poll)
        await call.post_chat(message)
        await self.send_room(poll.room)
        return message

    # ------------------------------------------------------------------ closing

    async def _close(self, poll: PollRecord) -> ChatMessage:
        """Close `poll` and keep its result in the chat log (delivered by the caller)."""
        call = self.call
        closed = poll.closed(now())
        await call.store.put_poll(call.id, closed)
        results = tally(closed, await call.store.poll_answers(call.id, poll.id), names=False)
        card = ChatMessage(
            id="",
            kind="poll",
            text=poll.question,
            at=closed.closed_at or now(),
            author_id=poll.author_id,
            author_user_id=poll.author_user_id,
            author_name=poll.author_name,
            author_role=Role(poll.author_role),
            data={
                "event": "poll_closed",
                "poll_id": poll.id,
                "question": poll.question,
                "options": list(poll.options),
                "multiple": poll.multiple,
                "anonymous": poll.anonymous,
                **results,
            },
            room=poll.room,
        )
        return await call.store.append_chat(call.id, card)

    async def close_in_rooms(self, rooms: set[str] | None) -> None:
        """Close the open polls of these rooms (None: every room), their results kept in
        the chat: breakout rooms that close, the call that ends."""
        call = self.call
        closed = set()
        for poll in await call.store.polls(call.id):
            if poll.open and (rooms is None or poll.room in rooms):
                message = await self._close(poll)
                closed.add(poll.room)
                if not call.ended:
                    await call.post_chat(message)
        if not call.ended:
            for room in closed:  # their cards leave the pages (people are still there)
                await self.send_room(room)

    async def stop(self) -> None:
        tasks, self._pending = list(self._pending.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ what people see

    async def _poll_here(self, participant: Participant, poll_id: str) -> PollRecord:
        """The open poll `poll_id` of the participant's room (others' polls are unknown)."""
        room = participant.room or ""
        for poll in await self.call.store.polls(self.call.id):
            if poll.id == poll_id and poll.room == room:
                if not poll.open:
                    raise CallError("poll_closed", "this poll is closed")
                return poll
        raise CallError("unknown_poll", f"no poll {poll_id[:64]!r} in your room")

    async def open_in(self, room: str | None, any_room: bool = False) -> bool:
        """Are there open polls in this room (None: the main room), or in any room?"""
        polls = await self.call.store.polls(self.call.id)
        return any(p.open and (any_room or p.room == (room or "")) for p in polls)

    async def _snapshot(self, room: str) -> Snapshot:
        store, call_id = self.call.store, self.call.id
        polls = [p for p in await store.polls(call_id) if p.open and p.room == room]
        return [(poll, await store.poll_answers(call_id, poll.id)) for poll in polls]

    async def send_state(self, participant: Participant, snapshot: Snapshot | None = None) -> None:
        """`polls` to one person: their room's open polls as they may see them."""
        if snapshot is None:
            snapshot = await self._snapshot(participant.room or "")
        views = [_view(poll, answers, participant) for poll, answers in snapshot]
        await safe_send(participant, {"type": "polls", "polls": views})

    async def send_room(self, room: str, hosts_only: bool = False) -> None:
        snapshot = await self._snapshot(room)
        people = [
            p
            for p in self.call.in_room(room or None)
            if p.host or not hosts_only or any(poll.shared for poll, _ in snapshot)
        ]
        await asyncio.gather(*(self.send_state(p, snapshot) for p in people))

    def _results_soon(self, room: str) -> None:
        if room in self._pending or self.call.ended:
            return

        async def later() -> None:
            await asyncio.sleep(RESULTS_INTERVAL)
            self._pending.pop(room, None)
            await self.send_room(room, hosts_only=True)

        self._pending[room] = asyncio.ensure_future(later())


def _view(poll: PollRecord, answers: list[PollAnswer], viewer: Participant) -> dict[str, Any]:
    mine = next((a.choices for a in answers if a.voter == viewer.user_id), None)
    visible = viewer.host or poll.shared
    return {
        "id": poll.id,
        "question": poll.question,
        "options": list(poll.options),
        "multiple": poll.multiple,
        "anonymous": poll.anonymous,
        "shared": poll.shared,
        "author": {"id": poll.author_id, "name": poll.author_name},
        "created_at": poll.created_at.isoformat(),
        "answer": list(mine) if mine is not None else None,
        "results": tally(poll, answers, names=viewer.host) if visible else None,
    }


def _rules(check: Callable[[], T]) -> T:
    """Apply a poll rule, turning its refusal into a CallError."""
    try:
        return check()
    except PollError as exc:
        raise CallError(exc.code, exc.message) from None
