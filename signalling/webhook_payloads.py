"""Webhook payloads: pure functions of the lesson state (docs/webhooks.md)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rooms.lessons import Lesson, Person, Role
from rooms.model import AttendanceRecord


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _lesson_summary(lesson: Lesson) -> dict[str, Any]:
    return {
        "id": lesson.id,
        "state": lesson.state.value,
        "group": {"id": lesson.group_id, "title": lesson.group_title},
        "subject": lesson.subject,
        "title": lesson.title,
        "teacher": {"id": lesson.teacher.id, "name": lesson.teacher.name},
        "starts_at": lesson.starts_at.isoformat(),
        "ends_at": lesson.ends_at.isoformat(),
        "opened_at": _when(lesson.opened_at),
        "ended_at": _when(lesson.ended_at),
    }


def lesson_opened_payload(lesson: Lesson) -> dict[str, Any]:
    """data of lesson.opened: the lesson, without the roster (the journal has it)."""
    return {"lesson": _lesson_summary(lesson)}


def participant_payload(
    lesson_id: str, user_id: str, name: str, role: Role | str, at: datetime
) -> dict[str, Any]:
    """data of participant.joined and participant.left."""
    return {
        "lesson_id": lesson_id,
        "participant": {"user_id": user_id, "name": name, "role": Role(role).value},
        "at": at.isoformat(),
    }


def _presence(
    record: AttendanceRecord | None, ended_at: datetime
) -> tuple[datetime | None, datetime | None, float]:
    """(first join, last leave, seconds present), counting a stretch still open at the end."""
    if record is None:
        return None, None, 0.0
    seconds = record.seconds_present
    last_leave = record.last_leave
    if record.present_since is not None:
        # Still in the call when it ended: present until the end.
        seconds += max(0.0, (ended_at - record.present_since).total_seconds())
        last_leave = max(ended_at, last_leave) if last_leave else ended_at
    return record.first_join, last_leave, seconds


def _attendance_entry(
    user_id: str, name: str, role: Role, record: AttendanceRecord | None, ended_at: datetime
) -> dict[str, Any]:
    first_join, last_leave, seconds = _presence(record, ended_at)
    return {
        "user_id": user_id,
        "name": name,
        "role": role.value,
        "joined": record is not None,
        "first_join": _when(first_join),
        "last_leave": _when(last_leave),
        "minutes_present": round(seconds / 60, 1),
    }


def attendance_report(
    lesson: Lesson, attendance: Iterable[AttendanceRecord], ended_at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every rostered person, teacher first then in roster order; others who joined)."""
    records: dict[str, AttendanceRecord] = {}
    for record in attendance:
        records.setdefault(record.user_id, record)
    rostered: list[Person] = [lesson.teacher, *lesson.roster]
    rostered_ids = {person.id for person in rostered}
    report = [
        _attendance_entry(p.id, p.name, p.role, records.get(p.id), ended_at) for p in rostered
    ]
    others = [
        _attendance_entry(r.user_id, r.name, r.role, r, ended_at)
        for r in sorted(records.values(), key=lambda r: r.first_join)
        if r.user_id not in rostered_ids
    ]
    return report, others


def lesson_ended_payload(
    lesson: Lesson, attendance: Iterable[AttendanceRecord], ended_at: datetime, reason: str
) -> dict[str, Any]:
    """data of lesson.ended, with the attendance report.

    `attendance` has one record per person who ever joined (the store's
    attendance()). The report lists every rostered person, whether they came
    or not; people who joined without being on the roster (guests) are in
    `unrostered`.
    """
    report, others = attendance_report(lesson, attendance, ended_at)
    summary = _lesson_summary(lesson)
    summary["state"] = "ended"
    summary["ended_at"] = ended_at.isoformat()
    return {
        "lesson": summary,
        "ended_at": ended_at.isoformat(),
        "reason": reason,
        "summary": {
            "rostered": len(report),
            "joined": sum(1 for entry in report if entry["joined"]),
            "unrostered": len(others),
        },
        "attendance": report,
        "unrostered": others,
    }
