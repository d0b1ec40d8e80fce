"""Names are cleaned the same way at every door: API, invite link, self-signed token (issue 9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from rooms.lessons import Role
from rooms.names import BadName, clean_name
from signalling.config import DEMO_KEY_ID
from signalling.keys import TOKENS
from tests.live import running_server

RLO, ZWSP, ZWJ = "\u202e", "\u200b", "\u200d"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("  Мама\tПети \x07", "Мама Пети"),
        (f"Иван{RLO}вонави", "Иванвонави"),  # a bidi override would reverse the rest
        ("x\x00y\x85z", "xyz"),  # NUL and a C1 control
        ("a\ud800b", "ab"),  # a lone surrogate
        ("Е\u0308ва", "Ёва"),  # NFC: E + combining diaeresis is one letter
        ("Анна\u2028\u00a0Петровна", "Анна Петровна"),
        (f"Пётр{ZWJ}{ZWSP}", "Пётр"),
    ],
)
def test_names_are_cleaned(raw: str, shown: str) -> None:
    assert clean_name(raw) == shown


@pytest.mark.parametrize("raw", ["", "   ", ZWSP * 5, f"{RLO}{ZWJ}\x00", "\t\n"])
def test_names_with_nothing_visible_are_refused(raw: str) -> None:
    with pytest.raises(BadName) as info:
        clean_name(raw)
    assert info.value.code == "name_empty"


def test_over_long_names_are_refused_after_cleaning() -> None:
    assert clean_name(ZWSP * 500 + "Я" * 100) == "Я" * 100
    with pytest.raises(BadName) as info:
        clean_name("Я" * 101)
    assert info.value.code == "name_too_long"


async def test_every_door_cleans_names_alike() -> None:
    async with running_server() as server:
        roster = [
            {"id": "s-1", "name": f"Иван{RLO}вонави", "role": "student"},
            {"id": "s-2", "name": "Пётр", "role": "student"},
        ]
        lesson_id = await server.create_lesson(roster=roster)
        status, lesson = await server.api("GET", f"/api/v1/lessons/{lesson_id}")
        assert status == 200
        assert lesson["roster"][0]["name"] == "Иванвонави"

        status, body = await server.api(
            "POST",
            f"/api/v1/lessons/{lesson_id}/tokens",
            {"user": {"id": "s-2", "name": ZWSP * 3}, "role": "student"},
        )
        assert status == 400, body
        assert body["error"]["field"] == "$.user.name"

        status, body = await server.api(
            "POST",
            "/api/v1/lessons",
            {
                "group": {"id": "6b", "title": "6Б"},
                "subject": ZWJ,
                "teacher": {"id": "t-1", "name": "Анна"},
                "roster": roster,
                "starts_at": datetime.now(UTC).isoformat(),
                "ends_at": (datetime.now(UTC) + timedelta(minutes=45)).isoformat(),
            },
        )
        assert status == 400 and body["error"]["field"] == "$.subject", body

        # A token the journal signed itself, with a NUL and an override in the name.
        now = datetime.now(UTC)
        minted = server.app[TOKENS].mint(
            key_id=DEMO_KEY_ID,
            lesson_id=lesson_id,
            user_id="s-2",
            name=f"Пётр\x00{RLO}",
            role=Role.STUDENT,
            now=now,
            expires_at=now + timedelta(hours=1),
        )
        empty = server.app[TOKENS].mint(
            key_id=DEMO_KEY_ID,
            lesson_id=lesson_id,
            user_id="s-2",
            name=ZWSP,
            role=Role.STUDENT,
            now=now,
            expires_at=now + timedelta(hours=1),
        )
        url = server.base_url.replace("http", "ws", 1) + "/ws"
        async with server.http.ws_connect(url) as ws:
            await ws.send_str(json.dumps({"type": "join", "token": empty}))
            reply = json.loads((await ws.receive(timeout=5)).data)
            assert reply["code"] == "token_invalid" and "name" in reply["message"], reply
        async with server.http.ws_connect(url) as ws:
            await ws.send_str(json.dumps({"type": "join", "token": minted}))
            reply = json.loads((await ws.receive(timeout=5)).data)
            assert reply["type"] == "joined", reply
            assert reply["self"]["name"] == "Пётр"

        status, call = await server.api(
            "POST", "/api/v1/calls", {"title": "Собрание", "host": {"id": "t-1", "name": "Анна"}}
        )
        assert status == 201
        for name, expected in ((f"Мама{RLO} Пети", 201), (ZWSP + ZWJ, 400)):
            async with server.http.post(call["invite_url"], json={"name": name}) as resp:
                assert resp.status == expected, await resp.text()
                if expected == 201:
                    token = (await resp.json())["token"]
                    assert server.app[TOKENS].verify(token).name == "Мама Пети"
