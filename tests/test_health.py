"""GET /healthz and /readyz of a real server: ready with a reachable store, not ready when
its real redis-server is gone, while draining, or while the event loop is held up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from signalling.config_ops import HealthSettings
from signalling.keys import HEALTH
from tests.live import LiveServer, running_server
from tests.redis_server import redis_server_sync


async def get(server: LiveServer, path: str) -> tuple[int, Any]:
    async with server.http.get(server.base_url + path) as response:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json()


async def test_ready_until_redis_goes_away() -> None:
    manager = redis_server_sync()
    url = await asyncio.to_thread(manager.__enter__)
    stopped = False
    try:
        async with running_server(redis_url=url) as server:
            assert await get(server, "/readyz") == (200, {"status": "ready", "problems": []})
            await asyncio.to_thread(manager.__exit__, None, None, None)
            stopped = True
            status, body = await get(server, "/readyz")
            assert status == 503 and body["status"] == "not_ready"
            assert len(body["problems"]) == 1
            assert body["problems"][0].startswith("store unreachable"), body
            # Alive all the same: the process answers.
            assert await get(server, "/healthz") == (200, {"status": "ok"})
    finally:
        if not stopped:
            await asyncio.to_thread(manager.__exit__, None, None, None)


async def test_not_ready_while_draining() -> None:
    async with running_server() as server:
        assert (await get(server, "/readyz"))[0] == 200
        server.app[HEALTH].draining = True
        not_ready = {"status": "not_ready", "problems": ["draining"]}
        assert await get(server, "/readyz") == (503, not_ready)
        server.app[HEALTH].draining = False
        assert (await get(server, "/readyz"))[0] == 200


async def test_not_ready_while_the_event_loop_lags() -> None:
    async with running_server(health=HealthSettings(max_loop_lag_ms=300)) as server:
        monitor = server.app[HEALTH].loop_lag
        assert (await get(server, "/readyz"))[0] == 200
        # The server shares this loop: hold it up for a second, as a long callback would.
        time.sleep(1.0)  # noqa: ASYNC251 - blocking is the point
        await asyncio.sleep(0.5)  # the monitor's next wake-up records it
        assert monitor.recent_worst >= 0.7, list(monitor.samples)
        status, body = await get(server, "/readyz")
        assert status == 503
        assert len(body["problems"]) == 1 and body["problems"][0].startswith("event loop lag")
        # The lag ages out of the window (20 samples of 0.25 s): ready again.
        deadline = time.monotonic() + 30
        while (await get(server, "/readyz"))[0] != 200:
            assert time.monotonic() < deadline, "never ready again"
            await asyncio.sleep(0.5)
