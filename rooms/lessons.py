"""Journal lessons: the calls a journal creates, opens and ends.

Plain, I/O-free domain code. The HTTP API validates input and calls in here;
the signalling layer asks whether a person may join.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rooms.store import Store

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


class LessonRegistry:
    """Lessons in the store, with at most one active lesson per (integration, class)."""

    def __init__(self, store: Store | None = None) -> None:
        from rooms.store import MemoryStore

        self.store: Store = store or MemoryStore()
        # Called with the lesson when it is opened / ends, for whatever did it.
        self.on_opened: list[Callable[[Lesson, str], None]] = []
        self.on_ended: list[Callable[[Lesson, str], None]] = []
        # Lessons the sweep could not end (id -> why): reported, and logged once.
        self.sweep_failures: dict[str, str] = {}

    async def create(self, lesson: Lesson) -> Lesson:
        """Atomic in the store: concurrent creates for one class leave exactly one."""
        await self.store.create_lesson(lesson)
        return lesson

    async def get(self, lesson_id: str, integration: str | None = None) -> Lesson:
        lesson = await self.store.get_lesson(lesson_id)
        if lesson is None or (integration is not None and lesson.integration != integration):
            raise LessonNotFound(lesson_id)
        return lesson

    async def list(self, integration: str, group_id: str | None = None) -> list[Lesson]:
        return await self.store.list_lessons(integration, group_id)

    async def open(self, lesson_id: str, integration: str, now: datetime) -> Lesson:
        before = await self.get(lesson_id, integration)
        lesson = await self.store.open_lesson(lesson_id, now)
        if lesson is None:
            raise LessonNotFound(lesson_id)
        if before.state is LessonState.CREATED and lesson.state is LessonState.OPEN:
            self._notify(self.on_opened, lesson, "opened")
        return lesson

    async def end(
        self, lesson_id: str, integration: str | None, now: datetime, reason: str = "ended"
    ) -> Lesson:
        """End the lesson; `reason`: ended (by the journal), ended_by_host, time_over.

        A repeating ad-hoc call that ends by time or by its host moves on to its
        next occurrence (see continue_series); ended by the journal ("ended"),
        the whole series ends.
        """
        await self.get(lesson_id, integration)
        lesson, ended_now = await self.store.end_lesson(lesson_id, now)
        if lesson is None:
            raise LessonNotFound(lesson_id)
        if ended_now:
            self._notify(self.on_ended, lesson, reason)
            if reason != "ended":
                try:
                    await self.continue_series(lesson, now)
                except Exception:
                    # This occurrence has ended either way; say loudly that the next is missing.
                    log.exception("could not schedule the next occurrence after %s", lesson.id)
        return lesson

    async def continue_series(self, ended: Lesson, now: datetime) -> Lesson | None:
        """Create the next occurrence of a repeating ad-hoc call that has just ended.

        The occurrence is a new record (its own id, chat and attendance) in the
        same series (class `call:<series id>`, so the invite link stays the
        same), open, with the ended one's call settings. Only the caller whose
        end_lesson ended the occurrence gets here, so it is created once.
        """
        when = ended.next_occurrence(now) if ended.kind is LessonKind.ADHOC else None
        if when is None:
            return None
        following = replace(
            ended,
            id=new_lesson_id(),
            starts_at=when[0],
            ends_at=when[1],
            state=LessonState.OPEN,
            created_at=now,
            opened_at=now,
            ended_at=None,
        )
        # Settings first: the occurrence is findable (by its series) once created.
        await self.store.set_settings(following.id, await self.store.get_settings(ended.id))
        try:
            await self.store.create_lesson(following)
        except LessonConflict as exc:
            log.warning("series %s already has occurrence %s", ended.series_id, exc.active.id)
            return None
        log.info("call %s continues as %s at %s", ended.id, following.id, when[0].isoformat())
        self._notify(self.on_opened, following, "opened")
        return following

    async def current_in_series(self, integration: str, series_id: str) -> Lesson | None:
        """The ad-hoc call series' active occurrence, else its latest; None if unknown."""
        occurrences = [
            lesson
            for lesson in await self.list(integration, SERIES_PREFIX + series_id)
            if lesson.kind is LessonKind.ADHOC
        ]
        if not occurrences:
            return None
        return next((o for o in reversed(occurrences) if o.active), occurrences[-1])

    async def update(self, lesson_id: str, change: Callable[[Lesson], Lesson | None]) -> Lesson:
        """Change descriptive fields of a lesson atomically (see Store.update_lesson)."""
        lesson = await self.store.update_lesson(lesson_id, change)
        if lesson is None:
            raise LessonNotFound(lesson_id)
        return lesson

    async def end_overdue(
        self, integrations: list[str], now: datetime, grace: timedelta
    ) -> list[Lesson]:
        """End every active lesson whose scheduled end plus `grace` has passed.

        Each lesson on its own: one that cannot be ended (a bad record) is
        logged once, listed in `sweep_failures`, and never keeps the others from
        ending.
        """
        ended = []
        for integration in integrations:
            for lesson in await self.list(integration):
                try:
                    if lesson.active and now >= lesson.ends_at + grace:
                        ended.append(await self.end(lesson.id, integration, now, "time_over"))
                except Exception as exc:
                    if lesson.id not in self.sweep_failures:
                        log.exception("the sweep cannot end lesson %s; skipped", lesson.id)
                    self.sweep_failures[lesson.id] = f"{type(exc).__name__}: {exc}"[:200]
        return ended

    @staticmethod
    def _notify(
        callbacks: list[Callable[[Lesson, str], None]], lesson: Lesson, reason: str
    ) -> None:
        for callback in callbacks:
            # One failing callback must not keep the others from running:
            # the state has changed already and a retry would not call them.
            try:
                callback(lesson, reason)
            except Exception:
                log.exception("lesson callback failed for lesson %s", lesson.id)


def new_lesson_id() -> str:
    return "les_" + secrets.token_urlsafe(12)
