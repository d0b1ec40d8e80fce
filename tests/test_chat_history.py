"""A call's chat history over HTTP (GET /call/{lesson_id}/chat), during and after the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from bench.bot import Bot
from rooms.lessons import Role
from signalling.config import DEMO_KEY_ID, DEMO_SECRET, ConfigError, settings_from_mapping
from signalling.keys import LESSONS, TOKENS
from signalling.tokens import TokenError, TokenService
from tests.live import LiveServer, running_server


def of_type(kind: str) -> Any:
    return lambda m: m["type"] == kind


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with running_server() as live:
        yield live


async def history(server: LiveServer, lesson_id: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with server.http.get(f"{server.base_url}/call/{lesson_id}/chat", headers=headers) as r:
        assert r.headers["Cache-Control"] == "no-store"
        return r.status, await r.json()


def mint(server: LiveServer, lesson_id: str, user_id: str, role: Role, expires_at: datetime) -> str:
    return server.app[TOKENS].mint(
        key_id=DEMO_KEY_ID,
        lesson_id=lesson_id,
        user_id=user_id,
        name=f"Имя {user_id}",
        role=role,
        now=expires_at - timedelta(hours=1),
        expires_at=expires_at,
    )


async def say(bot: Bot, text: str) -> dict[str, Any]:
    return await bot.request({"type": "chat_send", "text": text}, of_type("chat_message"))


async def test_history_during_and_after_the_call(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher_token = await server.token(lesson, "t-1", "Анна Петровна", "teacher")
    student_token = await server.token(lesson, "s-1", "Ученик 1", "student")
    teacher, student = Bot(server.base_url, teacher_token), Bot(server.base_url, student_token)
    await teacher.connect()
    await student.connect()
    try:
        await say(teacher, "Откройте учебник на странице 42")
        await say(student, "Готово!")
        status, body = await history(server, lesson, student_token)
        assert status == 200
        texts = [(m["kind"], m["author_name"], m["text"]) for m in body["messages"]]
        assert ("text", "Анна Петровна", "Откройте учебник на странице 42") in texts
        assert ("text", "Ученик 1", "Готово!") in texts
        ids = [int(m["id"]) for m in body["messages"]]
        assert ids == sorted(ids)
        ended = student.wait_for(of_type("call_ended"))
        status, _ = await server.api("DELETE", f"/api/v1/lessons/{lesson}")
        assert status == 200
        await ended
    finally:
        await teacher.close()
        await student.close()

    # After the lesson has ended: still readable, by everyone who was in it.
    for token in (student_token, teacher_token):
        status, after = await history(server, lesson, token)
        assert status == 200
        # What was there during the call still is (system messages may follow).
        assert after["messages"][: len(body["messages"])] == body["messages"]
        assert [m["text"] for m in after["messages"] if m["kind"] == "text"] == [
            "Откройте учебник на странице 42",
            "Готово!",
        ]


async def test_history_refusals(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    other = await server.create_lesson(group_id="6b")
    student_token = await server.token(lesson, "s-1", "Ученик 1", "student")

    assert (await history(server, lesson, None))[0] == 401
    status, body = await history(server, other, student_token)
    assert status == 401 and body["error"]["code"] == "token_invalid"
    assert (await history(server, lesson, "not-a-jwt"))[0] == 401
    async with server.http.get(
        f"{server.base_url}/call/{lesson}/chat", headers={"Authorization": "Basic eDp5"}
    ) as resp:
        assert resp.status == 401
    orphan = mint(
        server, "les_missing", "s-1", Role.STUDENT, datetime.now(UTC) + timedelta(hours=1)
    )
    status, body = await history(server, "les_missing", orphan)
    assert status == 404 and body["error"]["code"] == "lesson_not_found"
    # A journal-signed token for someone not on the roster (the join rules apply).
    stranger = mint(server, lesson, "x-9", Role.STUDENT, datetime.now(UTC) + timedelta(hours=1))
    status, body = await history(server, lesson, stranger)
    assert status == 403 and body["error"]["code"] == "not_in_roster"


async def test_a_removed_participant_cannot_read(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна Петровна", "teacher"))
    student_token = await server.token(lesson, "s-1", "Ученик 1", "student")
    student = Bot(server.base_url, student_token)
    await teacher.connect()
    await student.connect()
    try:
        assert (await history(server, lesson, student_token))[0] == 200
        removed = student.wait_for(of_type("removed"))
        await teacher.send({"type": "remove", "participant_id": student.id})
        await removed
        await asyncio.wait_for(student.closed_by_server.wait(), 5)
        status, body = await history(server, lesson, student_token)
        assert status == 403 and body["error"]["code"] == "token_revoked"
    finally:
        await teacher.close()
        await student.close()


async def test_expired_tokens_read_within_the_window(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    now = datetime.now(UTC)
    days = server.settings.chat_history_days
    assert days == 30
    recent = mint(server, lesson, "s-1", Role.STUDENT, now - timedelta(days=1))
    assert (await history(server, lesson, recent))[0] == 200
    old = mint(server, lesson, "s-1", Role.STUDENT, now - timedelta(days=days, minutes=1))
    status, body = await history(server, lesson, old)
    assert status == 401 and "expired" in body["error"]["message"]
    # Guests read only where guests may come (as the join decides) ...
    guest = mint(server, lesson, "g-1", Role.GUEST, now + timedelta(minutes=5))
    status, body = await history(server, lesson, guest)
    assert status == 403 and body["error"]["code"] == "guests_not_allowed"
    store = server.app[LESSONS].store
    await store.set_settings(lesson, replace(await store.get_settings(lesson), guests_allowed=True))
    # ... and only while their token is valid.
    assert (await history(server, lesson, guest))[0] == 200
    expired_guest = mint(server, lesson, "g-1", Role.GUEST, now - timedelta(minutes=1))
    assert (await history(server, lesson, expired_guest))[0] == 401
    # The ad-hoc call's guests by invite link too.
    status, call = await server.api(
        "POST", "/api/v1/calls", {"title": "Собрание", "host": {"id": "h", "name": "Хозяйка"}}
    )
    async with server.http.post(call["invite_url"], json={"name": "Гость"}) as resp:
        minted = await resp.json()
    status, body = await history(server, call["id"], minted["token"])
    assert status == 200 and body == {"messages": []}


async def test_window_is_configurable() -> None:
    async with running_server(chat_history_days=0) as server:
        lesson = await server.create_lesson()
        expired = mint(server, lesson, "s-1", Role.STUDENT, datetime.now(UTC) - timedelta(hours=1))
        assert (await history(server, lesson, expired))[0] == 401
        fresh = await server.token(lesson, "s-1", "Ученик 1", "student")
        assert (await history(server, lesson, fresh))[0] == 200


def test_verify_for_history_keeps_the_other_checks() -> None:
    from signalling.config import Settings

    service = TokenService(Settings())
    now = datetime.now(UTC)
    window = timedelta(days=30)

    def token(**changes: Any) -> str:
        claims: dict[str, Any] = {
            "iss": "urok",
            "aud": "urok-call",
            "sub": "s-1",
            "name": "Ученик",
            "role": "student",
            "lesson": "les_1",
            "iat": int((now - timedelta(days=2)).timestamp()),
            "nbf": int((now - timedelta(days=2)).timestamp()),
            "exp": int((now - timedelta(days=1)).timestamp()),
            "jti": "j-1",
        }
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        secret = claims.pop("_secret", DEMO_SECRET)
        return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": DEMO_KEY_ID})

    assert service.verify_for_history(token(), "les_1", now, window).user_id == "s-1"
    with pytest.raises(TokenError, match="expired"):
        service.verify(token())  # the join check still refuses it
    for bad, reason in (
        (token(), "another lesson"),
        (token(_secret="another-secret-0123456789abcdef0123"), "invalid"),
        (token(aud="urok-api"), "invalid"),
        (token(iss="someone"), "invalid"),
        (token(exp=None), "invalid"),
        (token(exp="soon"), "exp"),
        (token(nbf=int((now + timedelta(hours=1)).timestamp())), "not valid yet"),
        (token(role="admin"), "role"),
    ):
        lesson = "les_2" if reason == "another lesson" else "les_1"
        with pytest.raises(TokenError, match=reason):
            service.verify_for_history(bad, lesson, now, window)
    with pytest.raises(TokenError, match="expired"):
        service.verify_for_history(token(), "les_1", now, timedelta(hours=1))


def test_chat_history_days_setting() -> None:
    assert settings_from_mapping({"chat_history_days": 7}).chat_history_days == 7
    for bad in (-1, 366, True, "7"):
        with pytest.raises(ConfigError, match="chat_history_days"):
            settings_from_mapping({"chat_history_days": bad})
