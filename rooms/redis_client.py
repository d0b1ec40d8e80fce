"""The one Redis client a node uses: its connections from a pool that waits when all are
busy, rather than failing.

redis-py's default pool opens up to 100 connections and raises
`MaxConnectionsError` on the 101st concurrent command: a class of 96 leaving at once
(bench.cluster) did that, and people's leaves went unrecorded. A blocking pool
(BlockingConnectionPool) of MAX_CONNECTIONS makes the 101st command wait for a free
connection (at most WAIT_S, then a ConnectionError as for a Redis that is gone).
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64
WAIT_S = 10.0


def redis_client(url: str, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
    """A client of `url` (decoded responses, as the store expects) on a blocking pool
    that it closes with itself."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=max_connections, timeout=WAIT_S
    )
    return aioredis.Redis.from_pool(pool)
