"""Grid pages: a page shows 16 tiles at a laptop's width, and the server sends nothing
of the cameras on the other pages (the page tells it through `track_view`).

A pupil's page in a class of 20 (19 bots with small pre-encoded cameras, the teacher
among them): page 1 of 2 holds the pupil, the teacher (a host) and 14 more; the 4
cameras of page 2 are held back at the server. "Next page" shows those 4, decoded,
and holds back the 15 of page 1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bench.bot import Bot
from bench.preencoded import PreEncodedTrack, prepare_media
from tests.browser.harness import (
    Server,
    chromium,
    join_call,
    new_page,
    playwright,
    running_server,
)
from tests.browser.test_track_views_page import cameras_to, frames_of, until

pytestmark = pytest.mark.browser

SHOWN_TILES = (
    "() => [...document.querySelectorAll('#grid .tile')]"
    ".filter((t) => !t.hidden && !t.hasAttribute('data-off-page')).length"
)


@asynccontextmanager
async def class_of_twenty(server: Server) -> AsyncIterator[tuple[str, list[Bot]]]:
    """A lesson of 20 whose 19 others are bots with small pre-encoded cameras (the
    teacher first): its id and the bots, connected and publishing; the page joins as
    s-1. tests/browser/test_video_slots_page.py has the same class."""
    media = prepare_media(audio_seconds=1, video_seconds=1, width=160, height=120, fps=10)
    roster = [{"id": f"s-{i}", "name": f"Ученик {i}", "role": "student"} for i in range(1, 20)]
    lesson = (await server.create_lesson(roster=roster))["id"]
    people = [("t-1", "Анна Петровна", "teacher")] + [
        (f"s-{i}", f"Ученик {i}", "student") for i in range(2, 20)
    ]
    bots = [
        Bot(server.base_url, await server.token(lesson, user, name, role), receive=False)
        for user, name, role in people
    ]
    try:
        await asyncio.gather(*(bot.connect(timeout=30) for bot in bots))
        await asyncio.gather(
            *(bot.publish([(PreEncodedTrack(media.video), "camera")]) for bot in bots)
        )
        yield lesson, bots
    finally:
        for bot in bots:
            await bot.close()


async def test_a_class_of_twenty_is_paged_and_other_pages_cost_nothing() -> None:
    async with running_server() as server, playwright() as pw:
        async with class_of_twenty(server) as (lesson, bots):
            async with chromium(pw) as browser:
                page = await new_page(browser)
                url = await server.join_url(lesson, "s-1", "Иван Иванов", "student")
                await join_call(page, url, video=False)
                me = (await page.evaluate("window.urok.self"))["id"]
                await page.wait_for_function(
                    "() => document.getElementById('grid-page-label').textContent"
                    " === 'Страница 1 из 2'",
                    timeout=30000,
                )
                assert await page.evaluate(SHOWN_TILES) == 16
                await until(lambda: len(cameras_to(server, lesson, me)) == 19, 30, "19 cameras")
                consumers = cameras_to(server, lesson, me)
                # The 4 cameras of page 2 are held back; the teacher's is on page 1.
                await until(
                    lambda: sum(c.paused for c in consumers.values()) == 4, 20, "page 2 held"
                )
                assert not consumers[bots[0].id].paused
                off_page = [who for who, c in consumers.items() if c.paused]

                await page.click("#grid-next")
                await page.wait_for_function(
                    "() => document.getElementById('grid-page-label').textContent"
                    " === 'Страница 2 из 2'",
                    timeout=10000,
                )
                assert await page.evaluate(SHOWN_TILES) == 4
                await until(
                    lambda: not any(consumers[who].paused for who in off_page), 20, "page 2 sent"
                )
                await until(
                    lambda: sum(c.paused for c in consumers.values()) == 15, 20, "page 1 held"
                )
                deadline = time.monotonic() + 20
                while await frames_of(page, off_page[0]) < 5:
                    assert time.monotonic() < deadline, "a camera of page 2 does not decode"
                    await asyncio.sleep(0.3)
