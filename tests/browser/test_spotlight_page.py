"""Pin, spotlight and minimise on the call page, teacher and pupil in two Chromiums
with fake cameras and microphones (docs/protocol.md "Spotlight").

The teacher spotlights the pupil from the tile (by keyboard): on both pages the
pupil's tile is the large one. The pupil pins the teacher for themselves: only the
pupil's page changes. The pupil minimises the call to a small floating view (the
pinned tile, a working microphone toggle) and expands it again.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser


def tile(participant_id: str) -> str:
    return f".tile[data-participant-id='{participant_id}']"


async def large_is(page: Page, participant_id: str) -> None:
    """`participant_id`'s tile is the large one: featured, at least twice as wide as any other."""
    await page.wait_for_function(
        """(id) => {
          const big = document.querySelector(`.tile[data-participant-id='${id}']`);
          if (!big || !big.classList.contains('tile-featured')) return false;
          if (!document.getElementById('stage').classList.contains('speaker-view')) return false;
          const others = [...document.querySelectorAll('#stage .tile')].filter((t) => t !== big);
          const width = big.getBoundingClientRect().width;
          return others.every((t) => 2 * t.getBoundingClientRect().width < width);
        }""",
        arg=participant_id,
        timeout=10000,
    )


async def shown_tiles(page: Page) -> list[Any]:
    return list(
        await page.evaluate(
            "() => [...document.querySelectorAll('#stage .tile')]"
            ".filter((t) => getComputedStyle(t).display !== 'none')"
            ".map((t) => t.dataset.participantId || t.dataset.screenOf)"
        )
    )


async def test_spotlight_for_everyone_pin_for_oneself_and_minimise() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
        pupil_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        async with chromiums(pw, {}, {}) as (teacher_browser, pupil_browser):
            teacher, pupil = await new_page(teacher_browser), await new_page(pupil_browser)
            await join_call(teacher, teacher_url)
            await join_call(pupil, pupil_url)
            teacher_id = (await teacher.evaluate("window.urok.self"))["id"]
            pupil_id = (await pupil.evaluate("window.urok.self"))["id"]
            for page, other in ((teacher, pupil_id), (pupil, teacher_id)):
                await page.wait_for_function(
                    "(sel) => document.querySelector(sel)?.classList.contains('has-video')",
                    arg=tile(other),
                    timeout=20000,
                )
            # Only a host may spotlight: the pupil's tiles have no such button.
            assert await pupil.locator(f"{tile(teacher_id)} [data-action='spotlight']").is_hidden()

            # The teacher spotlights the pupil from the tile, with the keyboard.
            spot = teacher.locator(f"{tile(pupil_id)} [data-action='spotlight']")
            assert await spot.get_attribute("aria-label") == "Выделить для всех: Иван Иванов"
            await spot.focus()
            await teacher.keyboard.press("Enter")
            for page in (teacher, pupil):
                await large_is(page, pupil_id)
            assert await spot.get_attribute("aria-pressed") == "true"
            assert (await pupil.evaluate("window.urok.spotlight"))["participant_id"] == pupil_id
            await pupil.locator(".toast", has_text="Для всех крупно: Иван Иванов").wait_for()

            # The pupil pins the teacher for themselves: the pupil's page changes...
            pin = pupil.locator(f"{tile(teacher_id)} [data-action='pin']")
            await pupil.locator(tile(teacher_id)).hover()
            await pin.click()
            await large_is(pupil, teacher_id)
            assert await pin.get_attribute("aria-pressed") == "true"
            assert await pupil.locator(f"{tile(teacher_id)} .tile-focus-badge").inner_text() == (
                "Закреплено"
            )
            # ...the teacher's does not: the spotlight still has the pupil large there.
            await large_is(teacher, pupil_id)
            assert await teacher.evaluate("window.urok.pin") is None
            await pupil.screenshot(path=str(SCREENSHOT_DIR / "urok-pinned.png"))

            # Minimised: a small floating view of the pinned tile, with a working microphone.
            await pupil.locator("#toggle-minimise").click()
            await pupil.wait_for_function("() => window.urok.minimised")
            box = await pupil.locator("#screen-call").bounding_box()
            assert box is not None and box["width"] <= 400 and box["height"] <= 300, box
            assert await shown_tiles(pupil) == [teacher_id]
            assert await pupil.locator("#controls").is_hidden()
            await pupil.locator("#mini-mic").click()
            await pupil.wait_for_function(
                "() => !window.urok.local.audio.enabled"
                " && document.getElementById('mini-mic').getAttribute('aria-pressed') === 'false'"
            )
            await teacher.wait_for_function(
                f"() => document.querySelector(\"{tile(pupil_id)}\").dataset.audio === 'false'"
            )
            await pupil.screenshot(path=str(SCREENSHOT_DIR / "urok-minimised.png"))
            await pupil.locator("#mini-expand").click()
            await pupil.wait_for_function("() => !window.urok.minimised")
            box = await pupil.locator("#screen-call").bounding_box()
            assert box is not None and box["width"] > 1000, box
            assert await pupil.locator("#controls").is_visible()
            assert sorted(await shown_tiles(pupil)) == sorted([teacher_id, pupil_id])
            await large_is(pupil, teacher_id)  # the pin outlives minimising

            # The teacher takes the spotlight back: the grid again at the teacher's.
            await spot.click()
            await teacher.wait_for_function(
                "() => !document.getElementById('stage').classList.contains('speaker-view')"
                " && window.urok.spotlight === null"
            )
            await pupil.wait_for_function("() => window.urok.spotlight === null")
            await large_is(pupil, teacher_id)  # the pupil's own pin stays
