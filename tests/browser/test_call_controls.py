"""The call page a teacher uses all lesson long, in two real Chromium pages:

- the control bar at 1280, 1018 (the journal's frame) and 390 px: every primary
  control visible inside the viewport, the rest in the bar or in the "⋯" menu;
- labels and aria-pressed following the state, keyboard shortcuts (not while
  typing) and their "?" dialog, the presenter's bar instead of a mirror;
- a pupil's raised hand at the host: toast, soft sound (which can be turned off),
  the count on "Участники", "Дать слово" in the queue;
- an automated accessibility check (axe-core): no serious or critical violation;
- the end of the lesson: one calm screen with the chat history and the
  recordings, the same after a reload; the demo journal following the lesson.
"""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from signalling.config import RecordingSettings
from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromium,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser

PRIMARY = [
    "toggle-mic", "toggle-camera", "toggle-screen", "toggle-hand",
    "toggle-chat", "toggle-people", "leave",
]  # fmt: skip
SCREEN_ARGS = ("--auto-select-desktop-capture-source=Entire screen",)
SMALL = RecordingSettings(width=640, height=360, fps=10, min_free_mb=1)

# Where each control is: in the bar and inside the viewport, in the menu, or nowhere.
PLACES = """() => [...document.querySelectorAll('#controls > .ctrl, #more-menu > .ctrl')]
  .filter((b) => !b.hidden && b.id !== 'controls-more')
  .map((b) => {
    const r = b.getBoundingClientRect();
    const inBar = b.parentElement.id === 'controls';
    const seen = inBar && r.width > 0 && r.left >= 0 && r.right <= innerWidth + 0.5
      && r.bottom <= innerHeight + 0.5 && r.top >= 0;
    return [b.id, inBar ? (seen ? 'bar' : 'clipped') : 'menu'];
  })"""


async def until(page: Page, js: str, arg: Any = None, timeout: float = 10000) -> None:
    await page.wait_for_function(js, arg=arg, timeout=timeout)


async def bar_at(page: Page, width: int, height: int) -> dict[str, str]:
    """Resize, let the bar settle, and say where every shown control is."""
    await page.set_viewport_size({"width": width, "height": height})
    await until(page, f"() => innerWidth === {width}")
    await page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50)))")
    places = dict(await page.evaluate(PLACES))
    for control in PRIMARY:
        assert places.get(control) == "bar", (width, places)
    assert "clipped" not in places.values(), (width, places)
    return places


async def serious_violations(page: Page) -> list[str]:
    results = await Axe().run(page)
    return [
        f"{v['id']}: {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


async def test_control_bar_hands_shortcuts_accessibility_and_the_end() -> None:
    async with running_server(recording=SMALL) as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(
            lesson["id"], "t-1", "Анна Петровна Смирнова", "teacher"
        )
        pupil_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        async with chromiums(pw, {"extra_args": SCREEN_ARGS}, {"viewport": (390, 844)}) as (tb, pb):
            teacher, pupil = await new_page(tb), await new_page(pb)
            await join_call(teacher, teacher_url)
            await join_call(pupil, pupil_url, video=False)
            pupil_id = (await pupil.evaluate("window.urok.self"))["id"]
            await teacher.locator(f".tile[data-participant-id='{pupil_id}']").wait_for()

            # The bar: at 1280 (and in the journal's 1018 px frame) everything fits,
            # icons only; at 390 the secondary controls wait in the "⋯" menu.
            wide = await bar_at(teacher, 1280, 800)
            assert {"toggle-rights", "toggle-recording", "toggle-breakout"} <= wide.keys()
            framed = await bar_at(teacher, 1018, 700)
            assert framed.keys() == wide.keys()
            assert (await bar_at(teacher, 360, 740)).keys() == wide.keys()  # the narrowest
            phone = await bar_at(teacher, 390, 844)
            assert phone.keys() == wide.keys()
            in_menu = [c for c, where in phone.items() if where == "menu"]
            assert {"toggle-rights", "toggle-recording"} <= set(in_menu)
            more = teacher.locator("#controls-more")
            await more.click()
            assert await more.get_attribute("aria-expanded") == "true"
            await teacher.locator("#more-menu #toggle-rights").click()  # reachable, and works
            await teacher.locator("#panel-rights").wait_for(state="visible")
            assert await teacher.locator("#more-menu").is_hidden()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-controls-390.png"))
            await bar_at(teacher, 1280, 800)
            await teacher.locator("#panel-rights .panel-close").click()

            # Labels and aria-pressed follow the state; M works, not while typing.
            mic = teacher.locator("#toggle-mic")
            assert await mic.locator(".ctrl-label").inner_text() == "Микрофон включён"
            await teacher.keyboard.press("m")
            await until(teacher, "() => !window.urok.local.audio.enabled")
            assert await mic.get_attribute("aria-pressed") == "false"
            assert await mic.locator(".ctrl-label").inner_text() == "Микрофон выключен"
            assert await mic.get_attribute("title") == "Включить микрофон (M)"
            await teacher.keyboard.press("m")
            await until(teacher, "() => window.urok.local.audio.enabled")
            await teacher.keyboard.press("c")
            await teacher.locator("#panel-chat").wait_for(state="visible")
            await teacher.locator("#chat-input").fill("Домашнее задание: № 5")
            await teacher.keyboard.press("Enter")
            assert await teacher.evaluate("window.urok.local.audio.enabled") is True
            await until(teacher, "() => window.urok.chat.length === 1")
            await teacher.locator("#chat-input").blur()
            await teacher.keyboard.press("Shift+Slash")
            dialog = teacher.locator("[data-testid='shortcuts-dialog']")
            await dialog.wait_for(state="visible")
            assert "Поднять или опустить руку" in await dialog.inner_text()
            await teacher.keyboard.press("Escape")
            await dialog.wait_for(state="hidden")

            # The presenter sees a bar, not their own screen large.
            await teacher.keyboard.press("s")
            presenting = teacher.locator("[data-testid='presenting-bar']")
            await presenting.wait_for(state="visible", timeout=10000)
            assert await teacher.locator("#screen-stage").is_hidden()
            label = await teacher.locator("#toggle-screen .ctrl-label").inner_text()
            assert label == "Остановить показ"
            await presenting.locator("button").click()
            await until(teacher, "() => window.urok.local.screen === null")
            assert await presenting.is_hidden()

            # A raised hand: toast, soft sound and count at the host; the sound can go.
            await pupil.locator("#toggle-hand").click()
            await teacher.locator(".toast", has_text="Иван Иванов поднимает руку").wait_for()
            badge = teacher.locator("[data-testid='hands-badge']")
            assert await badge.inner_text() == "1"
            people_name = await teacher.locator("#toggle-people").get_attribute("aria-label")
            assert people_name == "Участники, Поднятых рук: 1"
            alerts = await teacher.evaluate("window.urok.handAlerts")
            assert [(a["id"], a["sound"]) for a in alerts] == [(pupil_id, True)]
            await teacher.keyboard.press("p")
            await teacher.locator("#hand-sound").uncheck()
            stored = await teacher.evaluate("localStorage.getItem('urok.handSound')")
            assert stored == "off"
            await pupil.locator("#toggle-hand").click()
            await until(teacher, "() => window.urok.hands.length === 0")
            await pupil.locator("#toggle-hand").click()
            await until(teacher, "() => window.urok.handAlerts.length === 2")
            assert (await teacher.evaluate("window.urok.handAlerts[1].sound")) is False
            # "Дать слово" at the top of the panel: the hand goes down, the floor is his.
            queue = teacher.locator(".people-hands .hand-row")
            await queue.locator("[data-action='give-floor']").click()
            await until(pupil, "() => window.urok.hands.length === 0")
            await until(teacher, "(id) => window.urok.participants[id].floor === true", pupil_id)
            assert await badge.is_hidden()

            # No serious or critical accessibility problem in the call (axe-core).
            assert await serious_violations(teacher) == []
            assert await serious_violations(pupil) == []

            # A recording, then the teacher ends the lesson for everyone.
            await teacher.locator("#toggle-recording").click()
            await teacher.locator("#recording-title").fill("Дроби")
            await teacher.locator("[data-testid='recording-submit']").click()
            await until(teacher, "() => (window.urok.recordingSeconds || 0) >= 2", timeout=15000)
            await teacher.locator("[data-testid='recording-stop']").click()
            await teacher.locator("#dialog [data-value='ok']").click()
            await pupil.locator("[data-testid='recording-card']").wait_for(
                state="attached", timeout=60000
            )
            await teacher.locator("#leave").click()
            await teacher.locator("#dialog [data-value='end']").click()
            for page in (pupil, teacher):
                await until(page, "() => window.urok.state === 'ended'")

            # One calm screen: no toast, the recording and the chat history.
            for attempt in ("ended", "reloaded"):
                if attempt == "reloaded":
                    await pupil.reload()
                    await until(pupil, "() => window.urok.state === 'ended'", timeout=15000)
                assert await pupil.locator("#message-title").inner_text() == "Урок завершён"
                assert await pupil.locator("#toasts > *").count() == 0
                assert "вкладку можно закрыть" in await pupil.locator("#message-text").inner_text()
                link = pupil.locator(".ended-recording-link")
                await link.wait_for(timeout=10000)
                assert await link.inner_text() == "Дроби"
                href = await link.get_attribute("href") or ""
                assert href.startswith("/recordings/") and "token=" in href
                response = await pupil.request.get(
                    server.base_url + href, headers={"Range": "bytes=0-99"}
                )
                assert response.status == 206
                await pupil.locator("#ended-chat").click()
                await pupil.locator("#ended-chat-list", has_text="Домашнее задание: № 5").wait_for()
            assert "Вы завершили урок" in await teacher.locator("#message-text").inner_text()
            await pupil.screenshot(path=str(SCREENSHOT_DIR / "urok-ended-links.png"))


async def test_the_demo_journal_follows_a_lesson_ended_inside_its_frame() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        page = await new_page(browser)
        await page.goto(server.base_url + "/")
        await page.locator("#create").click()
        await page.locator("#open-here").click()
        frame = page.frame_locator("#call-frame")
        await frame.locator("#join-audio").click(timeout=15000)
        await frame.locator("#screen-call").wait_for(state="visible", timeout=15000)
        # The journal hears of the call through /embed.js's events (docs/embedding.md).
        await page.locator("#lesson-status", has_text="идёт · 1 участник").wait_for(timeout=10000)

        # "Завершить для всех" inside the call: the journal sees it by itself.
        await frame.locator("#leave").click()
        await frame.locator("#dialog [data-value='end']").click()
        await frame.locator("#screen-message").wait_for(state="visible", timeout=10000)
        await page.locator("#lesson-status", has_text="завершён").wait_for(timeout=10000)
        text = await frame.locator("#message-text").inner_text()
        assert text == "Вы завершили урок для всех участников."  # no tabs to close in a frame
        assert await frame.locator("#ended-chat").is_visible()
