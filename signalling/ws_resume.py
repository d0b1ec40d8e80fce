"""`resume`: a connection takes over a participant whose previous connection dropped.

A resume names the session id issued at join (`joined.resume.session`), the
join token (the same person, still admitted: not revoked, lesson not ended)
and the last chat message seen. A session that is unknown, expired or another
person's is refused with `resume_failed`, and the connection stays open for a
fresh `join`; such refusals count as refused joins (guessing is throttled).
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from rooms.admission import Door, Refused
from rooms.calls import Call, Participant
from rooms.lessons import Lesson
from signalling.access import admitted_lesson
from signalling.keys import CALLS, TOKENS, WS_COUNTS
from signalling.log_format import log_as
from signalling.protocol import ProtocolError
from signalling.ratelimit import LIMITS, join_rate_limited
from signalling.tokens import TokenError

RESUME_FAILED = "resume_failed"


class Connection(Protocol):
    """What a resume needs of the WebSocket session (signalling.ws.Session)."""

    app: web.Application
    peer: str | None
    call: Call | None
    participant: Participant | None

    async def send(self, message: dict[str, Any]) -> None: ...

    async def disconnected_by_call(self) -> None: ...

    def connection_details(
        self, message: dict[str, Any], user_id: str, lesson: Lesson
    ) -> dict[str, Any]: ...


async def resume(session: Connection, message: dict[str, Any]) -> None:
    """Attach `session` to the participant of `message["session"]`; ProtocolError if not."""
    limits = session.app[LIMITS]
    ref = message.get("id")
    retry = limits.join_allowed(session.peer)
    if retry is not None:
        raise join_rate_limited(retry, ref)
    counts = session.app[WS_COUNTS]
    try:
        await _resume_checked(session, message)
        counts.resumes += 1
    except ProtocolError as exc:
        counts.resumes_refused += 1
        # Counted per address like a forged token: a session id is a secret too.
        code = "token_invalid" if exc.code == RESUME_FAILED else exc.code
        limits.join_failed(session.peer, None, code)
        raise


async def _resume_checked(session: Connection, message: dict[str, Any]) -> None:
    app, ref = session.app, message.get("id")
    found = app[CALLS].find_session(message["session"])
    if found is None:
        raise ProtocolError(RESUME_FAILED, "no such session (it expired): join again", ref)
    call, participant = found
    try:
        claims = app[TOKENS].verify(message["token"], call.id)
    except TokenError as exc:
        raise ProtocolError("token_invalid", str(exc), ref) from None
    if claims.user_id != participant.user_id:
        raise ProtocolError(RESUME_FAILED, "this session is not yours: join again", ref)
    try:
        await admitted_lesson(app, claims, Door.JOIN)
    except Refused as exc:
        raise ProtocolError(exc.code, exc.message, ref) from None
    # The session owns the participant from here: should the new socket fail while
    # the state is sent, it is this session's drop that holds them again.
    session.call, session.participant = call, participant
    log_as(call.id, participant.id, participant.user_id)
    await call.resume(
        participant,
        session.send,
        session.disconnected_by_call,
        message.get("last_chat_seq", 0),
        # Fresh TURN credentials too: a connection the page makes from now on uses them.
        session.connection_details(message, participant.user_id, call.lesson),
    )
