"""One page session each for a teacher and a pupil: the pre-join screen's toggles,
level meter and speakers, the host's "pupils join muted" shown there and applied on
entry, then a full poll round driven through the page's own controls, its result
ending as a card in both chats."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.browser.harness import (
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
)

pytestmark = pytest.mark.browser

TEACHER = ("t-1", "Анна Петровна Смирнова", "teacher")
IVAN = ("s-1", "Иван Иванов", "student")
PRESSED = "(id) => document.getElementById(id).getAttribute('aria-pressed')"


async def until(page: Page, js: str, arg: object = None, timeout: float = 10000) -> None:
    await page.wait_for_function(js, arg=arg, timeout=timeout)


async def prejoin_ready(page: Page, url: str) -> None:
    await page.goto(url)
    await until(page, "() => window.urok && window.urok.previewReady === true", timeout=15000)


async def test_prejoin_choices_join_muted_and_a_poll_round() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(lesson["id"], *TEACHER)
        ivan_url = await server.join_url(lesson["id"], *IVAN)
        async with chromiums(pw, {}, {}) as (tb, ib):
            teacher, ivan = await new_page(tb), await new_page(ib)
            await join_call(teacher, teacher_url)

            # Pre-join: the meter follows the (fake) microphone, and stops when it is off.
            await prejoin_ready(ivan, ivan_url)
            assert await ivan.evaluate(PRESSED, "pj-mic") == "true"
            await until(ivan, "() => window.urok.prejoin.level > 0.05")
            await ivan.locator("#pj-mic").click()
            assert await ivan.evaluate(PRESSED, "pj-mic") == "false"
            assert "выключен" in await ivan.locator("#pj-mic").inner_text()
            await until(ivan, "() => window.urok.prejoin.level === 0")
            peak = await ivan.evaluate(
                """() => new Promise((done) => {
                  let peak = 0;
                  const timer = setInterval(() => {
                    peak = Math.max(peak, window.urok.prejoin.level);
                  }, 50);
                  setTimeout(() => { clearInterval(timer); done(peak); }, 1500);
                })"""
            )
            assert peak == 0
            await ivan.locator("#pj-mic").click()
            await until(ivan, "() => window.urok.prejoin.level > 0.05")
            # The camera toggle: the preview goes dark and back.
            await ivan.locator("#pj-camera").click()
            await ivan.locator("#preview-off").wait_for(state="visible")
            assert await ivan.evaluate("() => window.urok.local.video.enabled") is False
            await ivan.locator("#pj-camera").click()
            await ivan.locator("#preview-off").wait_for(state="hidden")
            # Speakers: Chromium can choose them (setSinkId); the test sound plays.
            await ivan.locator("#speaker-row").wait_for(state="visible")
            assert await ivan.locator("#speaker-select option").count() >= 1
            await ivan.locator("#speaker-test").click()
            await until(ivan, "() => window.urok.prejoin.tested === 1")

            # The teacher has pupils join muted ("Права доступа"); the pre-join says so.
            await teacher.locator("#toggle-rights").click()
            await teacher.locator("#setting-join_muted").click()
            await until(teacher, "() => window.urok.settings.join_muted === true")
            await ivan.reload()  # the token stays in the tab (token.js)
            await until(ivan, "() => window.urok.previewReady === true", timeout=15000)
            rule = ivan.locator("#pj-join-rule")
            await rule.wait_for(state="visible")
            assert "выключенным микрофоном" in await rule.inner_text()
            assert await ivan.evaluate(PRESSED, "pj-mic") == "false"
            assert await ivan.locator("#pj-mic").is_disabled()
            assert await ivan.evaluate(PRESSED, "pj-camera") == "true"
            await ivan.locator("#join-video").click()
            await until(ivan, "() => window.urok.state === 'in-call'", timeout=15000)
            # Entered muted: the server says so and the page follows (not locked).
            assert await ivan.evaluate("() => window.urok.self.audio") is False
            assert await ivan.evaluate(PRESSED, "toggle-mic") == "false"
            assert await ivan.locator("#toggle-mic").is_enabled()
            ivan_id = await ivan.evaluate("() => window.urok.self.id")
            await until(
                teacher,
                "(id) => { const p = window.urok.participants[id];"
                " return Boolean(p) && p.audio === false && p.video === true; }",
                ivan_id,
            )

            # A poll, asked from the chat panel.
            await teacher.locator("#toggle-chat").click()
            await teacher.locator("#poll-new").click()
            await teacher.locator("#poll-question").fill("Сколько будет 2+2?")
            options = teacher.locator("#poll-options input")
            await options.nth(0).fill("3")
            await options.nth(1).fill("4")
            await teacher.locator("#poll-start").click()
            card = ivan.locator("#polls-dock .poll-card")
            await card.wait_for(state="visible")
            assert "Сколько будет 2+2?" in await card.inner_text()
            # Ivan answers "4"; the teacher's card counts it, with his name.
            await card.locator("input[value='1']").check()
            await card.locator("[data-testid='poll-submit']").click()
            await card.locator(".poll-answered").wait_for()
            assert await card.locator(".poll-results").count() == 0  # not shared yet
            host_card = teacher.locator("#polls-dock .poll-card")
            await host_card.locator(".poll-result[data-count='1']").wait_for()
            assert "Иван Иванов" in await host_card.locator(".poll-result").nth(1).inner_text()
            # Shared: Ivan sees the counts, without names.
            await host_card.locator("[data-testid='poll-share']").click()
            await card.locator(".poll-result[data-count='1']").wait_for()
            assert "Иван Иванов" not in await card.inner_text()
            # Closed: the card goes, and the result is in both chats.
            await host_card.locator("[data-testid='poll-close']").click()
            await ivan.locator("#polls-dock").wait_for(state="hidden")
            for page in (teacher, ivan):
                await until(
                    page,
                    "() => window.urok.chat.some((m) => m.kind === 'poll'"
                    " && m.data.counts.join() === '0,1')",
                )
            await ivan.locator("#toggle-chat").click()
            chat_card = ivan.locator("#chat-list .chat-poll")
            await chat_card.wait_for(state="visible")
            text = await chat_card.inner_text()
            assert "Сколько будет 2+2?" in text and "Ответили: 1" in text
