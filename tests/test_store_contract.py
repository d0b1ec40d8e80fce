"""The Store contract: one suite, run unchanged against every backend.

The Redis run talks to a real redis-server started for the session
(tests/redis_server.py); a missing binary fails these tests, never skips them.
Each Redis test works under its own key prefix.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from breakout.model import BreakoutState
from rooms.lessons import Lesson, LessonConflict, LessonState, Person, Role
from rooms.model import (
    CallSettings,
    ChatMessage,
    ParticipantRecord,
    Permissions,
    RecordingRecord,
    RecordingStatus,
)
from rooms.polls import PollAnswer, PollRecord
from rooms.store import MemoryStore, Store
from rooms.store_factory import create_store
from rooms.store_redis import RedisStore
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)

T0 = datetime(2024, 9, 2, 8, 30, tzinfo=UTC)
# A call's state (or a revocation) told to expire this soon; looked at again this long
# after (the stores take fractions of a second; the product's retention is days).
EXPIRE_S = 0.5
PAST_EXPIRY_S = 0.8

# Makes the stores of `n` nodes sharing one state: the same object in memory,
# separate clients (connection pools) on one Redis.
Nodes = Callable[[int], Awaitable[list[Store]]]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Nodes]]:
    if request.param == "memory":
        store: Store = MemoryStore()

        async def nodes(n: int) -> list[Store]:
            return [store] * n

        yield store, nodes
        await store.close()
        return

    url = request.getfixturevalue("redis_url")
    prefix = f"urok-test-{secrets.token_hex(4)}:"
    opened: list[Store] = []

    def node() -> Store:
        opened.append(RedisStore(url, prefix=prefix))
        return opened[-1]

    async def redis_nodes(n: int) -> list[Store]:
        return [node() for _ in range(n)]

    store = node()
    await store.redis.ping()  # type: ignore[attr-defined]
    yield store, redis_nodes
    for each in opened:
        await each.close()


@pytest.fixture
def store(backend: tuple[Store, Nodes]) -> Store:
    return backend[0]


@pytest.fixture
def nodes(backend: tuple[Store, Nodes]) -> Nodes:
    return backend[1]


def lesson(
    lesson_id: str | None = None,
    *,
    integration: str = "demo",
    group: str = "7A",
    state: LessonState = LessonState.CREATED,
) -> Lesson:
    return Lesson(
        id=lesson_id or "les_" + secrets.token_urlsafe(6),
        integration=integration,
        group_id=group,
        group_title=f"{group} класс",
        subject="Алгебра",
        teacher=Person(id="t1", name="Мария Ивановна", role=Role.TEACHER),
        roster=(
            Person(id="s1", name="Аня", role=Role.STUDENT),
            Person(id="s2", name="Борис", role=Role.STUDENT),
        ),
        starts_at=T0,
        ends_at=T0 + timedelta(minutes=45),
        state=state,
        created_at=T0 - timedelta(minutes=5),
    )


def person(pid: str, **changes: object) -> ParticipantRecord:
    record = ParticipantRecord(id=pid, user_id="u" + pid, name="Имя " + pid, role=Role.STUDENT)
    return replace(record, **changes)  # type: ignore[arg-type]


def text(body: str, author: str = "p1") -> ChatMessage:
    return ChatMessage(
        id="",
        kind="text",
        text=body,
        at=T0,
        author_id=author,
        author_user_id="u" + author,
        author_name="Аня",
        author_role=Role.STUDENT,
    )


# --- lessons


async def test_create_and_get_round_trip(store: Store) -> None:
    created = lesson()
    await store.create_lesson(created)
    assert await store.get_lesson(created.id) == created
    assert await store.get_lesson("les_unknown") is None


async def test_store_keeps_copies(store: Store) -> None:
    created = lesson()
    await store.create_lesson(created)
    created.subject = "changed after create"
    fetched = await store.get_lesson(created.id)
    assert fetched is not None and fetched.subject == "Алгебра"
    fetched.subject = "changed after get"
    again = await store.get_lesson(created.id)
    assert again is not None and again.subject == "Алгебра"


async def test_list_lessons_oldest_first_by_integration_and_class(store: Store) -> None:
    a = lesson("les_a", group="7A")
    b = lesson("les_b", group="8B")
    c = lesson("les_c", group="9C", integration="other")
    await store.end_lesson("les_none", T0)  # unknown: nothing happens
    for each in (a, b, c):
        await store.create_lesson(each)
    await store.end_lesson(a.id, T0)
    d = lesson("les_d", group="7A")
    await store.create_lesson(d)
    assert [x.id for x in await store.list_lessons("demo")] == ["les_a", "les_b", "les_d"]
    assert [x.id for x in await store.list_lessons("demo", "7A")] == ["les_a", "les_d"]
    assert [x.id for x in await store.list_lessons("demo", "9C")] == []
    assert [x.id for x in await store.list_lessons("other")] == ["les_c"]
    assert await store.list_lessons("nobody") == []
    listed = await store.list_lessons("demo", "7A")
    assert listed[0].state is LessonState.ENDED and listed[1].state is LessonState.CREATED


async def test_open_lesson(store: Store) -> None:
    created = lesson()
    await store.create_lesson(created)
    opened = await store.open_lesson(created.id, T0)
    assert opened is not None
    assert opened.state is LessonState.OPEN and opened.opened_at == T0
    # Opening again changes nothing (the first opened_at stays).
    again = await store.open_lesson(created.id, T0 + timedelta(minutes=1))
    assert again == opened
    assert await store.get_lesson(created.id) == opened
    assert await store.open_lesson("les_unknown", T0) is None
    # An ended lesson stays ended.
    await store.end_lesson(created.id, T0 + timedelta(minutes=2))
    after_end = await store.open_lesson(created.id, T0 + timedelta(minutes=3))
    assert after_end is not None and after_end.state is LessonState.ENDED


async def test_end_lesson_once_and_frees_the_class(store: Store) -> None:
    first = lesson("les_first")
    await store.create_lesson(first)
    with pytest.raises(LessonConflict) as conflict:
        await store.create_lesson(lesson("les_second"))
    assert conflict.value.active == first
    assert await store.get_lesson("les_second") is None

    ended, ended_now = await store.end_lesson(first.id, T0 + timedelta(minutes=40))
    assert ended_now
    assert ended is not None
    assert ended.state is LessonState.ENDED and ended.ended_at == T0 + timedelta(minutes=40)
    again, ended_again = await store.end_lesson(first.id, T0 + timedelta(minutes=50))
    assert not ended_again and again == ended
    assert await store.end_lesson("les_unknown", T0) == (None, False)

    second = lesson("les_second")
    await store.create_lesson(second)  # the class is free again
    assert await store.get_lesson(second.id) == second
    with pytest.raises(LessonConflict) as conflict:
        await store.create_lesson(lesson("les_third"))
    assert conflict.value.active.id == "les_second"


async def test_open_lesson_still_holds_the_class(store: Store) -> None:
    first = lesson()
    await store.create_lesson(first)
    await store.open_lesson(first.id, T0)
    with pytest.raises(LessonConflict) as conflict:
        await store.create_lesson(lesson())
    assert conflict.value.active.state is LessonState.OPEN


async def test_classes_are_independent(store: Store) -> None:
    await store.create_lesson(lesson(group="7A"))
    await store.create_lesson(lesson(group="7B"))
    # The same class name in another integration is another class.
    await store.create_lesson(lesson(group="7A", integration="other"))
    # Names that would collide if joined naively with ':'.
    await store.create_lesson(lesson(group="x:y", integration="a"))
    await store.create_lesson(lesson(group="y", integration="a:x"))
    assert len(await store.list_lessons("a")) == 1
    assert len(await store.list_lessons("a:x")) == 1


async def test_an_ended_lesson_does_not_hold_its_class(store: Store) -> None:
    await store.create_lesson(lesson("les_old", state=LessonState.ENDED))
    await store.create_lesson(lesson("les_new"))
    assert [x.id for x in await store.list_lessons("demo", "7A")] == ["les_old", "les_new"]


async def test_parallel_creates_leave_exactly_one(store: Store, nodes: Nodes) -> None:
    # 20 creates for each of 3 classes at once, spread over 5 nodes (5 Redis clients).
    stores = await nodes(5)
    groups = ["7A", "7B", "7C"]
    candidates = [lesson(group=g) for g in groups for _ in range(20)]
    results = await asyncio.gather(
        *(stores[i % 5].create_lesson(c) for i, c in enumerate(candidates)),
        return_exceptions=True,
    )
    for group in groups:
        outcomes = [(c, r) for c, r in zip(candidates, results, strict=True) if c.group_id == group]
        winners = [c for c, r in outcomes if r is None]
        assert len(winners) == 1, outcomes
        losers = [r for _, r in outcomes if r is not None]
        assert all(isinstance(r, LessonConflict) for r in losers), losers
        assert all(r.active == winners[0] for r in losers)  # type: ignore[union-attr]
        assert await store.list_lessons("demo", group) == winners


async def test_parallel_ends_end_once_and_then_one_create_wins(store: Store, nodes: Nodes) -> None:
    stores = await nodes(4)
    first = lesson()
    await store.create_lesson(first)
    ends = await asyncio.gather(*(stores[i % 4].end_lesson(first.id, T0) for i in range(12)))
    assert sum(ended_now for _, ended_now in ends) == 1
    creates = await asyncio.gather(
        *(stores[i % 4].create_lesson(lesson()) for i in range(12)), return_exceptions=True
    )
    assert sum(r is None for r in creates) == 1
    assert all(r is None or isinstance(r, LessonConflict) for r in creates)


async def test_adhoc_fields_round_trip(store: Store) -> None:
    from datetime import date

    from rooms.lessons import LessonKind, Repeat

    call = replace(
        lesson(group="call:les_x"),
        group_title="",
        kind=LessonKind.ADHOC,
        repeat=Repeat.WEEKLY,
        until=date(2024, 12, 20),
    )
    await store.create_lesson(call)
    assert await store.get_lesson(call.id) == call
    assert await store.list_lessons("demo", "call:les_x") == [call]
    plain = lesson()  # a lesson keeps the defaults
    await store.create_lesson(plain)
    fetched = await store.get_lesson(plain.id)
    assert fetched is not None
    assert (fetched.kind, fetched.repeat, fetched.until) == (LessonKind.LESSON, Repeat.NONE, None)


async def test_update_lesson(store: Store) -> None:
    created = lesson()
    await store.create_lesson(created)
    updated = await store.update_lesson(created.id, lambda x: replace(x, subject="Геометрия"))
    assert updated == replace(created, subject="Геометрия")
    assert await store.get_lesson(created.id) == updated
    # None from the change keeps the record; an unknown id answers None.
    assert await store.update_lesson(created.id, lambda x: None) == updated
    assert await store.update_lesson("les_unknown", lambda x: replace(x, subject="x")) is None
    assert await store.get_lesson("les_unknown") is None
    # The change works on a copy: mutating it in place and answering None stores nothing.

    def mutate(x: Lesson) -> None:
        x.subject = "mutated"

    await store.update_lesson(created.id, mutate)  # type: ignore[arg-type]
    assert (await store.get_lesson(created.id)) == updated
    # An ended lesson can still be updated, and stays ended.
    await store.end_lesson(created.id, T0)
    after = await store.update_lesson(created.id, lambda x: replace(x, subject="Итог"))
    assert after is not None and after.state is LessonState.ENDED and after.subject == "Итог"


@pytest.mark.parametrize(
    "change",
    [
        {"id": "les_other"},
        {"integration": "other"},
        {"group_id": "8B"},
        {"state": LessonState.OPEN},
    ],
)
async def test_update_lesson_keeps_identity_class_and_state(
    store: Store, change: dict[str, object]
) -> None:
    created = lesson()
    await store.create_lesson(created)
    with pytest.raises(ValueError):
        await store.update_lesson(
            created.id,
            lambda x: replace(x, subject="x", **change),  # type: ignore[arg-type]
        )
    assert await store.get_lesson(created.id) == created
    # The class is still held by this lesson.
    with pytest.raises(LessonConflict):
        await store.create_lesson(lesson())


async def test_concurrent_updates_all_apply(store: Store, nodes: Nodes) -> None:
    stores = await nodes(4)
    created = lesson()
    await store.create_lesson(created)
    await asyncio.gather(
        *(
            stores[i % 4].update_lesson(created.id, lambda x: replace(x, subject=x.subject + "!"))
            for i in range(12)
        )
    )
    stored = await store.get_lesson(created.id)
    assert stored is not None and stored.subject == "Алгебра" + "!" * 12


async def test_update_after_expire_call_expires_too(store: Store) -> None:
    created = lesson()
    await store.create_lesson(created)
    await store.end_lesson(created.id, T0)
    await store.expire_call(created.id, EXPIRE_S)
    await store.update_lesson(created.id, lambda x: replace(x, subject="later"))
    await asyncio.sleep(PAST_EXPIRY_S)
    assert await store.get_lesson(created.id) is None


# --- join tokens


async def test_revocation_expires(store: Store) -> None:
    now = datetime.now(UTC)
    await store.revoke_token("jti-1", now + timedelta(seconds=EXPIRE_S))
    await store.revoke_token("jti-old", now - timedelta(seconds=1))
    assert await store.is_token_revoked("jti-1")
    assert not await store.is_token_revoked("jti-2")
    assert not await store.is_token_revoked("jti-old")
    await asyncio.sleep(PAST_EXPIRY_S)
    assert not await store.is_token_revoked("jti-1")


# --- rate limits


async def test_rate_hits_are_counted_in_a_sliding_window_shared_by_nodes(nodes: Nodes) -> None:
    first, second = await nodes(2)
    # Three events in the window, on either node; the fourth waits for the first to age.
    assert await first.rate_hit("chat:les_x:s-1", 3, 0.6) is None
    assert await second.rate_hit("chat:les_x:s-1", 3, 0.6) is None
    assert await first.rate_hit("chat:les_x:s-1", 3, 0.6) is None
    wait = await second.rate_hit("chat:les_x:s-1", 3, 0.6)
    assert wait is not None and 0 < wait <= 0.6
    # Refused events are not counted, and other keys are not affected.
    assert await first.rate_hit("chat:les_x:s-1", 3, 0.6) is not None
    assert await first.rate_hit("chat:les_x:s-2", 3, 0.6) is None
    await asyncio.sleep(wait + 0.05)
    assert await second.rate_hit("chat:les_x:s-1", 3, 0.6) is None


# --- settings


async def test_settings_round_trip(store: Store) -> None:
    assert await store.get_settings("les_x") == CallSettings()
    settings = CallSettings(waiting_room=True, guests_allowed=True).with_permissions(
        Role.STUDENT, Permissions(unmute=False, video=False, screen=True, chat=False)
    )
    await store.set_settings("les_x", settings)
    stored = await store.get_settings("les_x")
    assert stored == settings
    assert stored.permissions_for(Role.STUDENT, host=False).unmute is False
    assert stored.permissions_for(Role.PARENT, host=False) == Permissions()
    assert stored.permissions_for(Role.STUDENT, host=True).screen is True
    changed = stored.with_permissions(Role.GUEST, Permissions(chat=False))
    await store.set_settings("les_x", changed)
    assert await store.get_settings("les_x") == changed
    assert await store.get_settings("les_y") == CallSettings()


# --- participants and the waiting room


async def test_participants_in_join_order(store: Store) -> None:
    assert await store.participants("c") == []
    for pid in ("a", "b", "c"):
        await store.put_participant("c", person(pid))
    # Replacing a record keeps its place.
    muted = person("b", audio=False, node="node-2", host=True, cohost=True)
    await store.put_participant("c", muted)
    assert await store.participants("c") == [person("a"), muted, person("c")]
    assert await store.remove_participant("c", "b")
    assert not await store.remove_participant("c", "b")
    assert not await store.remove_participant("other", "a")
    assert [p.id for p in await store.participants("c")] == ["a", "c"]
    # Rejoining puts you at the end.
    await store.put_participant("c", person("b"))
    assert [p.id for p in await store.participants("c")] == ["a", "c", "b"]


async def test_waiting_room_in_arrival_order(store: Store) -> None:
    assert await store.waiting("c") == []
    for pid in ("w3", "w1", "w2"):
        await store.put_waiting("c", person(pid, role=Role.GUEST))
    assert [p.id for p in await store.waiting("c")] == ["w3", "w1", "w2"]
    taken = await store.remove_waiting("c", "w1")
    assert taken == person("w1", role=Role.GUEST)
    assert await store.remove_waiting("c", "w1") is None
    assert [p.id for p in await store.waiting("c")] == ["w3", "w2"]
    # The waiting room and the call are separate.
    assert await store.participants("c") == []


# --- raised hands


async def test_restart_state_goes_to_its_person_once_until_it_expires(store: Store) -> None:
    """What a person had before a node's restart (rooms/calls/restart.py)."""
    state = {"record": {"id": "p_1", "cohost": True}, "floor": True, "spotlight": None}
    await store.put_restart_state("c", "u:1/ё", state, 60)
    assert await store.take_restart_state("c", "u-2") is None  # another person's
    assert await store.take_restart_state("d", "u:1/ё") is None  # another call's
    assert await store.take_restart_state("c", "u:1/ё") == state
    assert await store.take_restart_state("c", "u:1/ё") is None  # taken once
    await store.put_restart_state("c", "u-3", state, 0.05)
    await asyncio.sleep(0.15)  # past the time to live (50 ms)
    assert await store.take_restart_state("c", "u-3") is None


async def test_hands_in_raise_order_without_duplicates(store: Store) -> None:
    assert await store.hands("c") == []
    assert await store.raise_hand("c", "a") == ["a"]
    assert await store.raise_hand("c", "b") == ["a", "b"]
    assert await store.raise_hand("c", "a") == ["a", "b"]
    assert await store.raise_hand("c", "c") == ["a", "b", "c"]
    assert await store.lower_hand("c", "b") == ["a", "c"]
    assert await store.lower_hand("c", "zzz") == ["a", "c"]
    assert await store.raise_hand("c", "b") == ["a", "c", "b"]
    assert await store.hands("c") == ["a", "c", "b"]
    assert await store.lower_all_hands("c") == []
    assert await store.hands("c") == []
    assert await store.lower_hand("c", "a") == []


async def test_concurrent_raises_no_duplicates(store: Store, nodes: Nodes) -> None:
    stores = await nodes(3)
    ids = [f"p{i}" for i in range(10)]
    await asyncio.gather(*(stores[i % 3].raise_hand("c", pid) for i, pid in enumerate(ids * 3)))
    queue = await store.hands("c")
    assert sorted(queue) == sorted(ids)


# --- chat


async def test_chat_ids_and_history(store: Store) -> None:
    assert await store.chat_history("c") == []
    sent = []
    for i in range(5):
        message = text(f"сообщение {i}")
        stored = await store.append_chat("c", message)
        assert isinstance(stored.id, str) and stored.id
        assert replace(stored, id="") == message
        sent.append(stored)
    system = ChatMessage(
        id="", kind="system", text="", at=T0, data={"event": "hand", "who": ["a", 1]}
    )
    sent.append(await store.append_chat("c", system))
    numbers = [int(m.id) for m in sent]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert await store.chat_history("c") == sent
    assert await store.chat_history("c", limit=3) == sent[-3:]
    assert await store.chat_history("c", limit=100) == sent
    assert await store.chat_history("c", limit=0) == []


async def test_concurrent_chat_ids_unique_and_increasing(store: Store, nodes: Nodes) -> None:
    stores = await nodes(4)
    stored = await asyncio.gather(
        *(stores[i % 4].append_chat("c", text(str(i))) for i in range(40))
    )
    assert len({m.id for m in stored}) == 40
    history = await store.chat_history("c")
    assert [int(m.id) for m in history] == sorted(int(m.id) for m in stored)
    assert sorted(m.text for m in history) == sorted(str(i) for i in range(40))


# --- polls


def poll(poll_id: str, room: str = "") -> PollRecord:
    return PollRecord(
        poll_id, room, "Сколько будет 2+2?", ("3", "4"), False, True, "p1", "t1", "Анна",
        "teacher", T0,
    )  # fmt: skip


async def test_polls_in_the_order_asked_and_replaced_in_place(store: Store) -> None:
    assert await store.polls("c") == []
    first, second = poll("poll_1"), poll("poll_2", room="r1")
    await store.put_poll("c", first)
    await store.put_poll("c", second)
    closed = first.closed(T0 + timedelta(minutes=1))
    await store.put_poll("c", closed)
    assert await store.polls("c") == [closed, second]
    assert await store.polls("other") == []


async def test_one_answer_per_voter_even_at_once_from_several_nodes(
    store: Store, nodes: Nodes
) -> None:
    await store.put_poll("c", poll("poll_1"))
    stores = await nodes(3)
    tries = [
        PollAnswer(f"u{i % 4}", f"Имя {i}", (i % 2,), T0 + timedelta(seconds=i)) for i in range(12)
    ]
    kept = await asyncio.gather(
        *(stores[i % 3].answer_poll("c", "poll_1", a) for i, a in enumerate(tries))
    )
    assert sum(kept) == 4  # one per voter
    answers = await store.poll_answers("c", "poll_1")
    assert sorted(a.voter for a in answers) == ["u0", "u1", "u2", "u3"]
    assert [a.at for a in answers] == sorted(a.at for a in answers)  # the order given
    assert all(a in tries for a in answers)
    # A second answer changes nothing; other polls and calls are apart.
    assert not await store.answer_poll("c", "poll_1", PollAnswer("u0", "x", (1, 0), T0))
    assert await store.answer_poll("c", "poll_2", PollAnswer("u0", "x", (1,), T0))
    assert await store.poll_answers("other", "poll_1") == []


# --- attendance


async def test_attendance_accumulates(store: Store) -> None:
    assert await store.attendance("c") == []
    await store.record_join("c", "u2", "Борис", "student", T0)
    await store.record_join("c", "u1", "Аня", "student", T0 + timedelta(seconds=5))
    # Joining again while present (a second tab) changes nothing.
    await store.record_join("c", "u2", "Борис", "student", T0 + timedelta(seconds=30))
    await store.record_leave("c", "u2", T0 + timedelta(seconds=60))
    await store.record_join("c", "u2", "Борис", "student", T0 + timedelta(seconds=120))
    await store.record_leave("c", "u2", T0 + timedelta(seconds=150))
    await store.record_leave("c", "nobody", T0)  # never joined: no record
    await store.record_join("c", "t1", "Мария Ивановна", "teacher", T0 + timedelta(seconds=7))

    records = await store.attendance("c")
    assert [r.user_id for r in records] == ["u2", "u1", "t1"]  # first-join order
    u2, u1, t1 = records
    assert u2.name == "Борис" and u2.role is Role.STUDENT
    assert u2.first_join == T0
    assert u2.last_leave == T0 + timedelta(seconds=150)
    assert u2.seconds_present == 90.0
    assert u2.present_since is None
    assert u1.present_since == T0 + timedelta(seconds=5)
    assert u1.seconds_present == 0.0 and u1.last_leave is None
    assert t1.role is Role.TEACHER

    await store.record_leave("c", "u1", T0 + timedelta(seconds=65))
    await store.record_leave("c", "u1", T0 + timedelta(seconds=70))  # a second leave adds nothing
    u1 = (await store.attendance("c"))[1]
    assert u1.seconds_present == 60.0 and u1.last_leave == T0 + timedelta(seconds=70)


# --- isolation and lifetime


async def fill(store: Store, call_id: str) -> None:
    """Some of every kind of call state, for `call_id`."""
    await store.set_settings(call_id, CallSettings(waiting_room=True))
    await store.put_participant(call_id, person("p1"))
    await store.put_waiting(call_id, person("w1"))
    await store.raise_hand(call_id, "p1")
    await store.append_chat(call_id, text("привет " + call_id))
    await store.record_join(call_id, "up1", "Аня", "student", T0)
    await store.set_breakout(call_id, BreakoutState().configure([call_id]))
    await store.put_poll(call_id, poll("poll_1"))
    await store.answer_poll(call_id, "poll_1", PollAnswer("up1", "Аня", (1,), T0))


async def assert_filled(store: Store, call_id: str) -> None:
    assert (await store.get_settings(call_id)).waiting_room
    assert [p.id for p in await store.participants(call_id)] == ["p1"]
    assert [p.id for p in await store.waiting(call_id)] == ["w1"]
    assert await store.hands(call_id) == ["p1"]
    assert [m.text for m in await store.chat_history(call_id)] == ["привет " + call_id]
    assert [r.user_id for r in await store.attendance(call_id)] == ["up1"]
    breakout = await store.get_breakout(call_id)
    assert breakout is not None and [r.name for r in breakout.rooms] == [call_id]
    assert [p.id for p in await store.polls(call_id)] == ["poll_1"]
    assert [a.voter for a in await store.poll_answers(call_id, "poll_1")] == ["up1"]


async def assert_empty(store: Store, call_id: str) -> None:
    assert await store.get_lesson(call_id) is None
    assert await store.get_settings(call_id) == CallSettings()
    assert await store.participants(call_id) == []
    assert await store.waiting(call_id) == []
    assert await store.hands(call_id) == []
    assert await store.chat_history(call_id) == []
    assert await store.attendance(call_id) == []
    assert await store.get_breakout(call_id) is None
    assert await store.polls(call_id) == []
    assert await store.poll_answers(call_id, "poll_1") == []


async def test_calls_are_isolated(store: Store) -> None:
    # Ids that would collide if keys were joined naively.
    calls = ["les_a", "les_b", "les_a:participants", "les_{a}"]
    for call_id in calls:
        await fill(store, call_id)
    for call_id in calls:
        await assert_filled(store, call_id)
    await store.lower_all_hands("les_a")
    await store.remove_participant("les_a", "p1")
    assert await store.hands("les_b") == ["p1"]
    assert [p.id for p in await store.participants("les_b")] == ["p1"]
    # Chat ids count per call.
    assert (await store.chat_history("les_b"))[0].id == (await store.chat_history("les_a"))[0].id


async def test_expire_call_forgets_everything(store: Store) -> None:
    gone = lesson("les_gone", group="7A")
    kept = lesson("les_kept", group="7B")
    await store.create_lesson(gone)
    await store.create_lesson(kept)
    for call_id in (gone.id, kept.id):
        await fill(store, call_id)

    await store.expire_call(gone.id, EXPIRE_S)
    await assert_filled(store, gone.id)  # not yet
    assert await store.get_lesson(gone.id) == gone
    if isinstance(store, RedisStore):
        await assert_call_keys_expire(store, gone.id, kept.id)

    await asyncio.sleep(PAST_EXPIRY_S)
    await assert_empty(store, gone.id)
    assert [x.id for x in await store.list_lessons("demo")] == [kept.id]
    assert await store.list_lessons("demo", "7A") == []
    # The never-ended lesson's class is free once it has expired.
    await store.create_lesson(lesson("les_next", group="7A"))
    await assert_filled(store, kept.id)
    assert await store.get_lesson(kept.id) == kept


async def assert_call_keys_expire(store: RedisStore, call_id: str, other_call: str) -> None:
    """Every key of `call_id` expires within EXPIRE_S; nothing else of it stays."""
    keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*")]
    # (Plain ids like these appear in keys unquoted.)
    mine = {
        key
        for key in keys
        if key.startswith(f"{store.prefix}call:{call_id}:")
        or key == f"{store.prefix}lesson:{call_id}"
        or (key.startswith(f"{store.prefix}active:") and await store.redis.get(key) == call_id)
    }
    assert f"{store.prefix}lesson:{call_id}" in mine
    assert any(key.startswith(f"{store.prefix}active:") for key in mine)
    assert len(mine) >= 10  # settings, participants, waiting, hands, chat, attendance, ...
    for key in mine:
        ttl = await store.redis.pttl(key)
        assert 0 < ttl <= EXPIRE_S * 1000, (key, ttl)
    # Everything else is the other call's, or a lesson index (which is pruned when read).
    for key in set(keys) - mine:
        rest = key.removeprefix(store.prefix)
        others = (f"call:{other_call}:", f"lesson:{other_call}", "lessons:")
        assert rest.startswith(others) or await store.redis.get(key) == other_call, key


async def test_state_written_after_expire_call_expires_too(store: Store) -> None:
    await store.create_lesson(lesson("les_late"))
    await store.expire_call("les_late", EXPIRE_S)
    await store.end_lesson("les_late", T0)
    await fill(store, "les_late")
    await store.record_leave("les_late", "up1", T0 + timedelta(seconds=30))
    await assert_filled(store, "les_late")
    if isinstance(store, RedisStore):
        # Every key was (re)written after expire_call, and still carries its deadline.
        for key in [*store.call_keys("les_late"), f"{store.prefix}lesson:les_late"]:
            assert 0 < await store.redis.pttl(key) <= EXPIRE_S * 1000, key
    await asyncio.sleep(PAST_EXPIRY_S)
    await assert_empty(store, "les_late")


async def test_expire_call_again_moves_the_deadline(store: Store) -> None:
    await store.create_lesson(lesson("les_moved"))
    await fill(store, "les_moved")
    await store.expire_call("les_moved", EXPIRE_S)
    await store.expire_call("les_moved", 30)
    await asyncio.sleep(PAST_EXPIRY_S)
    await assert_filled(store, "les_moved")
    assert await store.get_lesson("les_moved") is not None


async def test_expire_unknown_call_is_harmless(store: Store) -> None:
    await store.expire_call("les_nothing", EXPIRE_S)
    await fill(store, "les_nothing")
    await asyncio.sleep(PAST_EXPIRY_S)
    await assert_empty(store, "les_nothing")


# --- choosing the backend


async def test_create_store_picks_the_backend(redis_url: str) -> None:
    memory = create_store(None)
    assert isinstance(memory, MemoryStore)
    await memory.close()
    redis_store = create_store(redis_url, prefix=f"urok-test-{secrets.token_hex(4)}:")
    assert isinstance(redis_store, RedisStore)
    await redis_store.create_lesson(lesson("les_factory"))
    assert await redis_store.get_lesson("les_factory") is not None
    await redis_store.close()


async def test_breakout_state_round_trip_and_isolation(store: Store) -> None:
    assert await store.get_breakout("les_b") is None
    state = BreakoutState().configure(["Ромашки", ""]).assign({"s-1": "r1", "s-2": "r2"})
    state = state.open(datetime(2026, 11, 24, 9, tzinfo=UTC), 15, allow_return=True)
    await store.set_breakout("les_b", state)
    assert await store.get_breakout("les_b") == state
    assert await store.get_breakout("les_other") is None
    await store.set_breakout("les_b", state.close())
    stored = await store.get_breakout("les_b")
    assert stored is not None and not stored.opened
    assert stored.assignments == {"s-1": "r1", "s-2": "r2"}


async def test_breakout_state_expires_with_the_call(store: Store) -> None:
    await store.set_breakout("les_e", BreakoutState().configure([""]))
    await store.expire_call("les_e", EXPIRE_S)
    await asyncio.sleep(PAST_EXPIRY_S)
    assert await store.get_breakout("les_e") is None


# --- recordings


def recording(recording_id: str, call_id: str, minute: int, **changes: Any) -> RecordingRecord:
    record = RecordingRecord(
        id=recording_id,
        call_id=call_id,
        integration="demo",
        title="Математика, 7А",
        author_user_id="t-1",
        author_name="Анна Петровна",
        started_at=T0 + timedelta(minutes=minute),
    )
    return replace(record, **changes)


async def test_recordings_listed_per_call_oldest_first_and_updated_in_place(
    store: Store, nodes: Nodes
) -> None:
    other = (await nodes(2))[1]
    await store.put_recording(recording("rec_b", "les_1", 20))
    await store.put_recording(recording("rec_a", "les_1", 5))
    await store.put_recording(recording("rec_c", "les_2", 1))
    assert [r.id for r in await other.recordings("les_1")] == ["rec_a", "rec_b"]
    assert [r.id for r in await other.recordings("les_2")] == ["rec_c"]
    assert await other.recordings("les_none") == []
    assert await other.get_recording("rec_missing") is None

    finished = recording(
        "rec_b",
        "les_1",
        20,
        status=RecordingStatus.READY,
        ended_at=T0 + timedelta(minutes=40),
        duration_s=1199.5,
        size_bytes=123_456_789,
        file="rec_b.mp4",
        thumbnail="rec_b.jpg",
        visibility=(Role.TEACHER, Role.STUDENT),
        complete=False,
    )
    await other.put_recording(finished)
    assert await store.get_recording("rec_b") == finished
    assert [r.id for r in await store.recordings("les_1")] == ["rec_a", "rec_b"]


async def test_deleting_a_recording_unlists_it(store: Store, nodes: Nodes) -> None:
    other = (await nodes(2))[1]
    await store.put_recording(recording("rec_a", "les_1", 1))
    await store.put_recording(recording("rec_b", "les_1", 2))
    assert await other.delete_recording("rec_a") == recording("rec_a", "les_1", 1)
    assert await other.delete_recording("rec_a") is None
    assert await store.get_recording("rec_a") is None
    assert [r.id for r in await store.recordings("les_1")] == ["rec_b"]


async def test_recordings_outlive_the_calls_other_state(store: Store) -> None:
    await store.create_lesson(lesson("les_rec"))
    await fill(store, "les_rec")
    await store.put_recording(recording("rec_kept", "les_rec", 0))
    await store.expire_call("les_rec", EXPIRE_S)
    await asyncio.sleep(PAST_EXPIRY_S)
    await assert_empty(store, "les_rec")
    assert [r.id for r in await store.recordings("les_rec")] == ["rec_kept"]
    assert (await store.get_recording("rec_kept")) == recording("rec_kept", "les_rec", 0)
