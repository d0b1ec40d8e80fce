"""WebSocket frames are read at a bounded rate per connection and per address (issue 9).

Flat out, five connections once filled the server's core and made a lesson's
forwarding p99 seven times worse (docs/performance.md). Past the budget the
reader waits: nothing is refused, the sender is slowed down.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from signalling.config import LimitSettings
from signalling.frame_budget import FrameBudgets, TokenBucket
from signalling.ratelimit import LIMITS
from tests.live import running_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    bucket.stamp = 0.0
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.0) == pytest.approx(0.2)  # the second waits behind the first
    assert bucket.take(1.0) == 0.0  # a second later it has refilled
    assert TokenBucket(rate=0, burst=1).take(0.0) == 0.0  # rate 0: no limit


def test_connections_of_one_address_share_its_budget_but_loopback_does_not() -> None:
    clock = Clock()
    budgets = FrameBudgets(per_connection=100, burst=2, per_address=1, clock=clock)
    # Ten connections, a frame each: within each one's own budget, but the
    # address's bucket holds 4 bursts (8 frames) and refills at 1 a second.
    waits = [budgets.wait("203.0.113.7", budgets.connection()) for _ in range(10)]
    assert waits[:8] == [0.0] * 8
    assert waits[8] == pytest.approx(1.0) and waits[9] == pytest.approx(2.0)
    # Another address, and loopback, are not held up by it.
    assert budgets.wait("198.51.100.1", budgets.connection()) == 0.0
    third = budgets.connection()
    assert [budgets.wait(None, third) for _ in range(2)] == [0.0, 0.0]
    assert budgets.delayed == 2


def test_the_addresses_remembered_are_bounded() -> None:
    budgets = FrameBudgets(per_connection=10, burst=1, per_address=1, clock=Clock())
    for i in range(FrameBudgets.MAX_ADDRESSES + 50):
        budgets.wait(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", budgets.connection())
    assert len(budgets._addresses) == FrameBudgets.MAX_ADDRESSES


async def test_a_flooding_connection_is_slowed_and_nobody_else_is() -> None:
    limits = LimitSettings(ws_frames_per_second=20, ws_frame_burst=5)
    async with running_server(limits=limits) as server:
        url = server.base_url.replace("http", "ws", 1) + "/ws"
        async with server.http.ws_connect(url) as flood, server.http.ws_connect(url) as calm:
            started = time.monotonic()
            count = 45
            for i in range(count):
                await flood.send_str(json.dumps({"type": "ping", "id": str(i)}))
            # Meanwhile another connection is answered at once.
            await calm.send_str('{"type": "ping", "id": "calm"}')
            reply = json.loads((await calm.receive(timeout=1)).data)
            assert reply == {"type": "pong", "ref": "calm"}
            refs = []
            for _ in range(count):
                msg = await flood.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.TEXT
                refs.append(json.loads(msg.data)["ref"])
            elapsed = time.monotonic() - started
        # Every frame was answered, in order, but no faster than the budget allows.
        assert refs == [str(i) for i in range(count)]
        assert elapsed >= (count - 5) / 20 - 0.05, elapsed
        assert server.app[LIMITS].frames.delayed >= count - 5
        await asyncio.sleep(0)
