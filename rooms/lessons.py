"""Journal lessons: the calls a journal creates, opens and ends.

Plain, I/O-free domain code. The HTTP API validates input and calls in here;
the signalling layer asks whether a person may join.
"""

from __future__ import annotations

# `list` is also a method of LessonRegistry: the type is spelt builtins.list there.
import builtins
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from rooms.store import MemoryStore, Store

# The vocabulary lives in rooms.vocabulary (a leaf module); importers keep using these names here.
from rooms.vocabulary import (
    REPEAT_STEP,
    SERIES_PREFIX,
    Lesson,
    LessonConflict,
    LessonKind,
    LessonNotFound,
    LessonState,
    Person,
    Repeat,
    Role,
)

__all__ = [
    "REPEAT_STEP",
    "SERIES_PREFIX",
    "Lesson",
    "LessonConflict",
    "LessonKind",
    "LessonNotFound",
    "LessonRegistry",
    "LessonState",
    "Person",
    "Repeat",
    "Role",
    "new_lesson_id",
]

log = logging.getLogger(__name__)


class LessonRegistry:
    """Lessons in the store, with at most one active lesson per (integration, class)."""

    def __init__(self, store: Store | None = None) -> None:
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
        self, integrations: builtins.list[str], now: datetime, grace: timedelta
    ) -> builtins.list[Lesson]:
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
        callbacks: builtins.list[Callable[[Lesson, str], None]], lesson: Lesson, reason: str
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
