"""Placement on a real redis-server (rooms/placement_redis.py): node records expire, lessons
go to the least loaded live node that is neither draining nor full, concurrent placements
agree, and a dead node's lessons are placed again. The memory store's LocalPlacement: always
this node."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from rooms.placement import (
    LocalPlacement,
    NodeLimits,
    NodeLoad,
    NodeRecord,
    is_full,
    load_score,
)
from rooms.placement_redis import RedisPlacement
from tests.redis_server import redis_url_fixture  # noqa: F401  (the redis_url fixture)

LONG = 60.0  # seconds: a record or lease that must not expire during the test


def record(node_id: str, **load: float) -> NodeRecord:
    return NodeRecord(
        id=node_id,
        public_url=f"http://{node_id}.example:8080",
        internal_url=f"http://10.0.0.1/{node_id}",
        media_address="10.0.0.1",
        version="test",
        load=NodeLoad(**load),  # type: ignore[arg-type]
        limits=NodeLimits(max_cpu=0.8, max_streams=100, max_lessons=50),
    )


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[RedisPlacement]]:
    """Placements on five separate connections, as five nodes would have."""
    prefix = f"t-{secrets.token_hex(3)}:"
    # Up to 8 connections each: 40 commands in flight, not one connection per attempt.
    connections = [
        aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                redis_url, decode_responses=True, max_connections=8
            )
        )
        for _ in range(5)
    ]
    yield [RedisPlacement(c, prefix) for c in connections]
    for connection in connections:
        await connection.aclose()
        await connection.connection_pool.disconnect()


async def test_records_expire_and_deregister(clients: list[RedisPlacement]) -> None:
    a, b = clients[0], clients[1]
    await a.register(record("a", cpu_share=0.25, streams=7), 1.0)
    await b.register(record("b"), LONG)
    seen = {r.id: r for r in await b.nodes()}
    assert sorted(seen) == ["a", "b"]
    assert seen["a"].load.cpu_share == 0.25 and seen["a"].load.streams == 7
    assert seen["a"].public_url == "http://a.example:8080"
    await asyncio.sleep(1.5)  # a stops refreshing: its record runs out
    assert [r.id for r in await b.nodes()] == ["b"]
    assert await b.node("a") is None
    await b.deregister("b")
    assert await a.nodes() == []


async def test_least_loaded_by_score(clients: list[RedisPlacement]) -> None:
    p = clients[0]
    busy_cpu = record("a-cpu", cpu_share=0.6)  # 0.75 of its CPU limit
    busy_streams = record("b-streams", streams=50)  # 0.5 of its streams
    quiet = record("c-quiet", cpu_share=0.08, streams=10)  # 0.1 + 0.1
    for node in (busy_cpu, busy_streams, quiet):
        await p.register(node, LONG)
    assert await p.place("L1", LONG) == "c-quiet"
    # Each lesson held counts 1/50: c-quiet takes lessons until its score passes b's 0.5.
    placed = Counter([await p.place(f"L{i}", LONG) for i in range(2, 22)])
    # c: 0.2 + n/50 < 0.5 while n < 15; then b (0.5 + m/50) and c alternate.
    assert placed["a-cpu"] == 0
    assert placed["c-quiet"] >= 14 and placed["b-streams"] >= 3, placed
    assert load_score(quiet, 15) == pytest.approx(0.5)


async def test_draining_and_full_nodes_get_nothing(clients: list[RedisPlacement]) -> None:
    p = clients[0]
    await p.register(replace(record("a"), draining=True), LONG)
    await p.register(record("b", streams=100), LONG)  # streams at the limit: full
    await p.register(record("c", cpu_share=0.5), LONG)
    assert is_full(record("b", streams=100), 0)
    assert {await p.place(f"L{i}", LONG) for i in range(10)} == {"c"}
    await p.register(replace(record("c"), draining=True), LONG)
    assert await p.place("another", LONG) is None
    # Already placed lessons stay where they are, draining or not.
    assert await p.place("L3", LONG) == "c"


async def test_concurrent_placement_agrees_and_spreads(clients: list[RedisPlacement]) -> None:
    for name in ("n1", "n2", "n3"):
        await clients[0].register(record(name), LONG)
    lessons = [f"lesson-{i}" for i in range(60)]
    # Every lesson placed by all five clients at once, 300 attempts in flight.
    attempts = [(lesson, client) for lesson in lessons for client in clients]
    answers = await asyncio.gather(*(c.place(lesson, LONG) for lesson, c in attempts))
    by_lesson: dict[str, set[str | None]] = {}
    for (lesson, _client), answer in zip(attempts, answers, strict=True):
        by_lesson.setdefault(lesson, set()).add(answer)
    assert all(len(holders) == 1 for holders in by_lesson.values()), by_lesson
    for lesson, holders in by_lesson.items():
        assert await clients[0].holder(lesson) in holders
    spread = Counter(next(iter(h)) for h in by_lesson.values())
    assert spread == {"n1": 20, "n2": 20, "n3": 20}


async def test_claims_race_with_placement(clients: list[RedisPlacement]) -> None:
    for name in ("n1", "n2"):
        await clients[0].register(record(name), LONG)
    for round_ in range(30):
        lesson = f"race-{round_}"
        results = await asyncio.gather(
            clients[1].claim(lesson, "n1", LONG),
            clients[2].claim(lesson, "n2", LONG),
            clients[3].place(lesson, LONG),
            clients[4].place(lesson, LONG),
        )
        assert len(set(results)) == 1, results
        assert await clients[0].holder(lesson) == results[0]


async def test_dead_nodes_lessons_are_placed_again(clients: list[RedisPlacement]) -> None:
    p = clients[0]
    await p.register(record("doomed"), 1.0)
    assert await p.place("L", LONG) == "doomed"
    assert await p.claim("L", "doomed", LONG) == "doomed"
    await p.register(record("survivor", cpu_share=0.7), LONG)
    # While the holder lives, nobody else takes the lesson.
    assert await p.place("L", LONG) == "doomed"
    assert await p.claim("L", "survivor", LONG) == "doomed"
    await asyncio.sleep(1.5)  # doomed stops refreshing: dead
    assert await p.place("L", LONG) == "survivor"
    assert await p.holder("L") == "survivor"


async def test_a_lapsed_lease_frees_the_lesson(clients: list[RedisPlacement]) -> None:
    p = clients[0]
    await p.register(record("a"), LONG)
    await p.register(record("b", streams=20), LONG)
    assert await p.place("L", 0.3) == "a"
    await asyncio.sleep(0.6)  # a placed it but never started its call: the lease ran out
    assert await p.holder("L") is None
    await p.register(record("a", streams=90), LONG)
    assert await p.place("L", LONG) == "b"


async def test_renew_keeps_releases_and_reports_lost(clients: list[RedisPlacement]) -> None:
    p = clients[0]
    await p.register(record("a"), LONG)
    await p.register(record("b"), LONG)
    assert await p.claim("L1", "a", 0.5) == "a"
    assert await p.claim("L2", "a", 0.5) == "a"
    for _ in range(4):  # renewed for longer than one lease
        await asyncio.sleep(0.25)
        assert await p.renew("a", ["L1", "L2"], 0.5) == []
    assert await p.holder("L1") == "a" and await p.holder("L2") == "a"
    await p.release("L1", "a")
    assert await p.holder("L1") is None
    await p.release("L2", "b")  # not b's to release
    assert await p.holder("L2") == "a"
    # L2's lease runs out and b takes it: a learns it has lost it.
    await asyncio.sleep(0.7)
    assert await p.claim("L2", "b", LONG) == "b"
    assert await p.renew("a", ["L2", "L3"], LONG) == ["L2"]
    assert await p.holder("L3") == "a"  # unheld: taken by the renewal


async def test_local_placement_is_this_node() -> None:
    local = LocalPlacement()
    assert await local.place("L", LONG) is None  # not registered yet
    await local.register(replace(record("me"), draining=True), LONG)
    assert [r.id for r in await local.nodes()] == ["me"]
    assert await local.place("L", LONG) == "me"
    assert await local.holder("L") == "me"
    await local.release("L", "me")
    assert await local.holder("L") is None
    await local.deregister("me")
    assert await local.nodes() == []
