"""The Redis store: lessons and call state shared by several server nodes.

Same contract as rooms.store.MemoryStore (tests/test_store_contract.py runs one suite
against both), through redis.asyncio (redis-py >= 5), in JSON of the records' to_json.

Keys (all under `prefix`, default "urok:"; ids and names inside keys are
percent-encoded, so a ':' in an id can never make two keys collide):

    lessons:seq                       INCR counter ordering the lesson indexes
    lesson:<id>                       string: Lesson JSON
    lessons:<integration>             sorted set: lesson ids, score = creation order
    lessons:<integration>:<group>     sorted set: the same for one class
    active:<integration>:<group>      string: id of the class's active lesson
    revoked:<jti>                     string "1", expiring when the token would
    rate:<key>                        sorted set: one member per counted event,
                                      score = Redis server time (µs), expiring
                                      after the window
    rate:<key>:n                      INCR counter naming those members

    call:<id>:expires                 string: the call's deadline (unix ms), set by
                                      expire_call and expiring at that deadline
    call:<id>:seq                     INCR counter ordering joins, arrivals, hands
    call:<id>:settings                string: CallSettings JSON
    call:<id>:participants            hash: participant id -> ParticipantRecord JSON
    call:<id>:participants:order      sorted set: participant id, score = join order
    call:<id>:waiting                 hash: participant id -> ParticipantRecord JSON
    call:<id>:waiting:order           sorted set: participant id, score = arrival order
    call:<id>:hands                   sorted set: participant id, score = raise order
    call:<id>:chat                    stream: one entry per message, field "m" = JSON;
                                      entry id "<n>-0", where n is the message id
    call:<id>:chat:seq                INCR counter giving message ids 1, 2, 3, ...
    call:<id>:attendance              hash: user id -> AttendanceRecord JSON
    call:<id>:attendance:order        sorted set: user id, score = first-join order
    call:<id>:polls..., :poll:..., :restart:...  rooms/store_redis_polls.py, _restart.py

Atomicity: every write is one Lua script (rooms/redis_scripts.py) or one command. Lifetime:
expire_call and the scripts' FOLLOW. Responses are str (rooms/redis_client.py): hence casts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import cast
from urllib.parse import quote

import redis.asyncio as aioredis

from breakout.model import BreakoutState
from rooms import redis_scripts as scripts
from rooms.model import (
    AttendanceRecord,
    CallSettings,
    ChatMessage,
    ParticipantRecord,
    RecordingRecord,
)
from rooms.redis_client import redis_client
from rooms.store import Store, check_update
from rooms.store_redis_polls import dumps as _dumps
from rooms.store_redis_restart import RedisRestartState
from rooms.vocabulary import Lesson, LessonConflict, LessonState, Role

DEFAULT_PREFIX = "urok:"
# Optimistic updates give up after this many conflicting writes in a row.
MAX_ATTEMPTS = 100


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class RedisStore(RedisRestartState, Store):
    """Lessons and call state in Redis, shared by every node using the same server and prefix.

    `client` (for tests, or to share a pool) takes precedence over `url`; it
    must decode responses (redis.asyncio.Redis(..., decode_responses=True)).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        client: aioredis.Redis | None = None,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisStore needs a url or a client")
            client = redis_client(url)
        self._redis: aioredis.Redis = client
        self._prefix = prefix
        register = self._redis.register_script
        self._create_lesson = register(scripts.CREATE_LESSON)
        self._update_lesson = register(scripts.UPDATE_LESSON)
        self._expire_call = register(scripts.EXPIRE_CALL)
        self._set = register(scripts.SET)
        self._ordered_put = register(scripts.ORDERED_PUT)
        self._ordered_cas = register(scripts.ORDERED_CAS)
        self._ordered_take = register(scripts.ORDERED_TAKE)
        self._raise_hand = register(scripts.RAISE_HAND)
        self._lower_hand = register(scripts.LOWER_HAND)
        self._append_chat = register(scripts.APPEND_CHAT)
        self._rate_hit = register(scripts.RATE_HIT)
        self._register_polls()

    @property
    def redis(self) -> aioredis.Redis:  # tests inspect keys and TTLs through it
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix

    # --- key names

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(quote(part, safe="") for part in parts)

    def _lesson_key(self, lesson_id: str) -> str:
        return self._key("lesson", lesson_id)

    def _index_key(self, integration: str, group_id: str | None = None) -> str:
        if group_id is None:
            return self._key("lessons", integration)
        return self._key("lessons", integration, group_id)

    def _active_key(self, integration: str, group_id: str) -> str:
        return self._key("active", integration, group_id)

    def _call_key(self, call_id: str, *parts: str) -> str:
        return self._prefix + "call:" + quote(call_id, safe="") + "".join(":" + p for p in parts)

    def call_keys(self, call_id: str) -> list[str]:
        """Every per-call key except the deadline (which expire_call creates)."""
        return [
            self._call_key(call_id, part)
            for part in (
                "seq",
                "settings",
                "participants",
                "participants:order",
                "waiting",
                "waiting:order",
                "hands",
                "chat",
                "chat:seq",
                "attendance",
                "attendance:order",
                "breakout",
                "polls",
                "polls:order",
            )
        ]

    def _deadline_key(self, call_id: str) -> str:
        return self._call_key(call_id, "expires")

    # --- lessons

    async def create_lesson(self, lesson: Lesson) -> None:
        active_key = self._active_key(lesson.integration, lesson.group_id)
        lesson_key = self._lesson_key(lesson.id)
        doc = _dumps(lesson.to_json())
        for _ in range(MAX_ATTEMPTS):
            current = str(await self._redis.get(active_key) or "")
            result = await self._create_lesson(
                keys=[
                    active_key,
                    lesson_key,
                    self._lesson_key(current) if current else lesson_key,
                    self._index_key(lesson.integration),
                    self._index_key(lesson.integration, lesson.group_id),
                    self._key("lessons", "seq"),
                    self._deadline_key(lesson.id),
                ],
                args=[current, doc, lesson.id, "1" if lesson.active else "0"],
            )
            if result[0] == "ok":
                return
            if result[0] == "conflict":
                raise LessonConflict(Lesson.from_json(json.loads(result[1])))
            # "retry": the class's active lesson changed since we read it.
        raise RuntimeError(f"create_lesson: gave up after {MAX_ATTEMPTS} conflicting writes")

    async def get_lesson(self, lesson_id: str) -> Lesson | None:
        doc = await self._redis.get(self._lesson_key(lesson_id))
        return Lesson.from_json(json.loads(doc)) if doc else None

    async def list_lessons(self, integration: str, group_id: str | None = None) -> list[Lesson]:
        index = self._index_key(integration, group_id)
        ids = cast(list[str], await self._redis.zrange(index, 0, -1))
        if not ids:
            return []
        docs = await self._redis.mget([self._lesson_key(i) for i in ids])
        gone = [i for i, doc in zip(ids, docs, strict=True) if doc is None]
        if gone:
            # Their records expired: prune the index (it never expires itself).
            await self._redis.zrem(index, *gone)
        return [Lesson.from_json(json.loads(doc)) for doc in docs if doc is not None]

    async def _change_lesson(
        self, lesson_id: str, change: Callable[[Lesson], Lesson | None], free_class: bool
    ) -> tuple[Lesson | None, bool]:
        """Apply `change` (None = leave as is) atomically; (lesson after, whether it changed)."""
        key = self._lesson_key(lesson_id)
        for _ in range(MAX_ATTEMPTS):
            doc = await self._redis.get(key)
            if doc is None:
                return None, False
            lesson = Lesson.from_json(json.loads(doc))
            changed = change(lesson)
            if changed is None:
                return lesson, False
            ok = await self._update_lesson(
                keys=[
                    key,
                    self._active_key(lesson.integration, lesson.group_id),
                    self._deadline_key(lesson_id),
                ],
                args=[doc, _dumps(changed.to_json()), lesson_id, "1" if free_class else "0"],
            )
            if ok:
                return changed, True
        raise RuntimeError(f"lesson {lesson_id}: gave up after {MAX_ATTEMPTS} conflicting writes")

    async def open_lesson(self, lesson_id: str, at: datetime) -> Lesson | None:
        def change(lesson: Lesson) -> Lesson | None:
            if lesson.state is not LessonState.CREATED:
                return None
            return replace(lesson, state=LessonState.OPEN, opened_at=at)

        lesson, _ = await self._change_lesson(lesson_id, change, free_class=False)
        return lesson

    async def end_lesson(self, lesson_id: str, at: datetime) -> tuple[Lesson | None, bool]:
        def change(lesson: Lesson) -> Lesson | None:
            if lesson.state is LessonState.ENDED:
                return None
            return replace(lesson, state=LessonState.ENDED, ended_at=at)

        return await self._change_lesson(lesson_id, change, free_class=True)

    async def update_lesson(
        self, lesson_id: str, change: Callable[[Lesson], Lesson | None]
    ) -> Lesson | None:
        def checked(lesson: Lesson) -> Lesson | None:
            changed = change(Lesson.from_json(lesson.to_json()))
            if changed is not None:
                check_update(lesson, changed)
            return changed

        lesson, _ = await self._change_lesson(lesson_id, checked, free_class=False)
        return lesson

    # --- join tokens

    async def rate_hit(self, key: str, limit: int, window: float) -> float | None:
        window_us = max(1, int(window * 1_000_000))
        keys = [self._key("rate", key), self._key("rate", key, "n")]
        wait_us = int(await self._rate_hit(keys=keys, args=[limit, window_us]))
        return None if wait_us < 0 else max(wait_us / 1_000_000, 1e-3)

    async def revoke_token(self, jti: str, until: datetime) -> None:
        key = self._key("revoked", jti)
        at = _ms(until)
        if at <= time.time() * 1000:
            # Already expired: nothing to refuse (and SET PXAT wants the future).
            await self._redis.delete(key)
            return
        await self._redis.set(key, "1", pxat=at)

    async def is_token_revoked(self, jti: str) -> bool:
        return bool(await self._redis.exists(self._key("revoked", jti)))

    # --- call settings

    async def get_settings(self, call_id: str) -> CallSettings:
        doc = await self._redis.get(self._call_key(call_id, "settings"))
        return CallSettings.from_json(json.loads(doc)) if doc else CallSettings()

    async def set_settings(self, call_id: str, settings: CallSettings) -> None:
        await self._set(
            keys=[self._call_key(call_id, "settings"), self._deadline_key(call_id)],
            args=[_dumps(settings.to_json())],
        )

    async def get_breakout(self, call_id: str) -> BreakoutState | None:
        doc = await self._redis.get(self._call_key(call_id, "breakout"))
        return BreakoutState.from_json(json.loads(doc)) if doc else None

    async def set_breakout(self, call_id: str, state: BreakoutState) -> None:
        await self._set(
            keys=[self._call_key(call_id, "breakout"), self._deadline_key(call_id)],
            args=[_dumps(state.to_json())],
        )

    # --- participants and the waiting room (ordered hashes)

    def _ordered_keys(self, call_id: str, name: str) -> list[str]:
        return [
            self._call_key(call_id, name),
            self._call_key(call_id, name, "order"),
            self._call_key(call_id, "seq"),
            self._deadline_key(call_id),
        ]

    async def _put_ordered(self, call_id: str, name: str, record: ParticipantRecord) -> None:
        await self._ordered_put(
            keys=self._ordered_keys(call_id, name), args=[record.id, _dumps(record.to_json())]
        )

    async def _take_ordered(self, call_id: str, name: str, field: str) -> str | None:
        return await self._ordered_take(keys=self._ordered_keys(call_id, name)[:2], args=[field])

    async def _read_ordered(self, call_id: str, name: str) -> list[str]:
        """The hash's values in the order of the sorted set."""
        hash_key, order_key = self._ordered_keys(call_id, name)[:2]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(order_key, 0, -1)
            pipe.hgetall(hash_key)
            order, values = await pipe.execute()
        return [values[field] for field in order if field in values]

    async def put_participant(self, call_id: str, record: ParticipantRecord) -> None:
        await self._put_ordered(call_id, "participants", record)

    async def remove_participant(self, call_id: str, participant_id: str) -> bool:
        return await self._take_ordered(call_id, "participants", participant_id) is not None

    async def participants(self, call_id: str) -> list[ParticipantRecord]:
        docs = await self._read_ordered(call_id, "participants")
        return [ParticipantRecord.from_json(json.loads(doc)) for doc in docs]

    async def put_waiting(self, call_id: str, record: ParticipantRecord) -> None:
        await self._put_ordered(call_id, "waiting", record)

    async def remove_waiting(self, call_id: str, participant_id: str) -> ParticipantRecord | None:
        doc = await self._take_ordered(call_id, "waiting", participant_id)
        return ParticipantRecord.from_json(json.loads(doc)) if doc is not None else None

    async def waiting(self, call_id: str) -> list[ParticipantRecord]:
        docs = await self._read_ordered(call_id, "waiting")
        return [ParticipantRecord.from_json(json.loads(doc)) for doc in docs]

    # --- raised hands (a sorted set scored by raise order)

    async def raise_hand(self, call_id: str, participant_id: str) -> list[str]:
        return await self._raise_hand(
            keys=[
                self._call_key(call_id, "hands"),
                self._call_key(call_id, "seq"),
                self._deadline_key(call_id),
            ],
            args=[participant_id],
        )

    async def lower_hand(self, call_id: str, participant_id: str) -> list[str]:
        return await self._lower_hand(
            keys=[self._call_key(call_id, "hands")], args=[participant_id]
        )

    async def lower_all_hands(self, call_id: str) -> list[str]:
        await self._redis.delete(self._call_key(call_id, "hands"))
        return []

    async def hands(self, call_id: str) -> list[str]:
        return cast(list[str], await self._redis.zrange(self._call_key(call_id, "hands"), 0, -1))

    # --- chat (a stream per call)

    async def append_chat(self, call_id: str, message: ChatMessage) -> ChatMessage:
        # The id is not stored in the JSON: it is the stream entry's "<id>-0".
        body = replace(message, id="").to_json()
        number = await self._append_chat(
            keys=[
                self._call_key(call_id, "chat"),
                self._call_key(call_id, "chat", "seq"),
                self._deadline_key(call_id),
            ],
            args=[_dumps(body)],
        )
        return replace(message, id=str(number))

    async def chat_history(self, call_id: str, limit: int = 500) -> list[ChatMessage]:
        if limit <= 0:
            return []
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self._redis.xrevrange(self._call_key(call_id, "chat"), count=limit),
        )
        messages = []
        for entry_id, fields in reversed(entries):
            data = json.loads(fields["m"])
            data["id"] = entry_id.split("-", 1)[0]
            messages.append(ChatMessage.from_json(data))
        return messages

    # --- attendance (an ordered hash by user id, updated by compare-and-set)

    async def _change_attendance(
        self,
        call_id: str,
        user_id: str,
        change: Callable[[AttendanceRecord | None], AttendanceRecord | None],
    ) -> None:
        keys = self._ordered_keys(call_id, "attendance")
        for _ in range(MAX_ATTEMPTS):
            doc = await self._redis.hget(keys[0], user_id)
            current = AttendanceRecord.from_json(json.loads(doc)) if doc else None
            changed = change(current)
            if changed is None:
                return
            if await self._ordered_cas(
                keys=keys, args=[user_id, doc or "", _dumps(changed.to_json())]
            ):
                return
        raise RuntimeError(f"attendance {call_id}/{user_id}: gave up after {MAX_ATTEMPTS} tries")

    async def record_join(
        self, call_id: str, user_id: str, name: str, role: str, at: datetime
    ) -> None:
        def change(record: AttendanceRecord | None) -> AttendanceRecord:
            if record is None:
                record = AttendanceRecord(
                    user_id=user_id, name=name, role=Role(role), first_join=at
                )
            return record.joined(at)

        await self._change_attendance(call_id, user_id, change)

    async def record_leave(self, call_id: str, user_id: str, at: datetime) -> None:
        def change(record: AttendanceRecord | None) -> AttendanceRecord | None:
            return record.left(at) if record is not None else None

        await self._change_attendance(call_id, user_id, change)

    async def attendance(self, call_id: str) -> list[AttendanceRecord]:
        docs = await self._read_ordered(call_id, "attendance")
        return [AttendanceRecord.from_json(json.loads(doc)) for doc in docs]

    # --- recordings: a JSON document each, and a per-call index by start time.
    # Neither expires with the call: the files outlive the call's other state.

    def _recording_key(self, recording_id: str) -> str:
        return self._key("recording", recording_id)

    def _recordings_key(self, call_id: str) -> str:
        return self._key("recordings", call_id)

    async def put_recording(self, record: RecordingRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._recording_key(record.id), _dumps(record.to_json()))
            pipe.zadd(self._recordings_key(record.call_id), {record.id: _ms(record.started_at)})
            await pipe.execute()

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        doc = await self._redis.get(self._recording_key(recording_id))
        return RecordingRecord.from_json(json.loads(doc)) if doc else None

    async def recordings(self, call_id: str) -> list[RecordingRecord]:
        ids = cast(list[str], await self._redis.zrange(self._recordings_key(call_id), 0, -1))
        if not ids:
            return []
        docs = await self._redis.mget([self._recording_key(i) for i in ids])
        found = [RecordingRecord.from_json(json.loads(doc)) for doc in docs if doc]
        return sorted(found, key=lambda r: (r.started_at, r.id))

    async def delete_recording(self, recording_id: str) -> RecordingRecord | None:
        key = self._recording_key(recording_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.delete(key)
            doc, _ = await pipe.execute()
        if not doc:
            return None
        record = RecordingRecord.from_json(json.loads(doc))
        await self._redis.zrem(self._recordings_key(record.call_id), recording_id)
        return record

    # --- lifetime

    async def expire_call(self, call_id: str, after_seconds: float) -> None:
        at = int(time.time() * 1000) + max(0, int(after_seconds * 1000))
        lesson = await self.get_lesson(call_id)
        deadline = self._deadline_key(call_id)
        # The lesson's class never changes, so its active key can be named up
        # front; the script only expires it if it still points at this lesson.
        active = self._active_key(lesson.integration, lesson.group_id) if lesson else deadline
        await self._expire_call(
            keys=[deadline, self._lesson_key(call_id), active, *self.call_keys(call_id)]
            + await self.poll_answer_keys(call_id),
            args=[at, call_id],
        )

    async def close(self) -> None:
        await self._redis.aclose()
