"""The I/O-free call model: rights, settings, attendance, lesson join rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rooms.lessons import Lesson, LessonState, Person, Role
from rooms.model import (
    HOST_PERMISSIONS,
    AttendanceRecord,
    CallSettings,
    ChatMessage,
    ParticipantRecord,
    Permissions,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_students_may_not_share_the_screen_by_default_hosts_may_everything() -> None:
    settings = CallSettings()
    student = settings.permissions_for(Role.STUDENT, host=False)
    assert (student.unmute, student.video, student.screen, student.chat) == (
        True,
        True,
        False,
        True,
    )
    assert settings.permissions_for(Role.TEACHER, host=False) == HOST_PERMISSIONS
    assert settings.permissions_for(Role.STUDENT, host=True) == HOST_PERMISSIONS  # a co-host


def test_changing_one_role_leaves_the_others() -> None:
    settings = CallSettings().with_permissions(Role.STUDENT, Permissions(screen=True, chat=False))
    assert settings.permissions_for(Role.STUDENT, host=False).screen is True
    assert settings.permissions_for(Role.STUDENT, host=False).chat is False
    assert settings.permissions_for(Role.PARENT, host=False) == Permissions()


def test_settings_and_records_survive_json() -> None:
    settings = CallSettings(waiting_room=True, guests_allowed=True).with_permissions(
        Role.GUEST, Permissions(unmute=False)
    )
    assert CallSettings.from_json(settings.to_json()) == settings
    record = ParticipantRecord(
        id="p_1",
        user_id="s-1",
        name="Иван",
        role=Role.STUDENT,
        cohost=True,
        host=True,
        screen=True,
        node="n1",
    )
    assert ParticipantRecord.from_json(record.to_json()) == record
    assert "node" not in record.public()
    message = ChatMessage(
        id="3",
        kind="text",
        text="Привет",
        at=T0,
        author_id="p_1",
        author_role=Role.STUDENT,
        filtered=True,
    )
    assert ChatMessage.from_json(message.to_json()) == message


def test_attendance_accumulates_time_present_over_rejoins() -> None:
    record = AttendanceRecord("s-1", "Иван", Role.STUDENT, first_join=T0).joined(T0)
    record = record.left(T0 + timedelta(minutes=10))
    record = record.joined(T0 + timedelta(minutes=15)).joined(T0 + timedelta(minutes=16))
    record = record.left(T0 + timedelta(minutes=20))
    assert record.seconds_present == 15 * 60
    assert record.first_join == T0 and record.last_leave == T0 + timedelta(minutes=20)
    assert record.present_since is None
    assert AttendanceRecord.from_json(record.to_json()) == record


def lesson(state: LessonState) -> Lesson:
    return Lesson(
        id="les_1",
        integration="demo",
        group_id="5a",
        group_title="5А",
        subject="Математика",
        teacher=Person("t-1", "Анна", Role.TEACHER),
        roster=(Person("s-1", "Иван", Role.STUDENT),),
        starts_at=T0,
        ends_at=T0 + timedelta(minutes=45),
        state=state,
    )


def test_join_rules() -> None:
    early = timedelta(minutes=10)
    created, opened = lesson(LessonState.CREATED), lesson(LessonState.OPEN)
    # The teacher any time; students once open and from ten minutes before the start.
    assert created.joinable_by(Role.TEACHER, T0 - timedelta(hours=2), early)
    assert not created.joinable_by(Role.STUDENT, T0, early)
    assert not opened.joinable_by(Role.STUDENT, T0 - timedelta(minutes=11), early)
    assert opened.joinable_by(Role.STUDENT, T0 - timedelta(minutes=10), early)
    assert opened.joinable_by(Role.GUEST, T0 + timedelta(minutes=30), early)
    ended = lesson(LessonState.ENDED)
    assert not ended.joinable_by(Role.TEACHER, T0, early)
    assert Lesson.from_json(opened.to_json()) == opened
