"""Resuming after a dropped WebSocket (docs/protocol.md "resume"), with bots over real
sockets against the real server, on both store backends: the same participant comes
back with hand, mute and place; nobody hears "left"; missed chat is replayed once, in
order; media keeps flowing; after the grace it is a fresh join."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.keys import CALLS, STORE
from tests.live import LiveServer, running_server
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)

GREEN = (30, 200, 30)
BLUE = (30, 30, 220)


async def _server(request: pytest.FixtureRequest, **overrides: Any) -> Any:
    if request.param == "redis":
        import redis.asyncio

        url = request.getfixturevalue("redis_url")
        client = redis.asyncio.from_url(url)
        await client.flushdb()  # one redis-server serves the whole session
        await client.aclose()
        overrides["redis_url"] = url
    return running_server(**overrides)


@pytest.fixture(params=["memory", "redis"])
async def server(request: pytest.FixtureRequest) -> Any:
    """A grace long enough for any resume of these tests."""
    async with await _server(request, resume_grace_seconds=30) as live:
        yield live


@pytest.fixture(params=["memory", "redis"])
async def short_grace(request: pytest.FixtureRequest) -> Any:
    async with await _server(request, resume_grace_seconds=1) as live:
        yield live


async def bot(server: LiveServer, lesson: str, user: str, role: str = "student") -> Bot:
    made = Bot(server.base_url, await server.token(lesson, user, f"Имя {user}", role), decode=False)
    await made.connect()
    return made


def of_type(kind: str) -> Any:
    return lambda m: m["type"] == kind


async def packets_grow(bot: Bot, source: str, kind: str, by: int = 20, within: float = 30) -> None:
    """`bot` receives at least `by` more packets of `source`'s `kind` within `within` s."""
    start = bot.packet_counts[(source, kind)]
    deadline = time.monotonic() + within
    while bot.packet_counts[(source, kind)] < start + by:
        assert time.monotonic() < deadline, f"{kind} from {source} stopped at {start}"
        await asyncio.sleep(0.05)


async def chat(sender: Bot, text: str, *receivers: Bot) -> int:
    """Post `text` as `sender`; its seq, once `sender` and every receiver got it."""

    def is_it(m: dict[str, Any]) -> bool:
        return m["type"] == "chat_message" and m["message"]["text"] == text

    waiters = [receiver.wait_for(is_it) for receiver in receivers]
    reply = await sender.request({"type": "chat_send", "text": text}, is_it)
    assert reply["type"] == "chat_message", reply
    for waiter in waiters:
        await waiter
    return int(reply["message"]["seq"])


def messages_about(bot: Bot, participant_id: str, since: int = 0) -> list[dict[str, Any]]:
    return [
        m
        for m in bot.messages[since:]
        if m["type"] in ("participant_left", "participant_joined")
        and participant_id in (m.get("participant_id"), m.get("participant", {}).get("id"))
    ]


async def test_resume_within_grace_keeps_the_participant(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    pupil = await bot(server, lesson, "s-1")
    late: Bot | None = None
    try:
        await teacher.publish(
            [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack(GREEN), "camera")]
        )
        await pupil.publish(
            [(ToneAudioTrack(660), "microphone"), (PatternVideoTrack(BLUE), "camera")]
        )
        await packets_grow(pupil, teacher.id, "video")
        await packets_grow(teacher, pupil.id, "video")
        assert pupil.joined is not None
        session, pupil_id = pupil.joined["resume"]["session"], pupil.id
        assert pupil.joined["resume"]["grace_s"] == 30 and len(session) >= 32
        hands = teacher.wait_for(lambda m: m["type"] == "hands" and m["queue"] == [pupil_id])
        await pupil.send({"type": "hand", "raised": True})
        await hands
        muted = teacher.wait_for(
            lambda m: m["type"] == "participant_updated" and m["participant"]["id"] == pupil_id
        )
        await pupil.send({"type": "media_state", "audio": False, "video": True})
        await muted
        await chat(teacher, "до обрыва", pupil)
        seen = len(teacher.messages)

        await pupil.drop_signalling()
        # Away: the media connections do not depend on the WebSocket, the pupil's video
        # still reaches the teacher; the chat goes on without them; someone new comes
        # and publishes (the offer for the pupil goes into the dead socket).
        await packets_grow(teacher, pupil_id, "video")
        missed = [await chat(teacher, f"пока тебя нет {i}") for i in range(3)]
        late = await bot(server, lesson, "s-2")
        await late.publish([(PatternVideoTrack(GREEN), "camera")])
        attendance = {r.user_id: r for r in await server.app[STORE].attendance(lesson)}
        assert attendance["s-1"].last_leave is None  # not counted as leaving

        resumed = await pupil.resume()
        assert resumed["type"] == "resumed", resumed
        assert resumed["state"] == "in_call"
        assert resumed["self"]["id"] == pupil_id
        assert resumed["self"]["audio"] is False and resumed["self"]["video"] is True
        assert resumed["resume"]["session"] == session
        assert resumed["hands"] == [pupil_id]
        assert resumed["permissions"]["chat"] is True
        assert {p["id"] for p in resumed["participants"]} == {teacher.id, late.id}
        assert [m["seq"] for m in resumed["chat"]] == missed  # only the missed, in order
        assert [m["text"] for m in resumed["chat"]] == [f"пока тебя нет {i}" for i in range(3)]

        after = await chat(teacher, "с возвращением", pupil)
        delivered = [m["message"]["seq"] for m in pupil.messages if m["type"] == "chat_message"]
        assert delivered.count(after) == 1
        assert not set(missed) & set(delivered)  # replayed in `resumed` only, never again

        # Media both ways on the same connections, and the newcomer's, from the offer
        # the resume sent again.
        await packets_grow(pupil, teacher.id, "video")
        await packets_grow(teacher, pupil_id, "video")
        await packets_grow(pupil, late.id, "video")
        # The pupil still acts as themselves; nobody was told they left or came.
        lowered = teacher.wait_for(lambda m: m["type"] == "hands" and m["queue"] == [])
        await pupil.send({"type": "hand", "raised": False})
        await lowered
        assert messages_about(teacher, pupil_id, seen) == []
        attendance = {r.user_id: r for r in await server.app[STORE].attendance(lesson)}
        assert attendance["s-1"].last_leave is None
        assert attendance["s-1"].present_since == attendance["s-1"].first_join
    finally:
        for one in (pupil, teacher, late):
            if one is not None:
                await one.close()


async def test_after_the_grace_the_person_left_and_joins_afresh(short_grace: LiveServer) -> None:
    server = short_grace
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    pupil = await bot(server, lesson, "s-1")
    try:
        old_id = pupil.id
        left = teacher.wait_for(
            lambda m: m["type"] == "participant_left" and m["participant_id"] == old_id, 10
        )
        dropped_at = datetime.now(UTC)
        await pupil.drop_signalling()
        await left
        gone_at = datetime.now(UTC)
        assert (gone_at - dropped_at).total_seconds() >= 0.9  # held for the grace first
        attendance = {r.user_id: r for r in await server.app[STORE].attendance(lesson)}
        leave = attendance["s-1"].last_leave
        # The leave is dated when the connection dropped, not when the grace ran out.
        assert leave is not None and (leave - dropped_at).total_seconds() < 0.5

        reply = await pupil.resume()
        assert reply["type"] == "error" and reply["code"] == "resume_failed", reply
        joined = pupil.wait_for(of_type("joined"))
        await pupil.send({"type": "join", "token": pupil.token})  # same connection
        fresh = await joined
        assert fresh["self"]["id"] != old_id
        assert fresh["resume"]["session"] != reply.get("session")
    finally:
        await pupil.close()
        await teacher.close()


async def test_a_second_connection_with_the_session_replaces_the_first(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    pupil = await bot(server, lesson, "s-1")
    try:
        assert pupil.joined is not None
        session, pupil_id = pupil.joined["resume"]["session"], pupil.id
        seen = len(teacher.messages)
        first_ws = pupil.ws
        assert first_ws is not None
        replaced = pupil.wait_for(lambda m: m == {"type": "call_ended", "reason": "replaced"})
        # The first socket is still open: a resume on a second one takes over.
        async with aiohttp.ClientSession() as http:
            url = server.base_url.replace("http", "ws", 1) + "/ws"
            async with http.ws_connect(url) as second:
                await second.send_json({"type": "resume", "session": session, "token": pupil.token})
                reply = json.loads((await second.receive(10)).data)
                assert reply["type"] == "resumed" and reply["self"]["id"] == pupil_id, reply
                await replaced
                await asyncio.wait_for(pupil.closed_by_server.wait(), 5)
                assert first_ws.closed
                await second.send_json({"type": "hand", "raised": True})
                msg = json.loads((await second.receive(10)).data)
                assert msg == {"type": "hands", "queue": [pupil_id]}
                assert messages_about(teacher, pupil_id, seen) == []
                assert pupil_id in server.app[CALLS].calls[lesson].participants
    finally:
        await pupil.close()
        await teacher.close()


async def test_refused_resumes(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    pupil = await bot(server, lesson, "s-1")
    other = await bot(server, lesson, "s-2")
    url = server.base_url.replace("http", "ws", 1) + "/ws"
    try:
        assert pupil.joined is not None
        session = pupil.joined["resume"]["session"]

        async def attempt(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
            await ws.send_json(message)
            reply = json.loads((await ws.receive(10)).data)
            assert isinstance(reply, dict)
            return reply

        async with server.http.ws_connect(url) as ws:
            # Unknown session: refused, and the connection stays for a join.
            reply = await attempt(
                ws, {"type": "resume", "session": "s_nope", "token": pupil.token, "id": "r1"}
            )
            assert (reply["type"], reply["code"], reply["ref"]) == ("error", "resume_failed", "r1")
            # Not ASCII: compared as bytes, refused like any unknown session.
            reply = await attempt(
                ws, {"type": "resume", "session": "сессия-ё", "token": pupil.token}
            )
            assert reply["code"] == "resume_failed", reply
            # Another person's session with one's own valid token: refused.
            reply = await attempt(ws, {"type": "resume", "session": session, "token": other.token})
            assert reply["code"] == "resume_failed", reply
            # Invalid messages are validated like any other.
            reply = await attempt(ws, {"type": "resume", "session": session})
            assert reply["code"] == "bad_message", reply
            reply = await attempt(
                ws,
                {"type": "resume", "session": session, "token": pupil.token, "last_chat_seq": -3},
            )
            assert reply["code"] == "bad_message", reply
            assert await attempt(ws, {"type": "ping", "id": "p"}) == {"type": "pong", "ref": "p"}
        async with server.http.ws_connect(url) as ws:
            # A forged token with a real session id: refused and closed, like a join.
            reply = await attempt(ws, {"type": "resume", "session": session, "token": "x.y.z"})
            assert reply["code"] == "token_invalid", reply
            assert (await ws.receive(5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        # Nothing of that touched the pupil, who can still resume; a resume on a
        # connection that is in the call already is refused.
        await pupil.drop_signalling()
        resumed = await pupil.resume()
        assert resumed["type"] == "resumed", resumed
        again = await pupil.request(
            {"type": "resume", "session": session, "token": pupil.token}, lambda m: False
        )
        assert again["code"] == "already_joined"
        # Removed by the host: the session is gone with the person, the token revoked.
        removed = pupil.wait_for(of_type("removed"))
        await teacher.send({"type": "remove", "participant_id": pupil.id})
        await removed
        async with server.http.ws_connect(url) as ws:
            reply = await attempt(ws, {"type": "resume", "session": session, "token": pupil.token})
            assert reply["code"] == "resume_failed", reply
            reply = await attempt(ws, {"type": "join", "token": pupil.token})
            assert reply["code"] == "token_revoked", reply
    finally:
        for one in (pupil, other, teacher):
            await one.close()


async def test_a_waiting_person_keeps_their_place(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    await teacher.request(
        {"type": "set_call_settings", "waiting_room": True}, of_type("call_settings")
    )
    await teacher.publish([(PatternVideoTrack(GREEN), "camera")])
    first = Bot(server.base_url, await server.token(lesson, "s-1", "Первый", "student"))
    second = Bot(
        server.base_url, await server.token(lesson, "s-2", "Второй", "student"), decode=False
    )
    try:
        both = teacher.wait_for(lambda m: m["type"] == "waiting_list" and len(m["waiting"]) == 2)
        assert (await first.connect())["type"] == "waiting"
        assert (await second.connect())["type"] == "waiting"
        assert [p["name"] for p in (await both)["waiting"]] == ["Первый", "Второй"]
        first_id = first.id
        seen = len(teacher.messages)
        await first.drop_signalling()
        await asyncio.sleep(0.5)
        resumed = await first.resume()
        assert resumed["type"] == "resumed" and resumed["state"] == "waiting", resumed
        assert resumed["self"]["id"] == first_id
        # The host's queue never changed: still first in line.
        lists = [m for m in teacher.messages[seen:] if m["type"] == "waiting_list"]
        assert lists == []
        waiting = await server.app[STORE].waiting(lesson)
        assert [r.id for r in waiting] == [first_id, second.id]
        # Admitted on the resumed connection.
        joined = first.wait_for(of_type("joined"))
        await teacher.send({"type": "admit", "participant_id": first_id})
        assert (await joined)["self"]["id"] == first_id

        # Admitted while away: the resume enters the call, with the media offer.
        second_id = second.id
        await second.drop_signalling()
        await teacher.request(
            {"type": "admit", "participant_id": second_id},
            lambda m: m["type"] == "waiting_list" and m["waiting"] == [],
        )
        resumed = await second.resume()
        assert resumed["type"] == "resumed" and resumed["state"] == "in_call", resumed
        assert resumed["self"]["id"] == second_id
        await packets_grow(second, teacher.id, "video")
    finally:
        for one in (first, second, teacher):
            await one.close()


async def test_resume_in_a_breakout_room_with_changes_made_while_away(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    pupil = await bot(server, lesson, "s-1")
    mate = await bot(server, lesson, "s-2")
    try:
        await mate.publish([(PatternVideoTrack(BLUE), "camera")])
        await teacher.request({"type": "breakout_configure", "count": 2}, of_type("breakout"))
        await teacher.request(
            {"type": "breakout_assign", "assignments": {pupil.id: "r1", mate.id: "r1"}},
            of_type("breakout"),
        )
        moved = pupil.wait_for(lambda m: m["type"] == "breakout" and m["room"] == "r1")
        await teacher.send({"type": "breakout_open", "minutes": 10})
        await moved
        await packets_grow(pupil, mate.id, "video")

        await pupil.drop_signalling()
        # While away: the chat right is taken from students, the main room talks
        # (not the pupil's room), the host writes to every room, the roommate too.
        await teacher.request(
            {"type": "set_permissions", "role": "student", "permissions": {"chat": False}},
            of_type("call_settings"),
        )
        await chat(teacher, "только для общей комнаты")
        broadcast = teacher.wait_for(
            lambda m: m["type"] == "chat_message" and m["message"]["room"] == "*"
        )
        await teacher.send({"type": "breakout_broadcast", "text": "Осталось 5 минут"})
        await broadcast

        room_waiter = pupil.wait_for(of_type("breakout"))
        resumed = await pupil.resume()
        assert resumed["type"] == "resumed" and resumed["state"] == "in_call", resumed
        assert resumed["permissions"]["chat"] is False
        assert [m["text"] for m in resumed["chat"]] == ["Осталось 5 минут"]
        room = await room_waiter
        assert room["room"] == "r1" and room["state"]["opened"] is True
        await packets_grow(pupil, mate.id, "video")  # still in r1, on the same connection
        refused = await pupil.request({"type": "chat_send", "text": "можно?"}, lambda m: False)
        assert refused["code"] == "not_permitted"
    finally:
        for one in (pupil, mate, teacher):
            await one.close()


async def test_the_call_waits_for_its_last_person_to_come_back(short_grace: LiveServer) -> None:
    server = short_grace
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    try:
        await teacher.drop_signalling()
        await asyncio.sleep(0.3)
        assert lesson in server.app[CALLS].calls  # held: the call is not empty
        deadline = time.monotonic() + 10
        while lesson in server.app[CALLS].calls:
            assert time.monotonic() < deadline, "the call outlived its last person's grace"
            await asyncio.sleep(0.1)
    finally:
        await teacher.close()


async def test_the_outlet_holds_back_until_resumed_and_never_repeats_the_replay() -> None:
    from rooms.calls.resume import Outlet

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def chat_message(seq: int) -> dict[str, Any]:
        return {"type": "chat_message", "message": {"seq": seq}}

    outlet = Outlet(send, replayed_up_to=7)
    # Posted while the `resumed` message (with the replay up to 7) was being made.
    await outlet(chat_message(7))
    await outlet({"type": "hands", "queue": []})
    await outlet(chat_message(8))
    assert sent == []  # nothing overtakes `resumed`
    await send({"type": "resumed"})
    await outlet.open()
    await outlet(chat_message(6))  # a late delivery of a replayed message
    await outlet(chat_message(9))
    assert sent == [
        {"type": "resumed"},
        {"type": "hands", "queue": []},
        chat_message(8),
        chat_message(9),
    ]
