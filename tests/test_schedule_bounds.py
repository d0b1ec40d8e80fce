"""Schedules within sane bounds, and a sweep that one bad lesson cannot stop (issue 9).

A lesson ending 9999-12-31 was accepted; its tokens endpoint answered 500
(OverflowError) and the sweeper failed on it every cycle, so no lesson of any
journal ended by time any more.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from rooms.lessons import Lesson, LessonRegistry, LessonState, Person, Role
from rooms.schedule import ScheduleError, ScheduleLimits, check_schedule
from rooms.store import MemoryStore, Store
from rooms.store_redis import RedisStore
from signalling.keys import LESSONS
from tests.live import running_server
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LIMITS = ScheduleLimits()
FAR = "9999-12-31T23:59:59+00:00"


@pytest.mark.parametrize(
    ("starts", "ends", "until", "code", "field"),
    [
        (NOW, NOW - timedelta(minutes=1), None, "invalid_time_range", "ends_at"),
        (NOW, NOW + timedelta(hours=12, seconds=1), None, "too_long", "ends_at"),
        (
            NOW + timedelta(days=367),
            NOW + timedelta(days=367, hours=1),
            None,
            "date_out_of_range",
            "starts_at",
        ),
        (
            NOW - timedelta(days=367),
            NOW - timedelta(days=366, hours=23),
            None,
            "date_out_of_range",
            "starts_at",
        ),
        (NOW, NOW + timedelta(hours=1), date(9999, 12, 31), "date_out_of_range", "until"),
    ],
)
def test_out_of_bounds_schedules_are_refused(
    starts: datetime, ends: datetime, until: date | None, code: str, field: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        check_schedule(starts, ends, NOW, LIMITS, until)
    assert (info.value.code, info.value.field) == (code, field)


def test_schedules_at_the_bounds_are_accepted() -> None:
    check_schedule(NOW, NOW + timedelta(hours=12), NOW, LIMITS)
    late = NOW + timedelta(days=365)
    check_schedule(late, late + timedelta(hours=1), NOW, LIMITS, (NOW + timedelta(days=366)).date())


def lesson_body(starts_at: str, ends_at: str) -> dict[str, object]:
    return {
        "group": {"id": "5a", "title": "5А"},
        "subject": "Математика",
        "teacher": {"id": "t-1", "name": "Анна"},
        "roster": [{"id": "s-1", "name": "Иван", "role": "student"}],
        "starts_at": starts_at,
        "ends_at": ends_at,
    }


async def test_the_api_refuses_lessons_and_calls_in_year_9999() -> None:
    async with running_server() as server:
        now = datetime.now(UTC).replace(microsecond=0)
        status, body = await server.api(
            "POST", "/api/v1/lessons", lesson_body(now.isoformat(), FAR)
        )
        assert status == 400, body
        assert body["error"]["code"] == "lesson_too_long"
        status, body = await server.api(
            "POST", "/api/v1/lessons", lesson_body("9999-12-31T20:00:00+00:00", FAR)
        )
        assert status == 400, body
        assert (body["error"]["code"], body["error"]["field"]) == (
            "date_out_of_range",
            "$.starts_at",
        )
        schedule = {
            "starts_at": (now + timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
            "repeat": "daily",
            "until": "9999-12-31",
        }
        status, body = await server.api(
            "POST",
            "/api/v1/calls",
            {"title": "Кружок", "host": {"id": "t-1", "name": "Анна"}, "schedule": schedule},
        )
        assert status == 400, body
        assert (body["error"]["code"], body["error"]["field"]) == (
            "date_out_of_range",
            "$.schedule.until",
        )
        # Nothing was created.
        status, body = await server.api("GET", "/api/v1/lessons")
        assert status == 200 and body["lessons"] == []


def stored_lesson(group: str, starts_at: datetime, ends_at: datetime) -> Lesson:
    return Lesson(
        id="les_" + secrets.token_urlsafe(8),
        integration="demo",
        group_id=group,
        group_title=group,
        subject="Математика",
        teacher=Person("t-1", "Анна", Role.TEACHER),
        roster=(),
        starts_at=starts_at,
        ends_at=ends_at,
        state=LessonState.OPEN,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        backend: Store = MemoryStore()
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStore(url, prefix=f"urok-test-{secrets.token_hex(4)}:")
    yield backend
    await backend.close()


async def test_a_bad_record_never_stops_the_sweep(store: Store) -> None:
    # Written before the bounds existed: the sweep must live with it.
    bad = stored_lesson("9z", NOW - timedelta(hours=1), datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
    overdue = stored_lesson("5a", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    for lesson in (bad, overdue):
        await store.create_lesson(lesson)
    registry = LessonRegistry(store)
    grace = timedelta(hours=1)  # bad.ends_at + grace overflows
    ended = await registry.end_overdue(["demo"], NOW + timedelta(minutes=1), grace)
    assert [lesson.id for lesson in ended] == [overdue.id]
    assert (await registry.get(overdue.id)).state is LessonState.ENDED
    assert list(registry.sweep_failures) == [bad.id]
    assert "OverflowError" in registry.sweep_failures[bad.id]
    # The next sweep skips it again, and still works for the others.
    later = stored_lesson("6b", NOW - timedelta(hours=2), NOW - timedelta(minutes=90))
    await store.create_lesson(later)
    ended = await registry.end_overdue(["demo"], NOW + timedelta(minutes=2), grace)
    assert [lesson.id for lesson in ended] == [later.id]


async def test_the_running_sweeper_ends_lessons_despite_a_bad_one() -> None:
    async with running_server(end_grace_minutes=1, lesson_sweep_seconds=1) as server:
        registry = server.app[LESSONS]
        now = datetime.now(UTC)
        bad = stored_lesson(
            "9z", now - timedelta(hours=1), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
        )
        await registry.store.create_lesson(bad)
        lesson_id = await server.create_lesson()
        await registry.update(lesson_id, lambda lesson: _ended_a_minute_ago(lesson, now))
        for _ in range(50):
            if (await registry.get(lesson_id)).state is LessonState.ENDED:
                break
            await asyncio.sleep(0.1)
        assert (await registry.get(lesson_id)).state is LessonState.ENDED
        assert (await registry.get(bad.id)).state is LessonState.OPEN


def _ended_a_minute_ago(lesson: Lesson, now: datetime) -> Lesson:
    lesson.starts_at = now - timedelta(minutes=30)
    lesson.ends_at = now - timedelta(minutes=2)
    return lesson
