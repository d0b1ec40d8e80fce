"""Bounded video on the call page (issue 17): a pupil's page in a class of 20 whose
server sends each person at most 15 pupils' cameras (`[media] video_slots = 15`).

19 bots with small pre-encoded cameras, the teacher among them (a host: pinned,
besides the bound). The page shows 16 tiles: itself, the teacher and 14 pupils.
Of the 18 pupils' cameras only 15 ever have an m-section on the page's
connection; the ones its first page shows are all sent and decoded, whichever
the server had parked before the page said what it shows. "Next page" shows
the other 4: those that had no m-section take those of page 1's (now hidden)
and are decoded in their own tiles; the connection still has at most 16 video
m-sections. Back on page 1, its cameras are decoded again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from playwright.async_api import Page

from signalling.config_sections import MediaSettings
from signalling.keys import CALLS
from tests.browser.harness import Server, chromium, join_call, new_page, playwright, running_server
from tests.browser.test_grid_pages import class_of_twenty
from tests.browser.test_track_views_page import until

pytestmark = pytest.mark.browser

BOUND = 15
PAGE_LABEL = "() => document.getElementById('grid-page-label').textContent"
# Frames the tile of each of these participants presents from now on (a frozen picture
# presents none).
COUNT_FRAMES = """(ids) => {
  window.testFrames = window.testFrames || {};
  for (const id of ids) {
    const video = window.urok.tiles.get(id).video;
    window.testFrames[id] = 0;
    const tick = () => { window.testFrames[id] += 1; video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  }
}"""
SHOWN_IDS = """() => [...window.urok.tiles.values()]
  .filter((t) => !t.self && !t.el.hidden && !t.el.hasAttribute('data-off-page'))
  .map((t) => t.participant.id)"""


def subscriber_of(server: Server, lesson: str, viewer: str):  # type: ignore[no-untyped-def]
    call = server.app[CALLS].get(lesson)
    assert call is not None
    subscriber = call.participants[viewer].subscriber
    assert subscriber is not None
    return subscriber


def sent_cameras(server: Server, lesson: str, viewer: str) -> set[str]:
    """Whose cameras have an m-section on the viewer's connection and are sent now."""
    subscriber = subscriber_of(server, lesson, viewer)
    return {
        str(c.producer.app_data["participant_id"])
        for c in subscriber.consumers
        if c.kind == "video" and c.producer is not None and not c.paused
    }


def video_sections(server: Server, lesson: str, viewer: str) -> int:
    pc = subscriber_of(server, lesson, viewer).pc
    return sum(t.kind == "video" for t in pc.getTransceivers())


async def decoded(page: Page, ids: list[str], what: str) -> None:
    """Each tile of `ids` presents at least 5 frames from now on."""
    await page.evaluate(COUNT_FRAMES, ids)
    deadline = time.monotonic() + 20
    while True:
        frames = await page.evaluate("(ids) => ids.map((id) => window.testFrames[id])", ids)
        if min(frames) >= 5:
            return
        assert time.monotonic() < deadline, f"{what}: frames {dict(zip(ids, frames, strict=True))}"
        await asyncio.sleep(0.3)


async def test_a_page_of_a_large_class_gets_its_cameras_within_the_bound() -> None:
    settings = replace(MediaSettings(), video_slots=BOUND)
    async with running_server(media=settings) as server, playwright() as pw:
        async with class_of_twenty(server) as (lesson, bots):
            async with chromium(pw) as browser:
                page = await new_page(browser)
                url = await server.join_url(lesson, "s-1", "Иван Иванов", "student")
                await join_call(page, url, video=False)
                me = (await page.evaluate("window.urok.self"))["id"]
                await page.wait_for_function(f"() => ({PAGE_LABEL})() === 'Страница 1 из 2'")
                first_page = set(await page.evaluate(SHOWN_IDS))
                assert len(first_page) == 15 and bots[0].id in first_page
                # Every camera of page 1 is sent, none of page 2, within the bound.
                await until(
                    lambda: sent_cameras(server, lesson, me) == first_page, 30, "page 1 sent"
                )
                assert video_sections(server, lesson, me) <= BOUND + 1
                await decoded(page, sorted(first_page), "page 1")

                await page.click("#grid-next")
                await page.wait_for_function(f"() => ({PAGE_LABEL})() === 'Страница 2 из 2'")
                second_page = set(await page.evaluate(SHOWN_IDS))
                assert len(second_page) == 4 and not second_page & first_page
                await until(
                    lambda: second_page <= sent_cameras(server, lesson, me), 30, "page 2 sent"
                )
                assert video_sections(server, lesson, me) <= BOUND + 1
                await decoded(page, sorted(second_page), "page 2")

                await page.click("#grid-prev")
                await until(
                    lambda: sent_cameras(server, lesson, me) == first_page, 30, "page 1 again"
                )
                assert video_sections(server, lesson, me) <= BOUND + 1
                await decoded(page, sorted(first_page), "page 1 again")
