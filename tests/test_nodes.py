"""Several nodes on one real redis-server: real apps on loopback ports (and a real `urok
serve` process, killed with SIGKILL) register, see each other and go; lessons are placed
by load through GET /api/v1/lessons/{id}/node, concurrent requests to different nodes
agree, draining nodes get nothing new, a dead node's lessons are placed again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot
from rooms.placement import NodeLimits, NodeRecord
from signalling.config import DEMO_SECRET
from signalling.config_cluster import ClusterSettings
from signalling.keys import HEALTH, NODE
from tests.live import LiveServer, free_port, running_server, wait_healthy
from tests.redis_server import redis_server

ROOT = Path(__file__).resolve().parent.parent
BEAT = 0.1
STALE = 3.0  # a starved process (CI) can miss beats for over a second
# The lesson term dominates the score here: every app in this process reads the same
# process CPU time, so CPU is made to weigh almost nothing (max_cpu 64 cores).
LIMITS = NodeLimits(max_cpu=64.0, max_streams=1000, max_lessons=4)


def cluster(node_id: str, limits: NodeLimits = LIMITS, stale: float = STALE) -> ClusterSettings:
    return ClusterSettings(
        node_id=node_id, heartbeat_seconds=BEAT, stale_after_seconds=stale, limits=limits
    )


@asynccontextmanager
async def nodes(url: str, *ids: str) -> AsyncIterator[list[LiveServer]]:
    async with AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(running_server(redis_url=url, cluster=cluster(i)))
            for i in ids
        ]
        yield servers


async def node_of(server: LiveServer, lesson_id: str) -> tuple[int, Any]:
    return await server.api("GET", f"/api/v1/lessons/{lesson_id}/node")


async def seen(server: LiveServer) -> dict[str, NodeRecord]:
    return {r.id: r for r in await server.app[NODE].placement.nodes()}


async def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_nodes_register_see_each_other_and_go() -> None:
    async with redis_server() as url, AsyncExitStack() as stack:
        one, two, three = [
            await stack.enter_async_context(running_server(redis_url=url, cluster=cluster(i)))
            for i in ("n1", "n2", "n3")
        ]
        records = await seen(two)
        assert sorted(records) == ["n1", "n2", "n3"]
        assert records["n1"].public_url == one.base_url
        assert records["n3"].internal_url == three.base_url  # http://host:port by default
        assert records["n1"].media_address == "127.0.0.1"
        assert not records["n1"].draining and records["n1"].limits == LIMITS
        # A teacher joins on n1: its record carries the call and holds the lesson. (Placed
        # there first: a join on a node for a lesson placed elsewhere is relayed there,
        # tests/test_relay.py.)
        lesson = await one.create_lesson()
        assert await one.app[NODE].placement.claim(lesson, "n1", 60) == "n1"
        bot = Bot(one.base_url, await one.token(lesson, "t-1", "Анна Петровна", "teacher"))
        await bot.connect()
        try:
            assert await one.app[NODE].placement.holder(lesson) == "n1"

            async def n1_loaded() -> bool:
                load = (await seen(three))["n1"].load
                return load.participants == 1 and load.calls == 1

            await eventually(n1_loaded)
            # The running call keeps its lease well past one lease time (renewed each beat).
            await asyncio.sleep(2 * STALE)
            assert await three.app[NODE].placement.holder(lesson) == "n1"
            status, body = await node_of(two, lesson)
            assert status == 200 and body["node"]["id"] == "n1", body
            assert body["node"]["url"] == one.base_url
        finally:
            await bot.close()

        # The call is over: n1 releases the lesson at its next beat.
        async def released() -> bool:
            return await three.app[NODE].placement.holder(lesson) is None

        await eventually(released)
    # A node that stops cleanly is gone at once (not after stale_after).
    async with redis_server() as url:
        async with nodes(url, "n1", "n2") as (one, two):
            async with running_server(redis_url=url, cluster=cluster("n3")):
                assert sorted(await seen(one)) == ["n1", "n2", "n3"]
            assert sorted(await seen(one)) == ["n1", "n2"]


async def test_one_node_without_redis_is_always_this_node() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        status, body = await node_of(server, lesson)
        assert status == 200 and body["node"]["id"] == server.app[NODE].id
        assert body["node"]["url"] == server.base_url
        server.app[HEALTH].draining = True  # nowhere else to go: still this node
        status, body = await node_of(server, await server.create_lesson(group_id="next"))
        assert status == 200 and body["node"]["id"] == server.app[NODE].id


async def test_placed_by_load_and_concurrent_requests_agree() -> None:
    async with redis_server() as url, nodes(url, "n1", "n2", "n3") as servers:
        one = servers[0]
        # n1 runs a call: one lesson held, a quarter of its limit.
        busy = await one.create_lesson(group_id="busy")
        assert await one.app[NODE].placement.claim(busy, "n1", 60) == "n1"
        bot = Bot(one.base_url, await one.token(busy, "t-1", "Анна Петровна", "teacher"))
        await bot.connect()
        try:
            first = await one.create_lesson(group_id="g-first")
            second = await one.create_lesson(group_id="g-second")
            placed = {(await node_of(one, lesson))[1]["node"]["id"] for lesson in (first, second)}
            assert placed == {"n2", "n3"}
            # 7 more lessons, each asked of every node 3 times at once: 63 requests.
            lessons = [await one.create_lesson(group_id=f"g{i}") for i in range(7)]
            asks = [(lesson, s) for lesson in lessons for s in servers for _ in range(3)]
            answers = await asyncio.gather(*(node_of(s, lesson) for lesson, s in asks))
            by_lesson: dict[str, set[str]] = {}
            for (lesson, _server), (status, body) in zip(asks, answers, strict=True):
                assert status == 200, body
                by_lesson.setdefault(lesson, set()).add(body["node"]["id"])
            assert all(len(ids) == 1 for ids in by_lesson.values()), by_lesson
            # 1 + 2 + 7 lessons over 3 nodes of 4 each: the spread is even...
            spread = Counter(next(iter(ids)) for ids in by_lesson.values())
            spread.update(["n1"])  # the call's lesson
            spread.update(placed)
            assert sorted(spread.values()) == [3, 3, 4], spread
            # ...two more fill the last places, 12 of 12, and then every node is full.
            more = [await one.create_lesson(group_id=f"h{i}") for i in range(3)]
            assert (await node_of(servers[1], more[0]))[0] == 200
            assert (await node_of(servers[2], more[1]))[0] == 200
            status, body = await node_of(servers[0], more[2])
            assert status == 503 and body["error"]["code"] == "no_node_available", body
        finally:
            await bot.close()


async def test_fifty_lessons_at_once_across_three_nodes() -> None:
    """Issue 13's placement under concurrency: each lesson on exactly one node, spread."""
    roomy = NodeLimits(max_cpu=64.0, max_streams=1000, max_lessons=20)
    async with redis_server() as url, AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(
                # No node may look dead while 150 requests starve the process's beats.
                running_server(redis_url=url, cluster=cluster(i, roomy, stale=15.0))
            )
            for i in ("n1", "n2", "n3")
        ]
        lessons = [await servers[0].create_lesson(group_id=f"g{i}") for i in range(50)]
        # Every lesson asked of every node at once: 150 requests in flight.
        asks = [(lesson, s) for lesson in lessons for s in servers]
        answers = await asyncio.gather(*(node_of(s, lesson) for lesson, s in asks))
        by_lesson: dict[str, set[str]] = {}
        for (lesson, _server), (status, body) in zip(asks, answers, strict=True):
            assert status == 200, body
            by_lesson.setdefault(lesson, set()).add(body["node"]["id"])
        assert all(len(ids) == 1 for ids in by_lesson.values()), by_lesson
        spread = Counter(next(iter(ids)) for ids in by_lesson.values())
        assert sorted(spread) == ["n1", "n2", "n3"]
        assert max(spread.values()) - min(spread.values()) <= 1, spread
        for lesson, ids in by_lesson.items():
            assert await servers[1].app[NODE].placement.holder(lesson) in ids


async def test_draining_node_takes_nothing_new() -> None:
    async with redis_server() as url, nodes(url, "n1", "n2") as servers:
        kept = await servers[0].create_lesson(group_id="kept")
        holder = (await node_of(servers[0], kept))[1]["node"]["id"]
        draining, other = servers if holder == "n1" else servers[::-1]
        draining.app[HEALTH].draining = True

        async def drain_seen() -> bool:
            return (await seen(other))[holder].draining

        await eventually(drain_seen)
        for i in range(4):  # the draining node holds one lesson, the other none, yet:
            lesson = await draining.create_lesson(group_id=f"g{i}")
            status, body = await node_of(draining, lesson)
            assert status == 200 and body["node"]["id"] == other.app[NODE].id, body
        # Its own lessons stay where they are.
        status, body = await node_of(other, kept)
        assert body["node"] == {
            "id": holder,
            "url": draining.base_url,
            "media_address": "127.0.0.1",
            "draining": True,
        }
        other.app[HEALTH].draining = True
        await eventually(lambda: _drained(draining))
        status, body = await node_of(other, await draining.create_lesson(group_id="late"))
        assert status == 503 and body["error"]["code"] == "no_node_available"


async def _drained(server: LiveServer) -> bool:
    return all(r.draining for r in (await seen(server)).values())


async def _drained_except(server: LiveServer, *serving: str) -> bool:
    """Every listed node is up and not draining, every other is draining."""
    records = await seen(server)
    return set(serving) <= set(records) and all(
        r.draining == (r.id not in serving) for r in records.values()
    )


async def _start_node(url: str, tmp: Path, node_id: str) -> tuple[asyncio.subprocess.Process, str]:
    """A real `urok serve` process in the cluster."""
    config = tmp / f"{node_id}.toml"
    config.write_text(
        f'[cluster]\nnode_id = "{node_id}"\nheartbeat_seconds = {BEAT}\n'
        f"stale_after_seconds = {STALE}\n"
    )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "--config",
        str(config),
        "serve",
        "--port",
        str(port),
        "--redis-url",
        url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "UROK_DATA_DIR": str(tmp / node_id)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


async def test_a_dead_nodes_lessons_are_placed_again(tmp_path: Path) -> None:
    async with redis_server() as url:
        process, base = await _start_node(url, tmp_path, "doomed")
        try:
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, base)
            async with running_server(redis_url=url, cluster=cluster("survivor")) as live:
                # Every lesson so far goes to the doomed node: the survivor is draining.
                live.app[HEALTH].draining = True
                await eventually(lambda: _drained_except(live, "doomed"))
                lessons = [await live.create_lesson(group_id=f"g{i}") for i in range(3)]
                auth = {"Authorization": f"Bearer {DEMO_SECRET}"}
                async with aiohttp.ClientSession(headers=auth) as http:
                    for lesson in lessons:
                        async with http.get(f"{base}/api/v1/lessons/{lesson}/node") as response:
                            body = await response.json()
                            assert response.status == 200, body
                            assert body["node"]["id"] == "doomed"
                live.app[HEALTH].draining = False
                await eventually(lambda: _drained_except(live, "doomed", "survivor"))
                # While the doomed node lives, its lessons stay there.
                assert {(await node_of(live, i))[1]["node"]["id"] for i in lessons} == {"doomed"}
                process.send_signal(signal.SIGKILL)
                await process.wait()
                killed_at = time.monotonic()

                async def all_on_survivor() -> bool:
                    for lesson in lessons:
                        status, body = await node_of(live, lesson)
                        if status != 200 or body["node"]["id"] != "survivor":
                            return False
                    return True

                # Once its record runs out (stale_after), they are placed on the live node.
                await eventually(all_on_survivor, timeout=STALE + 5)
                assert time.monotonic() - killed_at < STALE + 5
                assert "doomed" not in await seen(live)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
