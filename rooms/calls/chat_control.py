"""The call's chat: a person's message, checked, filtered and delivered to their room.

`ChatControl` receives the call's core; the policy (limits, filter, history window)
is the core's, the rate (per person, shared by the nodes) the store's. A host's
message to every breakout room is in breakout_control.py.
"""

from __future__ import annotations

import math

from rooms.calls.core import CallCore, now
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant
from rooms.chat import ChatError, prepare_message
from rooms.model import ChatMessage


class ChatControl:
    def __init__(self, call: CallCore) -> None:
        self.call = call

    async def chat_send(self, participant: Participant, text: str) -> ChatMessage:
        call = self.call
        call.require_admitted(participant)
        if not (await call.permissions_of(participant)).chat:
            raise CallError("not_permitted", "you may not write in this chat")
        text = checked_text(call, text)
        # Per person (not per connection) and in the store: a reconnect, or
        # another node, does not start a fresh window.
        limits = call.chat.limits
        wait = await call.store.rate_hit(
            f"chat:{call.id}:{participant.user_id}", limits.rate_messages, limits.rate_window
        )
        if wait is not None:
            raise CallError(
                "chat_rate_limited", f"too many messages: try again in {math.ceil(wait)} s"
            )
        filtered = False
        if call.chat.profanity is not None:
            text, filtered = call.chat.profanity.filter(text)
        return await post_text(call, participant, text, participant.room or "", filtered)


async def post_text(
    call: CallCore, author: Participant, text: str, room: str, filtered: bool = False
) -> ChatMessage:
    """Keep `author`'s message in the chat log and deliver it to `room` ("*": every room)."""
    message = await call.store.append_chat(
        call.id,
        ChatMessage(
            room=room,
            id="",
            kind="text",
            text=text,
            at=now(),
            author_id=author.id,
            author_user_id=author.user_id,
            author_name=author.name,
            author_role=author.role,
            filtered=filtered,
        ),
    )
    await call.post_chat(message)
    return message


def checked_text(call: CallCore, text: str) -> str:
    """The message as the chat keeps it, or the chat's refusal as a CallError."""
    try:
        return prepare_message(text, call.chat.limits)
    except ChatError as exc:
        raise CallError(f"chat_{exc.code}", exc.message) from None
