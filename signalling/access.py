"""The HTTP side of admission: read a join token, ask rooms.admission, answer in kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from rooms.admission import Admission, Door, Refused
from rooms.lessons import Lesson, LessonNotFound
from signalling.keys import LESSONS, SETTINGS, TOKENS
from signalling.tokens import JoinClaims


def bearer_token(request: web.Request) -> str | None:
    """The credential of `Authorization: Bearer …`, if the request has one."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def history_claims(request: web.Request, token: str, lesson_id: str) -> JoinClaims:
    """The claims of a join token for `lesson_id` that may still read what the call left
    (its chat, its recordings): valid, or expired for less than `chat_history_days`.
    Raises TokenError."""
    days = request.app[SETTINGS].chat_history_days
    return request.app[TOKENS].verify_for_history(
        token, lesson_id, datetime.now(UTC), timedelta(days=days)
    )


def admission(app: web.Application) -> Admission:
    # The registry's store: app[STORE] in the server, the bare test apps' own otherwise.
    early = timedelta(minutes=app[SETTINGS].early_join_minutes)
    return Admission(app[LESSONS].store, early)


async def admitted_lesson(
    app: web.Application,
    claims: JoinClaims,
    door: Door,
    *,
    forgotten_ok: bool = False,
) -> Lesson | None:
    """The lesson of `claims` if they may pass `door`; raises Refused.

    `forgotten_ok`: a lesson the store no longer knows is None rather than 404
    (recordings outlive a memory store's lessons).
    """
    try:
        lesson: Lesson | None = await app[LESSONS].get(claims.lesson_id)
    except LessonNotFound:
        if not forgotten_ok:
            raise Refused("lesson_not_found", "There is no such lesson.", 404) from None
        lesson = None
    await admission(app).check(claims, lesson, door, datetime.now(UTC))
    return lesson
