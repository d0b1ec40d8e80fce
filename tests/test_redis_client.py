"""rooms/redis_client.py on a real redis-server: a burst of more concurrent commands
than the pool has connections waits for free ones instead of failing, and never opens
more than the pool's connections."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import redis.asyncio as aioredis

from rooms.redis_client import MAX_CONNECTIONS, redis_client
from rooms.store_redis import RedisStore
from tests.redis_server import redis_url_fixture  # noqa: F401  (provides `redis_url`)

BURST = 300  # a class of 100 leaving at once makes a few commands each


async def clients_connected(url: str) -> int:
    async with aioredis.from_url(url, decode_responses=True) as admin:
        info = await admin.info("clients")
        return int(info["connected_clients"]) - 1  # not this one


async def test_a_burst_waits_for_connections_and_never_exceeds_the_pool(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"urok-test-{secrets.token_hex(4)}:")
    try:
        # Each revocation is a command in flight at once: 300 would need 300 connections.
        jtis = [f"jti-{i}" for i in range(BURST)]
        until = datetime(2099, 1, 1, tzinfo=UTC)
        await asyncio.gather(*(store.revoke_token(jti, until) for jti in jtis))
        revoked = await asyncio.gather(*(store.is_token_revoked(jti) for jti in jtis))
        assert all(revoked)
        assert 0 < await clients_connected(redis_url) <= MAX_CONNECTIONS
    finally:
        await store.close()
    assert await clients_connected(redis_url) == 0  # closed with the store


async def test_the_default_pool_would_have_failed_that_burst(redis_url: str) -> None:
    # What the blocking pool is for: redis-py's default raises past its 100 connections.
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        results = await asyncio.gather(
            *(client.set(f"k{i}", "v") for i in range(BURST)), return_exceptions=True
        )
        assert any(isinstance(r, aioredis.ConnectionError) for r in results)
    finally:
        await client.aclose()
    small = redis_client(redis_url, max_connections=5)
    try:
        assert await asyncio.gather(*(small.set(f"k{i}", "v") for i in range(BURST)))
    finally:
        await small.aclose()
