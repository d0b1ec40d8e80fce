"""A node restarted mid-lesson with Redis (rooms/calls/restart.py): everyone who comes
back has what they had - their participant id, their raised hand in its place, a
host's mute, the floor, co-host, the spotlight, the open poll - as the teacher and
the pupils see it, and the restart costs no time present in the attendance. Somebody
else gets none of it, and nobody gets it once its time to live has passed."""

from __future__ import annotations

import asyncio
import secrets
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from bench.bot import Bot
from rooms.store_redis import RedisStore
from signalling.config import Settings
from signalling.drain import drain
from tests.live import LiveServer, free_port, running_server, serve_process, wait_healthy
from tests.redis_server import redis_server, redis_url_fixture  # noqa: F401  (redis_url)

PUPILS = {"s-1": "Аня", "s-2": "Борис", "s-3": "Вика"}


def a_class() -> str:
    """A class of its own: the tests share one Redis, a class one active lesson."""
    return "c-" + secrets.token_hex(4)


def of_type(kind: str) -> Any:
    return lambda m: m["type"] == kind


async def seen(bot: Bot, kind: str) -> dict[str, Any]:
    """The first `kind` message the bot got, waiting for it if none came yet."""
    got = next((m for m in bot.messages if m["type"] == kind), None)
    return got if got is not None else await bot.wait_for(of_type(kind))


async def joined(base: str, token: str) -> Bot:
    bot = Bot(base, token, receive=False)
    await bot.connect()
    return bot


async def before_the_restart(base: str, tokens: dict[str, str]) -> tuple[list[Bot], dict]:
    """Teacher and three pupils: s-1 raises a hand and is muted by the teacher, s-2 is
    given the floor and the spotlight, s-3 made a co-host; a poll is open."""
    teacher = await joined(base, tokens["t-1"])
    pupils = {user: await joined(base, tokens[user]) for user in PUPILS}
    ids = {user: bot.id for user, bot in pupils.items()}
    await pupils["s-1"].request({"type": "hand", "raised": True}, of_type("hands"))
    updated = of_type("participant_updated")
    for request in (
        {"type": "mute", "participant_id": ids["s-1"], "kind": "audio"},
        {"type": "give_floor", "participant_id": ids["s-2"]},
        {"type": "set_cohost", "participant_id": ids["s-3"], "cohost": True},
    ):
        reply = await teacher.request(request, updated)
        assert reply["type"] == "participant_updated", reply
    spot = {"type": "spotlight", "participant_id": ids["s-2"], "source": "camera"}
    assert (await teacher.request(spot, of_type("spotlight")))["spotlight"] is not None
    poll = {"type": "poll_create", "question": "2 + 2?", "options": ["4", "5"]}
    assert (await teacher.request(poll, of_type("polls")))["polls"]
    return [teacher, *pupils.values()], ids


async def test_a_restarted_node_gives_everyone_back_what_they_had(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes: list[asyncio.subprocess.Process] = []
    bots: list[Bot] = []
    async with redis_server() as redis_url, aiohttp.ClientSession() as http:
        store = RedisStore(redis_url)
        try:
            processes.append(await serve_process(port, "--redis-url", redis_url, data_dir=tmp_path))
            await wait_healthy(http, base, 60)
            remote = LiveServer(base, cast(web.Application, None), Settings(), http)
            lesson = await remote.create_lesson()
            people = {"t-1": ("Анна", "teacher"), **{u: (n, "student") for u, n in PUPILS.items()}}
            tokens = {u: await remote.token(lesson, u, n, r) for u, (n, r) in people.items()}
            bots, ids = await before_the_restart(base, tokens)

            processes[0].send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(processes[0].wait(), 40) == 0
            for bot in bots:
                assert "restarting" in [m["type"] for m in bot.messages]
                await bot.close()
            # Kept for the resume grace (20 s by default) plus the restart's margin.
            keys = await store.redis.keys(f"urok:call:{lesson}:restart:*")
            assert len(keys) == 4, keys  # the teacher and the three pupils
            for key in keys:
                assert 0 < await store.redis.ttl(key) <= 20 + 60

            processes.append(await serve_process(port, "--redis-url", redis_url, data_dir=tmp_path))
            await wait_healthy(http, base, 60)
            # Somebody who was not there gets nothing of anybody's.
            stranger = await joined(base, await remote.token(lesson, "s-4", "Гоша", "student"))
            bots = [stranger]
            assert stranger.joined and stranger.id not in ids.values()
            assert not stranger.joined["self"]["cohost"] and "floor" not in stranger.joined["self"]
            # The pupils come back first, so the last of them sees the others as they are.
            floor, cohost, hand = [await joined(base, tokens[u]) for u in ("s-2", "s-3", "s-1")]
            bots += [floor, cohost, hand]
            assert {floor.id, cohost.id, hand.id} == set(ids.values())
            assert floor.joined and floor.joined["self"].get("floor") is True
            assert (await seen(floor, "spotlight"))["spotlight"]["participant_id"] == ids["s-2"]
            assert cohost.joined and cohost.joined["self"]["cohost"] is True
            assert "waiting" in cohost.joined  # a host's joined
            assert hand.joined and hand.joined["hands"] == [ids["s-1"]]
            assert hand.joined["self"]["audio"] is False  # the teacher's mute holds
            others = {p["id"]: p for p in hand.joined["participants"]}
            assert others[ids["s-2"]].get("floor") is True and others[ids["s-3"]]["cohost"] is True
            polls = await seen(hand, "polls")
            assert [p["question"] for p in polls["polls"]] == ["2 + 2?"]

            teacher = await joined(base, tokens["t-1"])
            bots.append(teacher)
            assert teacher.joined and teacher.joined["hands"] == [ids["s-1"]]
            assert teacher.joined["spotlight"]["participant_id"] == ids["s-2"]
            others = {p["id"]: p for p in teacher.joined["participants"]}
            assert others[ids["s-1"]]["audio"] is False
            assert others[ids["s-2"]].get("floor") is True
            assert others[ids["s-3"]]["cohost"] is True and others[ids["s-3"]]["host"] is True

            # The restart cost no time present: one stretch from the first join to now.
            now = datetime.now(UTC)
            for record in await store.attendance(lesson):
                assert record.present_since is not None
                present = record.seconds_present + (now - record.present_since).total_seconds()
                assert abs((now - record.first_join).total_seconds() - present) < 1.0, record
        finally:
            for bot in bots:
                await bot.close()
            await store.close()
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


@pytest.fixture
def short_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state kept for 1 s (the grace) instead of the grace plus a minute."""
    monkeypatch.setattr("signalling.drain.RESTART_MARGIN_S", 0)


async def test_nobody_gets_it_after_its_time_to_live(redis_url: str, short_margin: None) -> None:
    options: dict[str, Any] = {"redis_url": redis_url, "resume_grace_seconds": 1}
    store = RedisStore(redis_url)
    try:
        async with running_server(**options) as server:
            lesson = await server.create_lesson(group_id=a_class())
            token = await server.token(lesson, "s-1", "Аня", "student")
            teacher = await joined(
                server.base_url, await server.token(lesson, "t-1", "А", "teacher")
            )
            first = await joined(server.base_url, token)
            await first.request({"type": "hand", "raised": True}, of_type("hands"))
            floor = {"type": "give_floor", "participant_id": first.id}
            await teacher.request(floor, of_type("participant_updated"))
            await drain(server.app, 5)
            key = f"urok:call:{lesson}:restart:s-1"
            assert 0 < await store.redis.pttl(key) <= 1000  # the grace, no margin
            for bot in (teacher, first):
                await bot.close()
        for _ in range(100):  # until it has expired
            if not await store.redis.exists(key):
                break
            await asyncio.sleep(0.05)
        async with running_server(**options) as server:
            late = await joined(server.base_url, token)
            assert late.id != first.id and late.joined and "floor" not in late.joined["self"]
            assert late.id not in late.joined["hands"]
            await late.close()
    finally:
        await store.close()


async def test_a_close_countdown_goes_on_after_the_restart(redis_url: str) -> None:
    """Breakout rooms closing in a few seconds when the node restarts still close; the
    pupil's room is kept for next time."""
    options: dict[str, Any] = {"redis_url": redis_url, "resume_grace_seconds": 30}
    async with running_server(**options) as server:
        lesson = await server.create_lesson(group_id=a_class())
        token = await server.token(lesson, "s-1", "Аня", "student")
        teacher = await joined(server.base_url, await server.token(lesson, "t-1", "А", "teacher"))
        pupil = await joined(server.base_url, token)
        breakout = of_type("breakout")
        await teacher.request({"type": "breakout_configure", "count": 1}, breakout)
        await teacher.request(
            {"type": "breakout_assign", "assignments": {pupil.id: "r1"}}, breakout
        )
        await teacher.request({"type": "breakout_open"}, breakout)
        closing = {"type": "breakout_close", "countdown_seconds": 3}
        assert (await teacher.request(closing, breakout))["state"]["closing_at"]
        await drain(server.app, 5)
        for bot in (teacher, pupil):
            await bot.close()
    async with running_server(**options) as server:
        back = Bot(server.base_url, token, receive=False)
        closed = back.wait_for(lambda m: m["type"] == "breakout" and not m["state"]["opened"], 20)
        try:
            await back.connect()
            final = await closed
            assert final["room"] is None and final["state"]["assignments"]["s-1"] == "r1"
        finally:
            await back.close()
