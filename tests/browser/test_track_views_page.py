"""The call page tells the server what it shows (docs/protocol.md "Track views") and
offers "save data" in the "⋯" menu.

One page (a pupil) and two bots publishing cameras. Minimising the call leaves one
tile on the page: the other camera is no longer sent to it (its consumer paused,
no packets leave the server); expanding brings it back and the page decodes it
again. The "⋯" menu's "save data: audio and screen" holds every camera back, and
the tiles say why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from playwright.async_api import Page

from bench.bot import Bot
from bench.media import PatternVideoTrack
from sfu.consumer import Consumer
from signalling.keys import CALLS
from tests.browser.harness import (
    Server,
    chromium,
    inbound_by_source,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


def cameras_to(server: Server, lesson: str, viewer: str) -> dict[str, Consumer]:
    """The viewer's consumers of cameras, by the publisher's participant id."""
    call = server.app[CALLS].get(lesson)
    assert call is not None
    subscriber = call.participants[viewer].subscriber
    assert subscriber is not None
    return {
        str(c.producer.app_data["participant_id"]): c
        for c in subscriber.consumers
        if c.kind == "video" and c.producer is not None
    }


async def frames_of(page: Page, who: str) -> int:
    stats = await inbound_by_source(page)
    return int(stats.get(who, {}).get("camera", {}).get("framesDecoded", 0))


async def test_the_page_sends_what_it_shows_and_saves_data() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = (await server.create_lesson())["id"]
        bots = [
            Bot(server.base_url, await server.token(lesson, user, name, role), decode=False)
            for user, name, role in (
                ("t-1", "Анна Петровна", "teacher"),
                ("s-2", "Мария", "student"),
            )
        ]
        try:
            for bot, colour in zip(bots, ((200, 30, 30), (30, 30, 200)), strict=True):
                await bot.connect()
                await bot.publish([(PatternVideoTrack(colour, 160, 120, 15), "camera")])
            async with chromium(pw) as browser:
                page = await new_page(browser)
                url = await server.join_url(lesson, "s-1", "Иван Иванов", "student")
                await join_call(page, url, video=False)
                me = (await page.evaluate("window.urok.self"))["id"]
                # Both tiles shown: both told visible, with their sizes.
                await page.wait_for_function(
                    "() => Object.values(window.urok.views).filter((v) => v.visible"
                    " && v.width > 0).length === 2",
                    timeout=20000,
                )
                consumers = cameras_to(server, lesson, me)
                assert len(consumers) == 2 and not any(c.paused for c in consumers.values())

                # Minimised: one tile stays; the other camera is not sent any more.
                await page.click("#toggle-minimise")
                await until(
                    lambda: sum(c.paused for c in consumers.values()) == 1, 10, "one held back"
                )
                (hidden,) = [who for who, c in consumers.items() if c.paused]
                await asyncio.sleep(0.3)  # what was in flight
                sent = consumers[hidden].packets_sent
                shown = next(c for who, c in consumers.items() if who != hidden)
                shown_sent = shown.packets_sent
                await until(lambda: shown.packets_sent - shown_sent > 15, 10, "the shown one flows")
                assert consumers[hidden].packets_sent - sent <= 2
                views = await page.evaluate("window.urok.views")
                assert views[f"{hidden}|camera"] == {"visible": False}

                # Expanded: it comes back and decodes.
                before = await frames_of(page, hidden)
                await page.click("#mini-expand")
                await until(lambda: not consumers[hidden].paused, 10, "shown again")
                deadline = time.monotonic() + 10
                while await frames_of(page, hidden) <= before + 5:
                    assert time.monotonic() < deadline, "the camera shown again does not decode"
                    await asyncio.sleep(0.3)

                # Save data from the "⋯" menu: audio and screen only.
                await page.click("#controls-more")
                await page.click("#save-audio-screen")
                await until(lambda: all(c.paused for c in consumers.values()), 10, "cameras held")
                await page.wait_for_function(
                    "() => document.querySelectorAll('.tile[data-paused=\"save_data\"]')"
                    ".length === 2 && document.getElementById('save-audio-screen')"
                    ".getAttribute('aria-pressed') === 'true'",
                    timeout=10000,
                )
                note = await page.locator(
                    '.tile[data-paused="save_data"] .tile-paused'
                ).first.text_content()
                assert note == "Видео не передаётся: экономия трафика"
                await page.click("#controls-more")
                await page.click("#save-audio-screen")
                await until(lambda: not any(c.paused for c in consumers.values()), 10, "back")
        finally:
            for bot in bots:
                await bot.close()
