"""rooms/admission.py on its own: each rule, and where the doors differ."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from rooms.admission import Admission, Door, Refused
from rooms.model import CallSettings
from rooms.store import MemoryStore
from rooms.vocabulary import Lesson, LessonState, Person, Role

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
# The store forgets a revocation by the real clock (it needs no memory of a token that
# has expired anyway): a revocation in these tests must outlast the run, not NOW.
REVOKED_UNTIL = datetime.now(UTC) + timedelta(days=1)


@dataclass(frozen=True)
class Token:
    user_id: str
    role: Role
    jti: str = "jti-1"
    key_id: str = "demo"
    expires_at: datetime = NOW + timedelta(hours=1)


def lesson(state: LessonState = LessonState.OPEN, starts_in: timedelta = timedelta()) -> Lesson:
    return Lesson(
        id="les_1",
        integration="demo",
        group_id="5a",
        group_title="5А",
        subject="Математика",
        teacher=Person("t-1", "Анна", Role.TEACHER),
        roster=(Person("s-1", "Иван", Role.STUDENT), Person("p-1", "Мария", Role.PARENT)),
        starts_at=NOW + starts_in,
        ends_at=NOW + starts_in + timedelta(minutes=45),
        state=state,
    )


async def refusal(token: Token, the_lesson: Lesson | None, door: Door, store: MemoryStore) -> str:
    admission = Admission(store, early_join=timedelta(minutes=10))
    try:
        await admission.check(token, the_lesson, door, NOW)
    except Refused as exc:
        return f"{exc.status} {exc.code}"
    return "in"


@pytest.mark.parametrize("door", list(Door))
async def test_the_identity_rules_are_the_same_at_every_door(door: Door) -> None:
    store = MemoryStore()
    assert await refusal(Token("s-1", Role.STUDENT), lesson(), door, store) == "in"
    assert await refusal(Token("s-9", Role.STUDENT), lesson(), door, store) == "403 not_in_roster"
    assert await refusal(Token("p-1", Role.STUDENT), lesson(), door, store) == "403 not_in_roster"
    assert await refusal(Token("t-9", Role.TEACHER), lesson(), door, store) == "403 not_in_roster"
    other = Token("s-1", Role.STUDENT, key_id="other")
    assert await refusal(other, lesson(), door, store) == "401 token_invalid"
    await store.revoke_token("jti-1", REVOKED_UNTIL)
    assert await refusal(Token("s-1", Role.STUDENT), lesson(), door, store) == "403 token_revoked"
    guest = Token("g-1", Role.GUEST, jti="jti-g")
    assert await refusal(guest, lesson(), door, store) == "403 guests_not_allowed"
    await store.set_settings("les_1", CallSettings(guests_allowed=True))
    assert await refusal(guest, lesson(), door, store) == "in"


async def test_only_the_join_minds_whether_the_lesson_is_open_now() -> None:
    store = MemoryStore()
    student = Token("s-1", Role.STUDENT)
    early = lesson(starts_in=timedelta(hours=1))
    assert await refusal(student, early, Door.JOIN, store) == "409 lesson_not_open"
    assert await refusal(student, early, Door.INFO, store) == "in"  # it says can_join: false
    assert await refusal(student, early, Door.HISTORY, store) == "in"
    ended = lesson(LessonState.ENDED)
    assert await refusal(student, ended, Door.JOIN, store) == "409 lesson_ended"
    assert await refusal(student, ended, Door.HISTORY, store) == "in"
    # The teacher may come in before the lesson is opened.
    created = lesson(LessonState.CREATED)
    assert await refusal(Token("t-1", Role.TEACHER), created, Door.JOIN, store) == "in"
    assert await refusal(student, created, Door.JOIN, store) == "409 lesson_not_open"


async def test_history_takes_an_expired_token_but_not_a_guests_and_lives_without_the_lesson() -> (
    None
):
    store = MemoryStore()
    await store.set_settings("les_1", CallSettings(guests_allowed=True))
    expired = NOW - timedelta(minutes=1)
    pupil = Token("s-1", Role.STUDENT, expires_at=expired)
    guest = Token("g-1", Role.GUEST, expires_at=expired)
    assert await refusal(pupil, lesson(), Door.HISTORY, store) == "in"
    assert await refusal(guest, lesson(), Door.HISTORY, store) == "401 token_invalid"
    # A lesson the store forgot: only the history door opens, on the token alone.
    assert await refusal(pupil, None, Door.HISTORY, store) == "in"
    assert await refusal(pupil, None, Door.JOIN, store) == "404 lesson_not_found"
    await store.revoke_token("jti-1", REVOKED_UNTIL)
    assert await refusal(pupil, None, Door.HISTORY, store) == "403 token_revoked"
