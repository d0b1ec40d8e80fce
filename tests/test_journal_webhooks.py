"""The running app tells the journal what happened, through signed webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from bench.bot import Bot
from signalling.config import DEMO_KEY_ID, DEMO_SECRET, Integration
from signalling.webhooks import verify_signature
from tests.live import free_port, running_server


class Journal:
    """A journal's webhook endpoint on loopback, keeping what it was sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert verify_signature(
            DEMO_SECRET,
            request.headers.get("X-Urok-Timestamp"),
            body,
            request.headers.get("X-Urok-Signature"),
        ), "bad signature"
        event = json.loads(body)
        assert request.headers["X-Urok-Event"] == event["event"]
        async with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()
        return web.json_response({"ok": True})

    async def wait(self, name: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            async with self.arrived:
                await self.arrived.wait_for(
                    lambda: len([e for e in self.events if e["event"] == name]) >= count
                )
            return [e for e in self.events if e["event"] == name]

        return await asyncio.wait_for(enough(), timeout)


@asynccontextmanager
async def journal_endpoint() -> AsyncIterator[tuple[Journal, Integration]]:
    """A journal's webhook endpoint on a loopback port, and the demo integration sending
    its webhooks there."""
    journal = Journal()
    app = web.Application()
    app.router.add_post("/hooks", journal.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    integration = Integration(
        key_id=DEMO_KEY_ID,
        secret=DEMO_SECRET,
        name="Demo",
        webhook_url=f"http://127.0.0.1:{port}/hooks",
    )
    try:
        yield journal, integration
    finally:
        await runner.cleanup()


async def test_lesson_lifecycle_reaches_the_journal_signed() -> None:
    async with journal_endpoint() as (journal, integration):
        async with running_server(integrations=(integration,)) as server:
            roster = [
                {"id": "s-1", "name": "Иван", "role": "student"},
                {"id": "s-2", "name": "Пётр", "role": "student"},
            ]
            lesson = await server.create_lesson(roster=roster)
            opened = (await journal.wait("lesson.opened"))[0]
            assert opened["data"]["lesson"]["id"] == lesson
            assert opened["data"]["lesson"]["state"] == "open"

            teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
            student = Bot(server.base_url, await server.token(lesson, "s-1", "Иван", "student"))
            await teacher.connect()
            await student.connect()
            joined = await journal.wait("participant.joined", 2)
            assert {e["data"]["participant"]["user_id"] for e in joined} == {"t-1", "s-1"}
            await student.leave()
            left = await journal.wait("participant.left")
            assert left[0]["data"]["participant"]["user_id"] == "s-1"

            status, _ = await server.api("DELETE", f"/api/v1/lessons/{lesson}")
            assert status == 200
            ended = (await journal.wait("lesson.ended"))[0]["data"]
            report = {entry["user_id"]: entry for entry in ended["attendance"]}
            assert set(report) == {"t-1", "s-1", "s-2"}
            assert report["t-1"]["joined"] and report["s-1"]["joined"]
            assert report["s-2"]["joined"] is False and report["s-2"]["minutes_present"] == 0
            assert report["s-1"]["first_join"] and report["s-1"]["last_leave"]
            await teacher.close()
