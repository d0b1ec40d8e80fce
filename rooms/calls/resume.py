"""Resuming: a person whose WebSocket dropped is held for a grace period, not let go.

While held, the participant keeps everything: identity, role, hand, room, rights,
media state, place in the waiting room, and their peer connections (which never
depended on the WebSocket) with their producers and consumers. Nobody is told
they left and attendance counts no leave. Messages for them are dropped: on
resume they get the state as it is then (`resumed`), the chat messages they
missed, and the subscribe offer they did not answer. After the grace they leave
as any leaver does, as of the moment the connection dropped.

`Resumption` receives the call's core (errors, participant <- core <- concerns).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rooms.calls.core import CallCore, now
from rooms.calls.participant import Disconnect, Participant, Send
from rooms.model import ChatMessage

logger = logging.getLogger(__name__)

OnExpired = Callable[[], Awaitable[None]]


def _ids(call: CallCore, participant: Participant) -> dict[str, str]:
    """Log record fields naming whom a line is about (signalling/log_format.py)."""
    return {"call_id": call.id, "participant_id": participant.id, "user_id": participant.user_id}


async def _discard(message: dict[str, Any]) -> None:
    """A held participant's messages: the resume sends the state that matters."""


class Outlet:
    """A resumed connection's sender: holds messages back until the `resumed` message
    has gone, then drops the chat messages that message already replayed."""

    def __init__(self, send: Send, replayed_up_to: int) -> None:
        self._send = send
        self._buffer: list[dict[str, Any]] | None = []
        self._replayed_up_to = replayed_up_to

    async def __call__(self, message: dict[str, Any]) -> None:
        if self._buffer is not None:
            self._buffer.append(message)
            return
        await self._deliver(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("type") == "chat_message":
            # Posted before the replay was read: it was in the replay.
            if message["message"].get("seq", 0) <= self._replayed_up_to:
                return
        await self._send(message)

    async def open(self) -> None:
        """Send what waited, in order, then everything as it comes."""
        while self._buffer:
            await self._deliver(self._buffer.pop(0))
        self._buffer = None


class Resumption:
    def __init__(self, call: CallCore) -> None:
        self.call = call
        self._closing: set[asyncio.Task[None]] = set()  # replaced connections closing

    def find(self, session: str) -> Participant | None:
        """The participant (admitted or waiting) that `session` was issued to."""
        for participant in (*self.call.participants.values(), *self.call.waiting.values()):
            if hmac.compare_digest(participant.session.encode(), session.encode()):
                return participant
        return None

    async def hold(
        self, participant: Participant, owner: Disconnect, grace: float, on_expired: OnExpired
    ) -> bool:
        """`owner`'s connection dropped: keep the participant for `grace` seconds.

        False (nothing done) when that connection no longer owns the participant
        (resumed elsewhere, already let go) or the call has ended."""
        call = self.call
        async with call.locked():
            present = participant.id in call.participants or participant.id in call.waiting
            if call.ended or not present or participant.disconnect != owner:
                return False
            participant.send = _discard
            participant.held_since = now()
            participant.hold_task = asyncio.ensure_future(
                self._expire(participant, grace, on_expired)
            )
        logger.info(
            "%s in %s held for %g s",
            participant.user_id,
            call.id,
            grace,
            extra=_ids(call, participant),
        )
        return True

    async def _expire(self, participant: Participant, grace: float, on_expired: OnExpired) -> None:
        await asyncio.sleep(grace)
        call = self.call
        async with call.locked():
            if participant.hold_task is not asyncio.current_task():
                return  # resumed (or let go) meanwhile
            participant.hold_task = None
            await call.leave(participant, at=participant.held_since)
        logger.info(
            "%s in %s did not come back: left",
            participant.user_id,
            call.id,
            extra=_ids(call, participant),
        )
        await on_expired()

    async def resume(
        self,
        participant: Participant,
        send: Send,
        disconnect: Disconnect,
        last_chat_seq: int,
        details: dict[str, Any],
    ) -> None:
        """Attach `participant` to a new connection (send, disconnect).

        A connection still attached (the old socket is not dead yet) is replaced:
        it gets `call_ended` with reason `replaced` and is closed."""
        call = self.call
        async with call.locked():
            old_send, old_disconnect = participant.send, participant.disconnect
            was_held = participant.held_since is not None
            participant.cancel_hold()
            participant.held_since = None
            history = await call.room_history(participant.room) if participant.admitted else []
            replayed_up_to = max([last_chat_seq, *(m.seq for m in history)])
            outlet = Outlet(send, replayed_up_to)
            participant.send, participant.disconnect = outlet, disconnect
            participant.joined_extra = details
            if not was_held:
                # In the background: a half-open old socket may take seconds to close.
                task = asyncio.ensure_future(_let_go_of(old_send, old_disconnect))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            missed = [m for m in history if m.seq > last_chat_seq]
            await send(await self._state(participant, missed))
            await self._catch_up(participant, send)
            await outlet.open()
        logger.info(
            "%s in %s resumed (%d chat messages replayed)",
            participant.user_id,
            call.id,
            len(missed),
            extra=_ids(call, participant),
        )

    async def _state(self, participant: Participant, missed: list[ChatMessage]) -> dict[str, Any]:
        """`resumed`: the call as it is now, for the person as they are now."""
        call = self.call
        if not participant.admitted:
            return {
                "type": "resumed",
                "state": "waiting",
                "call": call.describe(),
                "self": participant.to_json(),
                **participant.connection_details(),
            }
        state = await call.joined_message(participant, missed)
        return {**state, "type": "resumed", "state": "in_call"}

    async def _catch_up(self, participant: Participant, send: Send) -> None:
        """What a joiner gets after `joined`, and the offer the dead socket swallowed."""
        call = self.call
        if not participant.admitted:
            return
        breakout = await call.store.get_breakout(call.id)
        if breakout is not None:
            await send({"type": "breakout", "state": breakout.to_json(), "room": participant.room})
        if participant.pending_offer is not None:
            await send(participant.pending_offer)


async def _let_go_of(send: Send, disconnect: Disconnect) -> None:
    """Tell a replaced connection why, and close it."""
    try:
        await send({"type": "call_ended", "reason": "replaced"})
        await disconnect()
    except Exception:  # the old connection may be half gone
        logger.debug("closing the replaced connection failed", exc_info=True)
