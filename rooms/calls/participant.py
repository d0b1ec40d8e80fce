"""One person's connection to a call on this node, and how to send to it safely.

The connection is abstracted as two callables (send, disconnect), so the call
knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rooms.model import CallSettings, ParticipantRecord, Permissions
from rooms.vocabulary import Lesson, Role
from sfu.producer import Producer
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Disconnect = Callable[[], Awaitable[None]]
# (lesson, "joined" | "left", participant, when): for the journal's webhooks.
PresenceObserver = Callable[[Lesson, str, "Participant", datetime], None]


@dataclass
class Participant:
    """One person's connection to this call on this node."""

    record: ParticipantRecord
    send: Send
    disconnect: Disconnect
    jti: str = ""
    token_expires_at: datetime | None = None
    admitted: bool = False
    # Connection details the joined / waiting messages carry (ICE servers, language, ref).
    joined_extra: dict[str, Any] = field(default_factory=dict)
    publisher: PublisherTransport | None = None
    subscriber: SubscriberTransport | None = None
    producers: dict[str, Producer] = field(default_factory=dict)  # by source
    room: str | None = None  # breakout room id; None: the main room
    # Resuming after a dropped WebSocket (rooms/calls/resume.py): the unguessable
    # session id issued at join, when the connection dropped (None: connected),
    # the timer that lets them go after the grace, and the subscribe_offer not
    # answered yet (sent again on resume: it may have gone into the dead socket).
    session: str = field(default_factory=lambda: "s_" + secrets.token_urlsafe(24))
    held_since: datetime | None = None
    hold_task: asyncio.Task[None] | None = None
    pending_offer: dict[str, Any] | None = None
    # A host gave them the floor ("give_floor"): the microphone is theirs to switch on
    # whatever their role may, for this connection, until a host takes it back.
    floor: bool = False

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def receiving(self) -> SubscriberTransport | None:
        """The subscriber connection, unless it is gone (aiortc may close it itself)."""
        sub = self.subscriber
        return sub if sub is not None and not sub.closed else None

    @property
    def user_id(self) -> str:
        return self.record.user_id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def role(self) -> Role:
        return self.record.role

    @property
    def host(self) -> bool:
        return self.record.host

    def to_json(self) -> dict[str, Any]:
        data = self.record.public()
        if self.floor:
            data["floor"] = True
        return data

    def permissions_in(self, settings: CallSettings) -> Permissions:
        """What they may do: their role's rights, and unmuting while they have the floor."""
        permissions = settings.permissions_for(self.role, self.host)
        return replace(permissions, unmute=True) if self.floor else permissions

    def cancel_hold(self) -> None:
        """No longer waiting for this person to come back (resumed, or let go)."""
        task, self.hold_task = self.hold_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def connection_details(self) -> dict[str, Any]:
        """What joined / waiting / resumed carry besides the call: ICE servers, language,
        the request's ref, and how to resume (with this participant's session id)."""
        details = dict(self.joined_extra)
        details["resume"] = {**details.get("resume", {}), "session": self.session}
        return details

    def brief(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


async def safe_send(participant: Participant, message: dict[str, Any]) -> None:
    try:
        await participant.send(message)
    except Exception:  # a gone client must not break the call for others
        logger.debug("send to %s failed", participant.id, exc_info=True)
