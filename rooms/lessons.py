"""Journal lessons: the calls a journal creates, opens and ends.

Plain, I/O-free domain code. The HTTP API validates input and calls in here;
the signalling layer asks whether a person may join.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

log = logging.getLogger(__name__)


class LessonState(StrEnum):
    CREATED = "created"  # the teacher may join; students wait
    OPEN = "open"  # published: the roster may join
    ENDED = "ended"


class Role(StrEnum):
    TEACHER = "teacher"
    STUDENT = "student"
    PARENT = "parent"
    GUEST = "guest"


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

    @property
    def title(self) -> str:
        return f"{self.subject}, {self.group_title}"

    @property
    def active(self) -> bool:
        return self.state is not LessonState.ENDED

    def rostered(self, user_id: str) -> Person | None:
        if user_id == self.teacher.id:
            return self.teacher
        for person in self.roster:
            if person.id == user_id:
                return person
        return None


class LessonConflict(Exception):
    """A class already has an active lesson."""

    def __init__(self, active: Lesson) -> None:
        super().__init__(f"class {active.group_id} already has an active lesson {active.id}")
        self.active = active


class LessonNotFound(KeyError):
    pass


@dataclass
class LessonRegistry:
    """In-memory lessons, with at most one active lesson per (integration, class)."""

    lessons: dict[str, Lesson] = field(default_factory=dict)
    # Called with the lesson when it ends, for whatever ended it.
    on_ended: list[Callable[[Lesson], None]] = field(default_factory=list)

    def active_for_group(self, integration: str, group_id: str) -> Lesson | None:
        for lesson in self.lessons.values():
            if lesson.integration == integration and lesson.group_id == group_id and lesson.active:
                return lesson
        return None

    def create(self, lesson: Lesson) -> Lesson:
        # Check and insert with no await in between: atomic on one event loop.
        active = self.active_for_group(lesson.integration, lesson.group_id)
        if active is not None:
            raise LessonConflict(active)
        self.lessons[lesson.id] = lesson
        return lesson

    def get(self, lesson_id: str, integration: str | None = None) -> Lesson:
        lesson = self.lessons.get(lesson_id)
        if lesson is None or (integration is not None and lesson.integration != integration):
            raise LessonNotFound(lesson_id)
        return lesson

    def open(self, lesson_id: str, integration: str, now: datetime) -> Lesson:
        lesson = self.get(lesson_id, integration)
        if lesson.state is LessonState.CREATED:
            lesson.state = LessonState.OPEN
            lesson.opened_at = now
        return lesson

    def end(self, lesson_id: str, integration: str | None, now: datetime) -> Lesson:
        lesson = self.get(lesson_id, integration)
        if lesson.state is not LessonState.ENDED:
            lesson.state = LessonState.ENDED
            lesson.ended_at = now
            for callback in self.on_ended:
                # One failing callback must not keep the others from running:
                # the lesson is already ended and a retry would not call them.
                try:
                    callback(lesson)
                except Exception:
                    log.exception("on_ended callback failed for lesson %s", lesson.id)
        return lesson


def new_lesson_id() -> str:
    return "les_" + secrets.token_urlsafe(12)
