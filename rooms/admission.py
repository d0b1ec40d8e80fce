"""Who may come in: one decision for every door of a call.

The call WebSocket (join), the pre-join screen (/call/{id}/info) and what a
call leaves behind (its chat history, its recordings) all ask here, with the
claims of a verified join token, so a token one door refuses no other door
lets through. The doors differ only where they must: history accepts a token
that expired within the documented window, and only join and info care
whether the lesson is open now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from rooms.lessons import Lesson, LessonState, Role
from rooms.store import Store


class Door(StrEnum):
    JOIN = "join"  # the call WebSocket
    INFO = "info"  # the pre-join screen
    HISTORY = "history"  # chat and recordings, during and after the call


class Credential(Protocol):
    """What admission needs of a verified join token (signalling.tokens.JoinClaims)."""

    @property
    def user_id(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def jti(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...


class Refused(Exception):
    """Not let in; `code` is the protocol / API error code, `status` its HTTP status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Admission:
    """The rules' settings: students may join this long before the start."""

    store: Store
    early_join: timedelta

    async def check(
        self, credential: Credential, lesson: Lesson | None, door: Door, now: datetime
    ) -> None:
        """Raise Refused unless `credential` may pass `door` of `lesson`'s call now.

        `lesson` None: the store no longer knows it (a memory store after a
        restart); only a history door may then still open, on the token alone.
        """
        if lesson is None:
            if door is not Door.HISTORY:
                raise Refused("lesson_not_found", "this lesson does not exist", 404)
        else:
            self._check_identity(credential, lesson)
            if door is Door.JOIN:
                self.check_open(credential.role, lesson, now)
        if door is Door.HISTORY and credential.role is Role.GUEST and credential.expires_at <= now:
            raise Refused("token_invalid", "token expired", 401)
        if await self.store.is_token_revoked(credential.jti):
            raise Refused("token_revoked", "you were removed from this call", 403)
        if lesson is None:
            return
        if (
            credential.role is Role.GUEST
            and not (await self.store.get_settings(lesson.id)).guests_allowed
        ):
            raise Refused("guests_not_allowed", "guests may not join this call", 403)

    def check_open(self, role: Role, lesson: Lesson, now: datetime) -> None:
        """Raise Refused unless the lesson lets `role` in at `now` (ended, not open yet)."""
        if lesson.state is LessonState.ENDED:
            raise Refused("lesson_ended", "the lesson has ended", 409)
        if not lesson.joinable_by(role, now, self.early_join):
            raise Refused(
                "lesson_not_open",
                f"the lesson has not started yet (starts {lesson.starts_at.isoformat()})",
                409,
            )

    @staticmethod
    def _check_identity(credential: Credential, lesson: Lesson) -> None:
        if lesson.integration != credential.key_id:
            # Signed by another journal's key: it cannot open this journal's lesson.
            raise Refused("token_invalid", "token is not for this lesson", 401)
        # The roster rules, also for tokens a journal signed itself.
        if not lesson.admits(credential.user_id, credential.role):
            raise Refused(
                "not_in_roster",
                f"{credential.user_id} is not this lesson's {credential.role.value}",
                403,
            )
