"""Classroom control through the real WebSocket with bots: waiting room, hands,
moderation, permissions, chat, ending. Media checks count real RTP packets."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.bot import Bot, BotError
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.keys import CALLS
from tests.live import LiveServer, running_server
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)

RED = (220, 30, 30)


async def join(
    server: LiveServer, lesson: str, user: str, role: str = "student", **kwargs: Any
) -> Bot:
    bot = Bot(server.base_url, await server.token(lesson, user, f"Имя {user}", role), **kwargs)
    await bot.connect()
    return bot


def of_type(kind: str) -> Any:
    return lambda m: m["type"] == kind


async def expect_error(bot: Bot, message: dict[str, Any], code: str) -> dict[str, Any]:
    reply = await bot.request(message, lambda m: False)
    assert reply["type"] == "error" and reply["code"] == code, reply
    return reply


@pytest.fixture(params=["memory", "redis"])
async def server(request: pytest.FixtureRequest) -> Any:
    """The same classroom runs on either store backend."""
    overrides: dict[str, Any] = {}
    if request.param == "redis":
        import redis.asyncio

        url = request.getfixturevalue("redis_url")
        client = redis.asyncio.from_url(url)
        await client.flushdb()  # one redis-server serves the whole session
        await client.aclose()
        overrides["redis_url"] = url
    async with running_server(**overrides) as live:
        yield live


@pytest.fixture
async def lesson(server: LiveServer) -> str:
    return await server.create_lesson()


@pytest.fixture
async def teacher(server: LiveServer, lesson: str) -> Any:
    bot = await join(server, lesson, "t-1", "teacher")
    yield bot
    await bot.close()


async def test_waiting_room_admit_deny_and_no_media_while_waiting(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    reply = await teacher.request(
        {"type": "set_call_settings", "waiting_room": True}, of_type("call_settings")
    )
    assert reply["settings"]["waiting_room"] is True
    await teacher.publish([(ToneAudioTrack(440), "microphone"), (PatternVideoTrack(RED), "camera")])

    listed = teacher.wait_for(lambda m: m["type"] == "waiting_list" and m["waiting"])
    student = Bot(
        server.base_url, await server.token(lesson, "s-1", "Иван", "student"), decode=False
    )
    reply = await student.connect()
    assert reply["type"] == "waiting"
    assert [p["name"] for p in (await listed)["waiting"]] == ["Иван"]
    try:
        # Nothing works but leave/ping while waiting, and no media arrives.
        await expect_error(student, {"type": "chat_send", "text": "привет"}, "not_admitted")
        await expect_error(student, {"type": "hand", "raised": True}, "not_admitted")
        await asyncio.sleep(1.0)
        assert student.subscriber is None
        assert sum(student.packet_counts.values()) == 0
        assert not any(m["type"] == "subscribe_offer" for m in student.messages)

        joined = student.wait_for(of_type("joined"))
        emptied = teacher.wait_for(lambda m: m["type"] == "waiting_list" and not m["waiting"])
        await teacher.send({"type": "admit", "participant_id": student.id})
        assert (await joined)["self"]["name"] == "Иван"
        await emptied
        deadline = time.monotonic() + 10
        while student.packet_counts[(teacher.id, "video")] < 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert student.packet_counts[(teacher.id, "video")] >= 30
        assert student.packet_counts[(teacher.id, "audio")] > 0

        # Denied: told so and disconnected.
        late = Bot(server.base_url, await server.token(lesson, "s-2", "Пётр", "student"))
        assert (await late.connect())["type"] == "waiting"
        denied = late.wait_for(of_type("denied"))
        await teacher.send({"type": "deny", "participant_id": late.id})
        await denied
        await asyncio.wait_for(late.closed_by_server.wait(), 5)
        await late.close()
    finally:
        await student.close()


async def test_students_cannot_moderate(server: LiveServer, lesson: str, teacher: Bot) -> None:
    student = await join(server, lesson, "s-1")
    other = await join(server, lesson, "s-2")
    try:
        for message in (
            {"type": "mute", "participant_id": other.id, "kind": "audio"},
            {"type": "remove", "participant_id": other.id},
            {"type": "admit_all"},
            {"type": "set_cohost", "participant_id": student.id, "cohost": True},
            {"type": "set_permissions", "role": "student", "permissions": {"screen": True}},
            {"type": "set_call_settings", "waiting_room": True},
            {"type": "end_call"},
            {"type": "lower_all_hands"},
        ):
            await expect_error(student, message, "not_host")
        assert other.id in teacher.participants  # still there
        await expect_error(
            teacher,
            {"type": "mute", "participant_id": "p_nobody", "kind": "audio"},
            "unknown_participant",
        )
    finally:
        await student.close()
        await other.close()


async def test_hands_are_ordered_and_hosts_lower_them(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    a = await join(server, lesson, "s-1")
    b = await join(server, lesson, "s-2")
    try:
        await b.request({"type": "hand", "raised": True}, of_type("hands"))
        reply = await a.request(
            {"type": "hand", "raised": True},
            lambda m: m["type"] == "hands" and len(m["queue"]) == 2,
        )
        assert reply["queue"] == [b.id, a.id]
        # A latecomer sees the queue on joining.
        c = await join(server, lesson, "s-3")
        assert c.joined is not None and c.joined["hands"] == [b.id, a.id]
        await c.close()
        reply = await teacher.request(
            {"type": "lower_hand", "participant_id": b.id},
            lambda m: m["type"] == "hands" and len(m["queue"]) == 1,
        )
        assert reply["queue"] == [a.id]
        reply = await teacher.request(
            {"type": "lower_all_hands"}, lambda m: m["type"] == "hands" and m["queue"] == []
        )
        assert reply["queue"] == []
    finally:
        await a.close()
        await b.close()


async def test_host_mute_stops_forwarding_within_100_ms(server: LiveServer, lesson: str) -> None:
    arrivals: list[float] = []
    teacher = Bot(
        server.base_url,
        await server.token(lesson, "t-1", "Анна", "teacher"),
        decode=False,
        on_packet=lambda pid, packet, at: arrivals.append(at) if pid == student.id else None,
    )
    await teacher.connect()
    student = await join(server, lesson, "s-1")
    try:
        await student.publish([(ToneAudioTrack(440), "microphone")])
        deadline = time.monotonic() + 10
        while teacher.packet_counts[(student.id, "audio")] < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert teacher.packet_counts[(student.id, "audio")] >= 50

        muted = student.wait_for(of_type("muted"))
        sent_at = time.monotonic()
        await teacher.send({"type": "mute", "participant_id": student.id, "kind": "audio"})
        assert (await muted)["kind"] == "audio"
        await asyncio.sleep(1.0)
        last = max(arrivals)
        assert last - sent_at < 0.1, f"audio still arrived {last - sent_at:.3f}s after mute"
        assert teacher.participants[student.id]["audio"] is False

        # The student may unmute (the default permission allows it)...
        count = teacher.packet_counts[(student.id, "audio")]
        await student.send({"type": "media_state", "audio": True, "video": False})
        await asyncio.sleep(0.5)
        assert teacher.packet_counts[(student.id, "audio")] > count + 5
        # ...unless the host takes the right away: muted at once, unmute refused.
        await teacher.request(
            {"type": "set_permissions", "role": "student", "permissions": {"unmute": False}},
            of_type("call_settings"),
        )
        await asyncio.sleep(0.3)
        count = teacher.packet_counts[(student.id, "audio")]
        await expect_error(
            student, {"type": "media_state", "audio": True, "video": False}, "not_permitted"
        )
        await asyncio.sleep(0.5)
        assert teacher.packet_counts[(student.id, "audio")] == count
    finally:
        await student.close()
        await teacher.close()


async def test_mute_all_spares_hosts(server: LiveServer, lesson: str, teacher: Bot) -> None:
    a = await join(server, lesson, "s-1")
    b = await join(server, lesson, "s-2")
    try:
        muted_a, muted_b = a.wait_for(of_type("muted")), b.wait_for(of_type("muted"))
        await teacher.send({"type": "mute_all"})
        await muted_a
        await muted_b
        await asyncio.sleep(0.2)
        assert not any(m["type"] == "muted" for m in teacher.messages)
    finally:
        await a.close()
        await b.close()


async def test_removed_person_cannot_rejoin_with_the_same_token(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    token = await server.token(lesson, "s-1", "Иван", "student")
    student = Bot(server.base_url, token)
    await student.connect()
    removed = student.wait_for(of_type("removed"))
    left = teacher.wait_for(of_type("participant_left"))
    await teacher.send({"type": "remove", "participant_id": student.id})
    assert (await removed)["by"]["id"] == teacher.id
    await asyncio.wait_for(student.closed_by_server.wait(), 5)
    assert (await left)["participant_id"] == student.id
    await student.close()

    again = Bot(server.base_url, token)
    with pytest.raises(BotError, match="token_revoked"):
        await again.connect()
    await again.close()
    # A new token from the journal lets them in again.
    fresh = await join(server, lesson, "s-1")
    await fresh.close()


async def test_screen_share_needs_the_permission(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    student = await join(server, lesson, "s-1")
    try:
        with pytest.raises(BotError, match="not_permitted"):
            await student.publish([(PatternVideoTrack(RED), "screen")])
        call = server.app[CALLS].get(lesson)
        assert call is not None
        assert student.id not in {p.app_data["participant_id"] for p in call.router.producers}
        await teacher.request(
            {"type": "set_permissions", "role": "student", "permissions": {"screen": True}},
            of_type("call_settings"),
        )
        assert student.publisher is None  # the refused connection was closed by the bot
        await student.publish([(PatternVideoTrack(RED), "screen")])
        await student.send({"type": "media_state", "audio": False, "video": False, "screen": True})
        track = await teacher.wait_track(student.id, "video")
        assert track is not None
        info = next(i for i in teacher.track_info.values() if i["participant_id"] == student.id)
        assert info["source"] == "screen"
        # The host stops the share.
        muted = student.wait_for(of_type("muted"))
        await teacher.send({"type": "mute", "participant_id": student.id, "kind": "screen"})
        assert (await muted)["kind"] == "screen"
    finally:
        await student.close()


async def test_chat_history_limits_and_filter(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    student = await join(server, lesson, "s-1")
    try:
        reply = await student.request(
            {"type": "chat_send", "text": "  Здравствуйте!  "}, of_type("chat_message")
        )
        message = reply["message"]
        assert message["text"] == "Здравствуйте!"
        assert message["author_name"] == "Имя s-1" and message["author_role"] == "student"
        assert message["kind"] == "text" and message["filtered"] is False

        reply = await student.request(
            {"type": "chat_send", "text": "ты сука"}, of_type("chat_message")
        )
        assert reply["message"]["filtered"] is True
        assert "сука" not in reply["message"]["text"]

        await expect_error(student, {"type": "chat_send", "text": "я" * 1001}, "chat_too_long")
        await expect_error(student, {"type": "chat_send", "text": "   "}, "chat_empty")
        codes = []
        for i in range(6):
            text = f"спам {i}"
            reply = await student.request(
                {"type": "chat_send", "text": text},
                lambda m, text=text: (
                    m["type"] == "chat_message"
                    and m["message"]["author_id"] == student.id
                    and m["message"]["text"] == text
                ),
            )
            codes.append(reply.get("code", "ok"))
        assert "chat_rate_limited" in codes

        # A newcomer gets the history, oldest first.
        late = await join(server, lesson, "s-2")
        assert late.joined is not None
        texts = [m["text"] for m in late.joined["chat"]]
        assert texts[0] == "Здравствуйте!"
        await late.close()

        # No chat right: refused.
        await teacher.request(
            {"type": "set_permissions", "role": "student", "permissions": {"chat": False}},
            of_type("call_settings"),
        )
        await expect_error(student, {"type": "chat_send", "text": "можно?"}, "not_permitted")
    finally:
        await student.close()


async def test_host_ends_the_call_for_everyone(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    student = await join(server, lesson, "s-1")
    ended = student.wait_for(of_type("call_ended"))
    await teacher.send({"type": "end_call"})
    assert (await ended)["reason"] == "ended_by_host"
    await asyncio.wait_for(student.closed_by_server.wait(), 5)
    status, body = await server.api("GET", f"/api/v1/lessons/{lesson}")
    assert status == 200 and body["state"] == "ended"
    await student.close()


async def test_early_join_margin(server: LiveServer) -> None:
    start = datetime.now(UTC) + timedelta(minutes=30)
    status, body = await server.api(
        "POST",
        "/api/v1/lessons",
        {
            "group": {"id": "7b", "title": "7Б"},
            "subject": "История",
            "teacher": {"id": "t-1", "name": "Анна"},
            "roster": [{"id": "s-1", "name": "Иван", "role": "student"}],
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=45)).isoformat(),
        },
    )
    assert status == 201
    lesson = body["id"]
    await server.api("POST", f"/api/v1/lessons/{lesson}/open")
    early = Bot(server.base_url, await server.token(lesson, "s-1", "Иван", "student"))
    with pytest.raises(BotError, match="lesson_not_open"):
        await early.connect()
    await early.close()
    teacher = await join(server, lesson, "t-1", "teacher")  # the teacher may
    await teacher.close()


async def test_lesson_ends_by_itself_after_end_plus_grace() -> None:
    async with running_server(end_grace_minutes=0, lesson_sweep_seconds=1) as server:
        start = datetime.now(UTC) - timedelta(minutes=40)
        status, body = await server.api(
            "POST",
            "/api/v1/lessons",
            {
                "group": {"id": "9v", "title": "9В"},
                "subject": "Физика",
                "teacher": {"id": "t-1", "name": "Анна"},
                "roster": [],
                "starts_at": start.isoformat(),
                "ends_at": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
            },
        )
        assert status == 201, body
        lesson = body["id"]
        teacher = await join(server, lesson, "t-1", "teacher")
        ended = teacher.wait_for(of_type("call_ended"), timeout=10)
        assert (await ended)["reason"] == "time_over"
        status, body = await server.api("GET", f"/api/v1/lessons/{lesson}")
        assert body["state"] == "ended"
        await teacher.close()


async def test_turning_the_waiting_room_off_lets_everyone_in(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    await teacher.request(
        {"type": "set_call_settings", "waiting_room": True}, of_type("call_settings")
    )
    student = Bot(server.base_url, await server.token(lesson, "s-1", "Иван", "student"))
    assert (await student.connect())["type"] == "waiting"
    joined = student.wait_for(of_type("joined"))
    await teacher.send({"type": "set_call_settings", "waiting_room": False})
    assert (await joined)["self"]["user_id"] == "s-1"
    await student.close()


async def test_people_start_with_what_they_may_switch_on(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    await teacher.request(
        {"type": "set_permissions", "role": "student", "permissions": {"unmute": False}},
        of_type("call_settings"),
    )
    seen = teacher.wait_for(of_type("participant_joined"))
    student = await join(server, lesson, "s-1")
    assert (await seen)["participant"]["audio"] is False
    assert student.joined is not None and student.joined["self"]["audio"] is False
    await expect_error(
        student, {"type": "media_state", "audio": True, "video": True}, "not_permitted"
    )
    await student.close()


async def test_relabelling_a_microphone_as_a_screen_needs_the_right(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    student = await join(server, lesson, "s-1")
    try:
        await student.publish([(ToneAudioTrack(440), "microphone")])
        assert student.publisher is not None
        mid = student.publisher.getTransceivers()[0].mid
        await expect_error(
            student,
            {
                "type": "publish",
                "sdp": student.publisher.localDescription.sdp,
                "tracks": [{"mid": mid, "source": "screen"}],
            },
            "not_permitted",
        )
    finally:
        await student.close()


async def test_giving_the_floor_lets_one_pupil_speak_in_one_step(
    server: LiveServer, lesson: str, teacher: Bot
) -> None:
    await teacher.request(
        {"type": "set_permissions", "role": "student", "permissions": {"unmute": False}},
        of_type("call_settings"),
    )
    a = await join(server, lesson, "s-1")
    b = await join(server, lesson, "s-2")
    try:
        await a.request({"type": "hand", "raised": True}, of_type("hands"))
        await expect_error(b, {"type": "give_floor", "participant_id": a.id}, "not_host")
        granted = a.wait_for(lambda m: m["type"] == "call_settings" and m["permissions"]["unmute"])
        lowered = teacher.wait_for(lambda m: m["type"] == "hands" and m["queue"] == [])
        marked = teacher.wait_for(
            lambda m: m["type"] == "participant_updated" and m["participant"].get("floor")
        )
        await teacher.send({"type": "give_floor", "participant_id": a.id})
        await asyncio.wait_for(asyncio.gather(granted, lowered, marked), 5)
        # The floor is theirs, not their role's: Ivan may speak, Maria still may not.
        on = teacher.wait_for(
            lambda m: (
                m["type"] == "participant_updated"
                and m["participant"]["id"] == a.id
                and m["participant"]["audio"] is True
            )
        )
        await a.send({"type": "media_state", "audio": True, "video": False})
        await asyncio.wait_for(on, 5)
        await expect_error(
            b, {"type": "media_state", "audio": True, "video": False}, "not_permitted"
        )
        # Taken back: muted at once, and unmuting is refused again.
        muted = a.wait_for(of_type("muted"))
        await teacher.send({"type": "give_floor", "participant_id": a.id, "floor": False})
        assert (await asyncio.wait_for(muted, 5))["kind"] == "audio"
        await expect_error(
            a, {"type": "media_state", "audio": True, "video": False}, "not_permitted"
        )
    finally:
        await a.close()
        await b.close()


async def open_one_room(teacher: Bot, pupil: Bot) -> None:
    """Breakout rooms open with one room, "r1", and only `pupil` in it."""
    await teacher.request({"type": "breakout_configure", "count": 1}, of_type("breakout"))
    await teacher.request(
        {"type": "breakout_assign", "assignments": {pupil.id: "r1"}}, of_type("breakout")
    )
    moved = pupil.wait_for(lambda m: m["type"] == "breakout" and m["room"] == "r1")
    await teacher.send({"type": "breakout_open"})
    await moved
