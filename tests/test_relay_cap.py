"""A node relays many pupils to a lesson's node without hitting its connection cap
(signalling/cluster_peers.py): two real nodes on their own loopback addresses and one
real redis-server, the owner capping every client address at two connections.

The relaying node connects from its internal address; the owner knows it from the
node records in Redis and admits all its relayed WebSockets, while a client from any
other address is still held to the cap.
"""

from __future__ import annotations

import asyncio

from bench.bot import Bot
from signalling.config_cluster import ClusterSettings
from signalling.config_sections import LimitSettings
from signalling.keys import CALLS, NODE
from tests.live import running_server
from tests.redis_server import redis_server
from tests.test_relay import WAIT, eventually

OWNER_HOST, RELAY_HOST = "127.0.0.2", "127.0.0.3"
CAP = 2
PUPILS = 4


def cluster(node_id: str) -> ClusterSettings:
    return ClusterSettings(node_id=node_id, heartbeat_seconds=0.5, stale_after_seconds=15.0)


async def status_of_a_request(host: str, port: int, held: list[asyncio.StreamWriter]) -> int:
    """A bare HTTP request from 127.0.0.1, its connection held open: the status code."""
    reader, writer = await asyncio.open_connection(host, port)
    held.append(writer)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(WAIT):
        line = await reader.readline()
    return int(line.split()[1])


async def test_a_relaying_node_is_not_capped_as_one_client() -> None:
    capped = LimitSettings(max_connections_per_ip=CAP)
    async with (
        redis_server() as url,
        running_server(OWNER_HOST, redis_url=url, cluster=cluster("owner"), limits=capped) as owner,
        running_server(RELAY_HOST, redis_url=url, cluster=cluster("relay")) as relay,
    ):
        # Each knows the other from its record (the beat after both registered).
        await eventually(lambda: RELAY_HOST in owner.app[NODE].peers, "owner knows relay")
        assert OWNER_HOST not in owner.app[NODE].peers  # not itself
        lesson = await owner.create_lesson()
        assert await owner.app[NODE].placement.claim(lesson, "owner", 60) == "owner"
        bots: list[Bot] = []
        held: list[asyncio.StreamWriter] = []
        try:
            for i in range(PUPILS):
                token = await owner.token(lesson, f"s-{i + 1}", f"Ученик {i + 1}", "student")
                bot = Bot(relay.base_url, token, decode=False)
                bots.append(bot)
                await bot.connect(timeout=WAIT)
            # Twice the cap from the relaying node's one address, every one in the call.
            call = owner.app[CALLS].calls[lesson]
            assert len(call.participants) == PUPILS
            # Anyone else is still held to the cap: 127.0.0.1 (where the test's own HTTP
            # session may hold a connection already) is refused by the third at most.
            port = int(owner.base_url.rsplit(":", 1)[1])
            statuses = [await status_of_a_request(OWNER_HOST, port, held) for _ in range(CAP + 1)]
            assert statuses[0] == 200 and statuses[-1] == 429, statuses
        finally:
            for writer in held:
                writer.close()
            for bot in bots:
                await bot.close()
