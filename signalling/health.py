"""Is this node ready to take calls? GET /readyz, and the event loop's lag behind it.

Alive (GET /healthz, signalling/pages.py) only says the process answers HTTP.
Ready also needs the store reachable (Redis answers PING), the node not
draining (`Health.draining`, set by whoever starts a drain), and the event
loop not falling behind (signalling/readiness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from signalling.keys import HEALTH, SETTINGS, STORE

STORE_PING_TIMEOUT = 2.0


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    health, limit_ms = app[HEALTH], app[SETTINGS].health.max_loop_lag_ms
    problems: list[str] = []
    if health.draining:
        problems.append("draining")
    try:
        async with asyncio.timeout(STORE_PING_TIMEOUT):
            await app[STORE].ping()
    except Exception as exc:  # whatever the client raises: the store is not there
        problems.append(f"store unreachable: {type(exc).__name__}")
    lag_ms = health.loop_lag.recent_worst * 1000
    if lag_ms > limit_ms:
        problems.append(f"event loop lag {lag_ms:.0f} ms over {limit_ms} ms")
    body = {"status": "not_ready" if problems else "ready", "problems": problems}
    return web.json_response(
        body, status=503 if problems else 200, headers={"Cache-Control": "no-store"}
    )


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[HEALTH].loop_lag.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """Needs app[HEALTH], app[SETTINGS] and app[STORE]."""
    app.cleanup_ctx.append(_loop_lag)
    app.router.add_get("/readyz", readyz, name="readyz")
