"""Privacy mode at a pupil's Chromium (issue 14): it decodes the teacher's camera and
no other pupil's, because the server made no consumer of it; switched off, the
other pupil's camera comes and decodes."""

from __future__ import annotations

import asyncio

import pytest

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.keys import CALLS
from tests.browser.harness import (
    chromium,
    inbound_by_source,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser


async def decoding(page, participant_id: str, timeout: float = 30.0) -> int:
    """Until the page decodes more frames of that person's camera; the count."""
    first = None
    for _ in range(int(timeout / 0.5)):
        frames = ((await inbound_by_source(page)).get(participant_id) or {}).get("camera")
        count = frames["framesDecoded"] if frames else 0
        if first is None:
            first = count
        elif count > first + 5:
            return count
        await asyncio.sleep(0.5)
    raise AssertionError(f"the page decodes no camera of {participant_id}")


async def test_a_pupil_page_sees_only_the_teacher_in_privacy_mode() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = (await server.create_lesson())["id"]
        bots: list[Bot] = []
        try:
            for user, role, colour in (
                ("t-1", "teacher", (200, 30, 30)),
                ("s-2", "student", (30, 30, 200)),
            ):
                bot = Bot(
                    server.base_url, await server.token(lesson, user, user, role), decode=False
                )
                bots.append(bot)
                await bot.connect()
                await bot.publish(
                    [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack(colour), "camera")]
                )
            teacher, maria = bots
            reply = await teacher.request(
                {"type": "set_call_settings", "privacy_mode": True},
                lambda m: m["type"] == "call_settings",
            )
            assert reply["settings"]["privacy_mode"] is True
            async with chromium(pw) as browser:
                page = await new_page(browser)
                url = await server.join_url(lesson, "s-1", "Иван Иванов", "student")
                await join_call(page, url, video=False)
                ivan = await page.evaluate("window.urok.self.id")
                await decoding(page, teacher.id)
                # The server's truth: no consumer of Maria's camera towards Ivan.
                call = server.app[CALLS].get(lesson)
                assert call is not None
                subscriber = call.participants[ivan].subscriber
                assert subscriber is not None
                cameras = {
                    c.producer.app_data["participant_id"]
                    for c in subscriber.consumers
                    if c.producer is not None and c.producer.app_data["source"] == "camera"
                }
                assert cameras == {teacher.id}
                seen = await inbound_by_source(page)
                assert "camera" not in seen.get(maria.id, {})
                assert seen.get(maria.id, {}).get("microphone")  # her voice still reaches him

                # Off: Maria's camera is offered and decodes.
                await teacher.send({"type": "set_call_settings", "privacy_mode": False})
                await decoding(page, maria.id)
        finally:
            for bot in bots:
                await bot.close()
