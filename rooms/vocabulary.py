"""The vocabulary of lessons: what a lesson, a person and a role are, and the lessons' errors.

A leaf module: it imports nothing of the project, so the store, the call state
records (rooms.model) and the lesson registry (rooms.lessons) can all use it
without importing one another in a circle. rooms.lessons re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any


class LessonState(StrEnum):
    CREATED = "created"  # the teacher may join; students wait
    OPEN = "open"  # published: the roster may join
    ENDED = "ended"


class Role(StrEnum):
    TEACHER = "teacher"
    STUDENT = "student"
    PARENT = "parent"
    GUEST = "guest"


class LessonKind(StrEnum):
    LESSON = "lesson"  # a journal's lesson for a class
    ADHOC = "adhoc"  # an ad-hoc call by link (parent meeting, seminar)


class Repeat(StrEnum):
    """How a scheduled ad-hoc call repeats (lessons never do)."""

    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"


REPEAT_STEP = {Repeat.DAILY: timedelta(days=1), Repeat.WEEKLY: timedelta(days=7)}
# The class (group id) of an ad-hoc call series: unique per series, so the
# one-active-lesson-per-class rule means one active occurrence per series.
SERIES_PREFIX = "call:"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    role: Role


@dataclass
class Lesson:
    id: str
    integration: str  # key id of the journal integration that owns it
    group_id: str
    group_title: str
    subject: str
    teacher: Person
    roster: tuple[Person, ...]
    starts_at: datetime
    ends_at: datetime
    state: LessonState = LessonState.CREATED
    created_at: datetime | None = None
    opened_at: datetime | None = None
    ended_at: datetime | None = None
    kind: LessonKind = LessonKind.LESSON
    # Ad-hoc calls only: the series repeats every day / week until this date
    # (in the offset of starts_at); None: no end date.
    repeat: Repeat = Repeat.NONE
    until: date | None = None

    @property
    def title(self) -> str:
        # An ad-hoc call has no class: its title is the subject alone.
        return f"{self.subject}, {self.group_title}" if self.group_title else self.subject

    @property
    def series_id(self) -> str | None:
        """An ad-hoc call's series id (its first occurrence's id); None for lessons."""
        if self.kind is not LessonKind.ADHOC:
            return None
        return self.group_id.removeprefix(SERIES_PREFIX)

    def next_occurrence(self, after: datetime) -> tuple[datetime, datetime] | None:
        """(starts_at, ends_at) of the series' next occurrence that ends after `after`.

        Shifted by whole days or weeks (past occurrences are skipped); None when
        the call does not repeat or the next one would start after `until`.
        """
        step = REPEAT_STEP.get(self.repeat)
        if step is None:
            return None
        count = max(1, (after - self.ends_at) // step + 1)
        starts_at, ends_at = self.starts_at + count * step, self.ends_at + count * step
        if self.until is not None and starts_at.date() > self.until:
            return None
        return starts_at, ends_at

    @property
    def active(self) -> bool:
        return self.state is not LessonState.ENDED

    def joinable_by(self, role: Role, now: datetime, early_join: timedelta) -> bool:
        """The lesson rules: the teacher any time before the end; others once it is
        open, from `early_join` before the scheduled start."""
        if self.state is LessonState.ENDED:
            return False
        if role is Role.TEACHER:
            return True
        return self.state is LessonState.OPEN and now >= self.starts_at - early_join

    def public(self) -> dict[str, Any]:
        """What every participant may see of the lesson (the call page's header)."""
        return {
            "id": self.id,
            "title": self.title,
            "subject": self.subject,
            "group_title": self.group_title,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
        }

    def to_json(self) -> dict[str, Any]:
        def person(p: Person) -> dict[str, str]:
            return {"id": p.id, "name": p.name, "role": p.role.value}

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "integration": self.integration,
            "group_id": self.group_id,
            "group_title": self.group_title,
            "subject": self.subject,
            "teacher": person(self.teacher),
            "roster": [person(p) for p in self.roster],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "state": self.state.value,
            "created_at": when(self.created_at),
            "opened_at": when(self.opened_at),
            "ended_at": when(self.ended_at),
            "kind": self.kind.value,
            "repeat": self.repeat.value,
            "until": self.until.isoformat() if self.until else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lesson:
        def person(p: dict[str, str]) -> Person:
            return Person(id=p["id"], name=p["name"], role=Role(p["role"]))

        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            id=data["id"],
            integration=data["integration"],
            group_id=data["group_id"],
            group_title=data["group_title"],
            subject=data["subject"],
            teacher=person(data["teacher"]),
            roster=tuple(person(p) for p in data["roster"]),
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]),
            state=LessonState(data["state"]),
            created_at=when(data.get("created_at")),
            opened_at=when(data.get("opened_at")),
            ended_at=when(data.get("ended_at")),
            # Records written before ad-hoc calls existed are lessons.
            kind=LessonKind(data.get("kind", LessonKind.LESSON.value)),
            repeat=Repeat(data.get("repeat", Repeat.NONE.value)),
            until=date.fromisoformat(data["until"]) if data.get("until") else None,
        )

    def rostered(self, user_id: str) -> Person | None:
        if user_id == self.teacher.id:
            return self.teacher
        for person in self.roster:
            if person.id == user_id:
                return person
        return None

    def admits(self, user_id: str, role: Role) -> bool:
        """The roster rule for a token: a guest is on no roster; anyone else must be on
        this lesson's, in that role."""
        if role is Role.GUEST:
            return True
        person = self.rostered(user_id)
        return person is not None and person.role is role


class LessonConflict(Exception):
    """A class already has an active lesson."""

    def __init__(self, active: Lesson) -> None:
        super().__init__(f"class {active.group_id} already has an active lesson {active.id}")
        self.active = active


class LessonNotFound(KeyError):
    pass
