"""No message, frame or body can keep the server's event loop busy (issue 9).

Each attack once blocked the loop for seconds: a 15 KB frame of 1,500 objects
before join (2.2 s), a 200 KB publish of 100,000 tracks (2.8 s and 200 MB), a
journal roster of 60,000 `{}` (2.85 s), JSON nested 10,000 deep (a 500). The
server here runs on the test's loop, so a probe coroutine on that loop sees any
time the server kept it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from signalling.config import DEMO_SECRET
from signalling.protocol import (
    MAX_JSON_VALUES,
    MAX_NUMBER_CHARS,
    ProtocolError,
    decode_json,
    parse_message,
)
from tests.live import LiveServer, running_server
from tests.loop_lag import probing

# No callback on the loop may take more CPU than this (once: 2,200 ms).
LAG_BOUND = 0.02


async def exchange(ws: aiohttp.ClientWebSocketResponse, frame: str) -> dict[str, Any]:
    await ws.send_str(frame)
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


def objects(count: int) -> list[dict[str, int]]:
    return [{"a": i} for i in range(count)]


# Frames that once cost the square of a list's length, or more memory than the
# frame, and what each gets now, before join and after.
ATTACKS: list[tuple[str, str, str]] = [
    # (frame, reply before join, reply after join as a student)
    (
        json.dumps({"type": "recording_start", "visibility": objects(500)}),
        "not_joined",
        "bad_message",
    ),
    (
        json.dumps({"type": "recording_start", "visibility": objects(1500)}),
        "too_large",
        "bad_message",
    ),
    (
        json.dumps({"type": "publish", "sdp": "x", "tracks": [{}] * 60_000}),
        "too_large",
        "bad_json",
    ),
    (
        json.dumps({"type": "publish", "sdp": "x", "tracks": objects(1300)}),
        "too_large",
        "bad_message",
    ),
    (
        json.dumps({"type": "breakout_assign", "assignments": {f"p{i}": "r" for i in range(4000)}}),
        "too_large",
        "bad_message",
    ),
    (
        json.dumps(
            {
                "type": "set_permissions",
                "role": "student",
                "permissions": {f"k{i}": True for i in range(4000)},
            }
        ),
        "too_large",
        "bad_message",
    ),
    (json.dumps({"type": "subscribe_answer", "sdp": "v" * 300_000}), "too_large", "bad_message"),
    ('{"type": "ping", "x": ' + "[" * 4000 + "]" * 4000 + "}", "bad_json", "bad_json"),
    ('{"type": "ping", "x": ' + '{"a":' * 3000 + "1" + "}" * 3000 + "}", "too_large", "bad_json"),
    (
        json.dumps({"type": "mute", "participant_id": "p", "kind": [[0] * 3] * 300}),
        "not_joined",
        "bad_message",
    ),
]


async def test_attack_frames_before_and_after_join_never_block_the_loop() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        student = await server.token(lesson, "s-1", "Ученик 1", "student")
        url = server.base_url.replace("http", "ws", 1) + "/ws"
        fresh = await server.http.ws_connect(url)
        joined = await server.http.ws_connect(url)
        assert (await exchange(joined, json.dumps({"type": "join", "token": student})))[
            "type"
        ] == "joined"
        while (await exchange(joined, json.dumps({"type": "ping", "id": "x"})))["type"] != "pong":
            pass  # whatever the join brought (participants, offers)
        async with probing() as lag:
            for frame, before, after in ATTACKS:
                reply = await exchange(fresh, frame)
                assert reply.get("code") == before, (frame[:80], reply)
                reply = await exchange(joined, frame)
                assert reply.get("code") == after, (frame[:80], reply)
        assert lag.samples >= 3
        assert lag.worst_cpu < LAG_BOUND, lag.describe()
        # Both connections are still fine.
        for ws in (fresh, joined):
            assert (await exchange(ws, '{"type": "ping", "id": "end"}')) == {
                "type": "pong",
                "ref": "end",
            }


async def post_raw(
    server: LiveServer, path: str, body: bytes, auth: bool = True
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {DEMO_SECRET}"
    async with server.http.post(server.base_url + path, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_api_bodies_never_block_the_loop_and_deep_json_is_a_400() -> None:
    async with running_server() as server:
        status, call = await server.api(
            "POST", "/api/v1/calls", {"title": "Собрание", "host": {"id": "t-1", "name": "Анна"}}
        )
        assert status == 201, call
        invite = call["invite_url"].removeprefix(server.base_url)
        deep = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
        roster_of_empties = json.dumps({"roster": [{}] * 60_000}).encode()
        roster_501 = json.dumps(
            {
                "group": {"id": "5a", "title": "5А"},
                "subject": "Математика",
                "teacher": {"id": "t-1", "name": "Анна"},
                "roster": [{"id": f"s{i}", "name": "Иван", "role": "student"} for i in range(501)],
                "starts_at": "2026-12-02T09:00:00+03:00",
                "ends_at": "2026-12-02T09:45:00+03:00",
            }
        ).encode()
        async with probing() as lag:
            for path, body, auth, code in (
                ("/api/v1/lessons", deep, True, "bad_json"),
                (invite, deep, False, "bad_json"),
                ("/api/v1/lessons", roster_of_empties, True, "bad_json"),
                ("/api/v1/lessons", roster_501, True, "invalid_value"),
                ("/api/v1/calls", deep, True, "bad_json"),
            ):
                status, reply = await post_raw(server, path, body, auth)
                assert status == 400, (path, reply)
                assert reply["error"]["code"] == code, (path, reply)
        assert lag.worst_cpu < LAG_BOUND, lag.describe()


def test_the_value_bound_is_counted_before_decoding() -> None:
    # The longest chat message, all commas, is still read; a list past the bound is not.
    longest = json.dumps({"type": "chat_send", "text": "," * 4000})
    assert parse_message(longest, 320 * 1024)["text"] == "," * 4000
    over = json.dumps({"type": "ping", "x": [0] * MAX_JSON_VALUES})
    with pytest.raises(ProtocolError, match=f"more than {MAX_JSON_VALUES} values") as info:
        parse_message(over, 320 * 1024)
    assert info.value.code == "bad_json"


def test_long_numbers_are_refused_before_they_cost_quadratic_time() -> None:
    # Once: 76 integers of 4,299 digits in one frame cost 47 ms to decode and
    # check (Python converts digits to an int in quadratic time, and the schema
    # check converts them back); floats of hundreds of digits halfway between two
    # doubles, 38 ms. Now a number is at most MAX_NUMBER_CHARS characters.
    room = 320 * 1024 - 100
    halfway = "2.4703282292062327208828439643411068618252990130716238221279" * 12 + "e-324"
    for literal in ("9" * 4299, "1." + "3" * 4297, halfway, "2.4703282292062327e-324"):
        count = min(room // (len(literal) + 1), MAX_JSON_VALUES - 10)
        frame = '{"type": "ping", "x": [' + ",".join([literal] * count) + "]}"
        started = time.thread_time()
        with pytest.raises(ProtocolError) as info:
            parse_message(frame, 320 * 1024)
        assert time.thread_time() - started < LAG_BOUND
        assert info.value.code == "bad_json", literal[:30]
    with pytest.raises(ProtocolError, match="longer than"):
        parse_message('{"type": "breakout_configure", "count": ' + "9" * 4299 + "}", 320 * 1024)
    with pytest.raises(ProtocolError, match="exponent"):
        parse_message('{"type": "breakout_open", "minutes": 1e999999}', 320 * 1024)


def test_ordinary_numbers_still_read() -> None:
    for frame, key, value in (
        ('{"type": "breakout_configure", "count": 50}', "count", 50),
        ('{"type": "breakout_open", "minutes": 45.5}', "minutes", 45.5),
        ('{"type": "breakout_open", "minutes": 1.2E1}', "minutes", 12.0),
        ('{"type": "breakout_close", "countdown_seconds": 0}', "countdown_seconds", 0),
        ('{"type": "breakout_close", "countdown_seconds": 2.5e-1}', "countdown_seconds", 0.25),
        ('{"type": "breakout_close", "countdown_seconds": -0.0e+0}', "countdown_seconds", 0),
    ):
        assert parse_message(frame, 320 * 1024)[key] == value
    # Within the bounds: MAX_NUMBER_CHARS characters, exponent ±MAX_EXPONENT.
    assert decode_json("[" + "9" * MAX_NUMBER_CHARS + ", 1e40, 1E-40]") == [
        int("9" * MAX_NUMBER_CHARS),
        1e40,
        1e-40,
    ]
    for over in ("9" * (MAX_NUMBER_CHARS + 1), "1e41", "1E-41", "0." + "0" * MAX_NUMBER_CHARS):
        with pytest.raises(ValueError):
            decode_json(f"[{over}]")
