"""Every door of a call refuses the same tokens, for the same reason (issue 9).

/call/{id}/info once said `can_join: true` to tokens the join refused (a removed
pupil, a self-signed teacher or student not on the roster, a parent claiming
the student role, a guest where guests may not come), and a guest token read
the chat of a lesson without guests. rooms.admission now decides for all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rooms.lessons import Role
from signalling.config import DEMO_KEY_ID, DEMO_SECRET, Integration, Settings
from signalling.keys import LESSONS, TOKENS
from signalling.tokens import JoinClaims
from tests.live import LiveServer, running_server

OTHER_KEY = "other-journal"
ROSTER = [
    {"id": "s-1", "name": "Ученик 1", "role": "student"},
    {"id": "s-2", "name": "Ученик 2", "role": "student"},
    {"id": "p-1", "name": "Родитель 1", "role": "parent"},
]


def sign(server: LiveServer, lesson_id: str, user: str, role: Role, key: str = DEMO_KEY_ID) -> str:
    """A token the journal signed itself, as the integration guide allows."""
    now = datetime.now(UTC)
    return server.app[TOKENS].mint(
        key_id=key,
        lesson_id=lesson_id,
        user_id=user,
        name=user,
        role=role,
        now=now,
        expires_at=now + timedelta(hours=2),
    )


async def ws_door(server: LiveServer, token: str) -> str:
    async with server.http.ws_connect(server.base_url.replace("http", "ws", 1) + "/ws") as ws:
        await ws.send_str(json.dumps({"type": "join", "token": token}))
        reply: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
        return "joined" if reply["type"] == "joined" else str(reply["code"])


async def http_door(server: LiveServer, path: str, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with server.http.get(server.base_url + path, headers=headers) as resp:
        body = await resp.json()
        if resp.status == 200:
            return "ok"
        return f"{resp.status} {body['error']['code']}"


async def walk(server: LiveServer, lesson_id: str, token: str) -> dict[str, str]:
    return {
        "info": await http_door(server, f"/call/{lesson_id}/info", token),
        "chat": await http_door(server, f"/call/{lesson_id}/chat", token),
        "recordings": await http_door(server, f"/call/{lesson_id}/recordings", token),
        "join": await ws_door(server, token),
    }


def refused_everywhere(code: str, status: int, recordings: str | None = None) -> dict[str, str]:
    return {
        "info": f"{status} {code}",
        "chat": f"{status} {code}",
        "recordings": recordings or f"{status} {code}",
        "join": code,
    }


@pytest.fixture
def settings_with_two_journals() -> dict[str, Any]:
    integrations = (
        *Settings().integrations,
        Integration(key_id=OTHER_KEY, secret="other-secret-0123456789abcdef-xyz", name="Other"),
    )
    return {"integrations": integrations}


async def test_every_door_refuses_the_same_tokens(
    settings_with_two_journals: dict[str, Any],
) -> None:
    async with running_server(**settings_with_two_journals) as server:
        lesson_id = await server.create_lesson(roster=ROSTER)
        lesson = await server.app[LESSONS].get(lesson_id)
        store = server.app[LESSONS].store
        assert not (await store.get_settings(lesson_id)).guests_allowed

        # Let in everywhere: a rostered student.
        student = await server.token(lesson_id, "s-1", "Ученик 1", "student")
        assert await walk(server, lesson_id, student) == {
            "info": "ok",
            "chat": "ok",
            "recordings": "ok",
            "join": "joined",
        }

        removed = await server.token(lesson_id, "s-2", "Ученик 2", "student")
        claims: JoinClaims = server.app[TOKENS].verify(removed, lesson_id)
        await store.revoke_token(claims.jti, datetime.now(UTC) + timedelta(days=1))
        not_in_roster = refused_everywhere("not_in_roster", 403)
        cases = {
            "removed pupil": (removed, refused_everywhere("token_revoked", 403)),
            "self-signed teacher": (sign(server, lesson_id, "t-9", Role.TEACHER), not_in_roster),
            "self-signed student": (sign(server, lesson_id, "s-9", Role.STUDENT), not_in_roster),
            "parent as student": (sign(server, lesson_id, "p-1", Role.STUDENT), not_in_roster),
            "guest, no guests": (
                sign(server, lesson_id, "guest-1", Role.GUEST),
                # Recordings are never for guests, whatever the call allows.
                refused_everywhere("guests_not_allowed", 403, "403 not_permitted"),
            ),
            "another journal's key": (
                sign(server, lesson_id, "s-1", Role.STUDENT, OTHER_KEY),
                refused_everywhere("token_invalid", 401),
            ),
            "tampered": (
                student[:-3] + ("AAA" if student[-3:] != "AAA" else "BBB"),
                refused_everywhere("token_invalid", 401),
            ),
        }
        for name, (token, expected) in cases.items():
            assert await walk(server, lesson_id, token) == expected, name
        assert lesson.teacher.id == "t-1"


async def test_info_says_when_the_join_would_wait_for_the_lesson() -> None:
    async with running_server() as server:
        lesson_id = await server.create_lesson(roster=ROSTER, open_=False)
        student = await server.token(lesson_id, "s-1", "Ученик 1", "student")
        teacher = await server.token(lesson_id, "t-1", "Анна Петровна", "teacher")
        async with server.http.get(
            f"{server.base_url}/call/{lesson_id}/info",
            headers={"Authorization": f"Bearer {student}"},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["can_join"] is False
        assert await ws_door(server, student) == "lesson_not_open"
        async with server.http.get(
            f"{server.base_url}/call/{lesson_id}/info",
            headers={"Authorization": f"Bearer {teacher}"},
        ) as resp:
            assert (await resp.json())["can_join"] is True
        assert await ws_door(server, teacher) == "joined"


def test_demo_secret_is_what_the_docs_name() -> None:
    # docs/api.md shows the demo journal's key: it must be the one the server uses.
    text = open("docs/api.md", encoding="utf-8").read()
    assert DEMO_SECRET in text
    assert replace(Settings()).integration(DEMO_KEY_ID) is not None
