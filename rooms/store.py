"""Where call state lives: one interface, two backends (memory, Redis).

The in-memory store is the embedded default (one process). The Redis store
(rooms/store_redis.py) lets several nodes share lessons and call state. Both
pass the same contract tests (tests/test_store_contract.py).

Node-local things (peer connections, WebSockets) never go in here; what other
nodes or a restarted node must see does.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from breakout.model import BreakoutState
from rooms.model import (
    AttendanceRecord,
    CallSettings,
    ChatMessage,
    ParticipantRecord,
    RecordingRecord,
)
from rooms.polls import PollAnswer, PollRecord
from rooms.ratelimit import RateLimiter
from rooms.vocabulary import Lesson, LessonConflict, LessonState, Role

# How long a call's state outlives its end (chat history, attendance).
DEFAULT_RETENTION_SECONDS = 30 * 86400


class Store(ABC):
    # Whether what is stored outlives this process (a restarted node reads it back).
    durable = False

    # --- lessons (and ad-hoc calls)

    @abstractmethod
    async def create_lesson(self, lesson: Lesson) -> None:
        """Insert `lesson`; LessonConflict if its class already has an active one.

        Atomic: of any number of concurrent creates for one class, exactly one
        succeeds (whichever node they reach)."""

    @abstractmethod
    async def get_lesson(self, lesson_id: str) -> Lesson | None: ...

    @abstractmethod
    async def list_lessons(self, integration: str, group_id: str | None = None) -> list[Lesson]:
        """The integration's lessons (of one class when group_id is given), oldest first."""

    @abstractmethod
    async def open_lesson(self, lesson_id: str, at: datetime) -> Lesson | None:
        """created -> open; other states unchanged. None if unknown."""

    @abstractmethod
    async def end_lesson(self, lesson_id: str, at: datetime) -> tuple[Lesson | None, bool]:
        """-> ended, freeing its class; returns (lesson, whether this call ended it)."""

    @abstractmethod
    async def update_lesson(
        self, lesson_id: str, change: Callable[[Lesson], Lesson | None]
    ) -> Lesson | None:
        """Replace the record with change(record), atomically; None if unknown.

        `change` gets a copy and answers the new record (None: keep it as is);
        it may run more than once (on Redis, when another writer got in
        between). Only descriptive fields may change: a new id, integration,
        class or state raises ValueError (see check_update) and stores nothing;
        states change through open_lesson / end_lesson. Returns the record after."""

    # --- join tokens

    @abstractmethod
    async def revoke_token(self, jti: str, until: datetime) -> None:
        """Refuse the token with this jti from now until `until` (its expiry)."""

    @abstractmethod
    async def is_token_revoked(self, jti: str) -> bool: ...

    # --- rate limits shared by the nodes

    @abstractmethod
    async def rate_hit(self, key: str, limit: int, window: float) -> float | None:
        """Count one event for `key`: None when at most `limit` happened in the last
        `window` seconds (this one counted), else the seconds until one more would be
        allowed (not counted). A sliding window, on one clock for every node."""

    # --- call settings and permissions

    @abstractmethod
    async def get_settings(self, call_id: str) -> CallSettings: ...

    @abstractmethod
    async def set_settings(self, call_id: str, settings: CallSettings) -> None: ...

    # --- breakout rooms

    @abstractmethod
    async def get_breakout(self, call_id: str) -> BreakoutState | None:
        """The call's breakout rooms (None until a host sets them up)."""

    @abstractmethod
    async def set_breakout(self, call_id: str, state: BreakoutState) -> None: ...

    # --- participants (in the call) and the waiting room

    @abstractmethod
    async def put_participant(self, call_id: str, record: ParticipantRecord) -> None:
        """Add or replace a participant of the call (by record.id)."""

    @abstractmethod
    async def remove_participant(self, call_id: str, participant_id: str) -> bool: ...

    @abstractmethod
    async def participants(self, call_id: str) -> list[ParticipantRecord]:
        """In the order they joined."""

    @abstractmethod
    async def put_waiting(self, call_id: str, record: ParticipantRecord) -> None: ...

    @abstractmethod
    async def remove_waiting(self, call_id: str, participant_id: str) -> ParticipantRecord | None:
        """Take one person out of the waiting room (None if not there)."""

    @abstractmethod
    async def waiting(self, call_id: str) -> list[ParticipantRecord]:
        """In the order they arrived."""

    # --- raised hands

    @abstractmethod
    async def raise_hand(self, call_id: str, participant_id: str) -> list[str]:
        """Append to the queue unless already there; the queue in raise order."""

    @abstractmethod
    async def lower_hand(self, call_id: str, participant_id: str) -> list[str]: ...

    @abstractmethod
    async def lower_all_hands(self, call_id: str) -> list[str]: ...

    @abstractmethod
    async def hands(self, call_id: str) -> list[str]: ...

    # --- chat

    @abstractmethod
    async def append_chat(self, call_id: str, message: ChatMessage) -> ChatMessage:
        """Store a message; returns it with its id (increasing within the call)."""

    @abstractmethod
    async def chat_history(self, call_id: str, limit: int = 500) -> list[ChatMessage]:
        """The last `limit` messages, oldest first."""

    # --- polls (rooms/polls.py)

    @abstractmethod
    async def put_poll(self, call_id: str, poll: PollRecord) -> None:
        """Add or replace a poll of the call (by poll.id); listed in the order asked."""

    @abstractmethod
    async def polls(self, call_id: str) -> list[PollRecord]:
        """Every poll asked in the call, open and closed, in the order asked."""

    @abstractmethod
    async def answer_poll(self, call_id: str, poll_id: str, answer: PollAnswer) -> bool:
        """Keep `answer` unless its voter answered this poll already (then False and
        nothing changes). Atomic: of concurrent answers by one voter, one is kept."""

    @abstractmethod
    async def poll_answers(self, call_id: str, poll_id: str) -> list[PollAnswer]:
        """The poll's answers, in the order given."""

    # --- attendance

    @abstractmethod
    async def record_join(
        self, call_id: str, user_id: str, name: str, role: str, at: datetime
    ) -> None: ...

    @abstractmethod
    async def record_leave(self, call_id: str, user_id: str, at: datetime) -> None: ...

    @abstractmethod
    async def attendance(self, call_id: str) -> list[AttendanceRecord]:
        """Per person who ever joined, in first-join order."""

    # --- recordings (kept after the call's other state expires: the files outlive it)

    @abstractmethod
    async def put_recording(self, record: RecordingRecord) -> None:
        """Insert or replace a recording's record (listed under its call)."""

    @abstractmethod
    async def get_recording(self, recording_id: str) -> RecordingRecord | None: ...

    @abstractmethod
    async def recordings(self, call_id: str) -> list[RecordingRecord]:
        """The call's recordings, oldest first."""

    @abstractmethod
    async def delete_recording(self, recording_id: str) -> RecordingRecord | None:
        """Forget a recording's record; the record it was, or None if there was none."""

    # --- a person's state across this node's restart (rooms/calls/restart.py)

    @abstractmethod
    async def put_restart_state(
        self, call_id: str, user_id: str, state: dict[str, Any], ttl_seconds: float
    ) -> None:
        """Keep `state` (JSON-able) for the person's return, for `ttl_seconds`."""

    @abstractmethod
    async def take_restart_state(self, call_id: str, user_id: str) -> dict[str, Any] | None:
        """The state kept for the person, forgotten as it is read; None when none is
        left (never kept, taken already, or expired)."""

    # --- lifetime

    @abstractmethod
    async def expire_call(self, call_id: str, after_seconds: float) -> None:
        """Forget the call's state `after_seconds` from now (lesson record included)."""

    async def ping(self) -> None:
        """Raise when the store cannot be reached (GET /readyz): one read of a lesson
        id no lesson has, a round trip to Redis, nothing in memory."""
        await self.get_lesson("~ping")

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""


def check_update(before: Lesson, after: Lesson) -> None:
    """What update_lesson may not change: the record's identity, class and state."""
    for name in ("id", "integration", "group_id", "state"):
        if getattr(before, name) != getattr(after, name):
            raise ValueError(f"update_lesson cannot change a lesson's {name}")


class MemoryStore(Store):
    """Everything in this process's memory: the one-box default."""

    def __init__(self) -> None:
        self._lessons: dict[str, Lesson] = {}
        self._active_by_group: dict[tuple[str, str], str] = {}
        self._revoked: dict[str, datetime] = {}
        self._rates: dict[tuple[int, float], RateLimiter] = {}
        self._settings: dict[str, CallSettings] = {}
        self._breakout: dict[str, BreakoutState] = {}
        self._participants: dict[str, dict[str, ParticipantRecord]] = {}
        self._waiting: dict[str, dict[str, ParticipantRecord]] = {}
        self._hands: dict[str, list[str]] = {}
        self._chat: dict[str, list[ChatMessage]] = {}
        self._polls: dict[str, dict[str, PollRecord]] = {}
        self._poll_answers: dict[str, dict[str, dict[str, PollAnswer]]] = {}
        self._attendance: dict[str, dict[str, AttendanceRecord]] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._recordings: dict[str, RecordingRecord] = {}
        self._restart: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    # Copies go in and out, so callers never share mutable state with the store
    # (as with Redis, where everything is serialised).
    @staticmethod
    def _copy(lesson: Lesson) -> Lesson:
        return Lesson.from_json(lesson.to_json())

    async def create_lesson(self, lesson: Lesson) -> None:
        key = (lesson.integration, lesson.group_id)
        active_id = self._active_by_group.get(key)
        if active_id is not None and active_id in self._lessons:
            raise LessonConflict(self._copy(self._lessons[active_id]))
        self._lessons[lesson.id] = self._copy(lesson)
        if lesson.active:
            self._active_by_group[key] = lesson.id

    async def get_lesson(self, lesson_id: str) -> Lesson | None:
        lesson = self._lessons.get(lesson_id)
        return self._copy(lesson) if lesson else None

    async def list_lessons(self, integration: str, group_id: str | None = None) -> list[Lesson]:
        return [
            self._copy(lesson)
            for lesson in self._lessons.values()
            if lesson.integration == integration and group_id in (None, lesson.group_id)
        ]

    async def open_lesson(self, lesson_id: str, at: datetime) -> Lesson | None:
        lesson = self._lessons.get(lesson_id)
        if lesson is None:
            return None
        if lesson.state is LessonState.CREATED:
            lesson.state = LessonState.OPEN
            lesson.opened_at = at
        return self._copy(lesson)

    async def end_lesson(self, lesson_id: str, at: datetime) -> tuple[Lesson | None, bool]:
        lesson = self._lessons.get(lesson_id)
        if lesson is None:
            return None, False
        if lesson.state is LessonState.ENDED:
            return self._copy(lesson), False
        lesson.state = LessonState.ENDED
        lesson.ended_at = at
        key = (lesson.integration, lesson.group_id)
        if self._active_by_group.get(key) == lesson_id:
            del self._active_by_group[key]
        return self._copy(lesson), True

    async def update_lesson(
        self, lesson_id: str, change: Callable[[Lesson], Lesson | None]
    ) -> Lesson | None:
        lesson = self._lessons.get(lesson_id)
        if lesson is None:
            return None
        changed = change(self._copy(lesson))
        if changed is None:
            return self._copy(lesson)
        check_update(lesson, changed)
        self._lessons[lesson_id] = self._copy(changed)
        return self._copy(changed)

    async def rate_hit(self, key: str, limit: int, window: float) -> float | None:
        limiter = self._rates.get((limit, window))
        if limiter is None:
            limiter = self._rates[(limit, window)] = RateLimiter(limit, window)
        return limiter.check(key)

    async def revoke_token(self, jti: str, until: datetime) -> None:
        self._revoked[jti] = until

    async def is_token_revoked(self, jti: str) -> bool:
        until = self._revoked.get(jti)
        if until is None:
            return False
        if until <= datetime.now(until.tzinfo):
            del self._revoked[jti]
            return False
        return True

    async def get_settings(self, call_id: str) -> CallSettings:
        return self._settings.get(call_id, CallSettings())

    async def set_settings(self, call_id: str, settings: CallSettings) -> None:
        self._settings[call_id] = settings

    async def get_breakout(self, call_id: str) -> BreakoutState | None:
        return self._breakout.get(call_id)

    async def set_breakout(self, call_id: str, state: BreakoutState) -> None:
        self._breakout[call_id] = state

    async def put_participant(self, call_id: str, record: ParticipantRecord) -> None:
        self._participants.setdefault(call_id, {})[record.id] = record

    async def remove_participant(self, call_id: str, participant_id: str) -> bool:
        return self._participants.get(call_id, {}).pop(participant_id, None) is not None

    async def participants(self, call_id: str) -> list[ParticipantRecord]:
        return list(self._participants.get(call_id, {}).values())

    async def put_waiting(self, call_id: str, record: ParticipantRecord) -> None:
        self._waiting.setdefault(call_id, {})[record.id] = record

    async def remove_waiting(self, call_id: str, participant_id: str) -> ParticipantRecord | None:
        return self._waiting.get(call_id, {}).pop(participant_id, None)

    async def waiting(self, call_id: str) -> list[ParticipantRecord]:
        return list(self._waiting.get(call_id, {}).values())

    async def raise_hand(self, call_id: str, participant_id: str) -> list[str]:
        queue = self._hands.setdefault(call_id, [])
        if participant_id not in queue:
            queue.append(participant_id)
        return list(queue)

    async def lower_hand(self, call_id: str, participant_id: str) -> list[str]:
        queue = self._hands.setdefault(call_id, [])
        if participant_id in queue:
            queue.remove(participant_id)
        return list(queue)

    async def lower_all_hands(self, call_id: str) -> list[str]:
        self._hands[call_id] = []
        return []

    async def hands(self, call_id: str) -> list[str]:
        return list(self._hands.get(call_id, []))

    async def append_chat(self, call_id: str, message: ChatMessage) -> ChatMessage:
        log = self._chat.setdefault(call_id, [])
        stored = replace(message, id=str(len(log) + 1))
        log.append(stored)
        return stored

    async def chat_history(self, call_id: str, limit: int = 500) -> list[ChatMessage]:
        return list(self._chat.get(call_id, [])[-limit:]) if limit > 0 else []

    async def put_poll(self, call_id: str, poll: PollRecord) -> None:
        self._polls.setdefault(call_id, {})[poll.id] = poll

    async def polls(self, call_id: str) -> list[PollRecord]:
        return list(self._polls.get(call_id, {}).values())

    async def answer_poll(self, call_id: str, poll_id: str, answer: PollAnswer) -> bool:
        answers = self._poll_answers.setdefault(call_id, {}).setdefault(poll_id, {})
        if answer.voter in answers:
            return False
        answers[answer.voter] = answer
        return True

    async def poll_answers(self, call_id: str, poll_id: str) -> list[PollAnswer]:
        return list(self._poll_answers.get(call_id, {}).get(poll_id, {}).values())

    async def record_join(
        self, call_id: str, user_id: str, name: str, role: str, at: datetime
    ) -> None:
        records = self._attendance.setdefault(call_id, {})
        record = records.get(user_id) or AttendanceRecord(
            user_id=user_id, name=name, role=Role(role), first_join=at
        )
        records[user_id] = record.joined(at)

    async def record_leave(self, call_id: str, user_id: str, at: datetime) -> None:
        records = self._attendance.get(call_id, {})
        if user_id in records:
            records[user_id] = records[user_id].left(at)

    async def attendance(self, call_id: str) -> list[AttendanceRecord]:
        return list(self._attendance.get(call_id, {}).values())

    async def put_recording(self, record: RecordingRecord) -> None:
        self._recordings[record.id] = record

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        return self._recordings.get(recording_id)

    async def recordings(self, call_id: str) -> list[RecordingRecord]:
        found = [r for r in self._recordings.values() if r.call_id == call_id]
        return sorted(found, key=lambda r: (r.started_at, r.id))

    async def delete_recording(self, recording_id: str) -> RecordingRecord | None:
        return self._recordings.pop(recording_id, None)

    async def put_restart_state(
        self, call_id: str, user_id: str, state: dict[str, Any], ttl_seconds: float
    ) -> None:
        until = asyncio.get_running_loop().time() + ttl_seconds
        self._restart[(call_id, user_id)] = (until, json.loads(json.dumps(state)))

    async def take_restart_state(self, call_id: str, user_id: str) -> dict[str, Any] | None:
        until, state = self._restart.pop((call_id, user_id), (0.0, None))
        return state if asyncio.get_running_loop().time() < until else None

    async def expire_call(self, call_id: str, after_seconds: float) -> None:
        old = self._expiry.pop(call_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._expiry[call_id] = loop.call_later(after_seconds, self._forget, call_id)

    def _forget(self, call_id: str) -> None:
        self._expiry.pop(call_id, None)
        lesson = self._lessons.pop(call_id, None)
        if lesson is not None:
            key = (lesson.integration, lesson.group_id)
            if self._active_by_group.get(key) == call_id:
                del self._active_by_group[key]
        for table in (
            self._settings,
            self._breakout,
            self._participants,
            self._waiting,
            self._hands,
            self._chat,
            self._polls,
            self._poll_answers,
            self._attendance,
        ):
            table.pop(call_id, None)

    async def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
