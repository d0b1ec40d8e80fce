"""An ad-hoc call's invite page in a real browser: a name, "Войти", then the call page."""

from __future__ import annotations

import pytest

from tests.browser.harness import SCREENSHOT_DIR, chromium, new_page, playwright, running_server

pytestmark = pytest.mark.browser

HOST = {"id": "t-1", "name": "Анна Петровна Смирнова"}


async def test_guest_joins_by_invite_link() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        status, call = await server.api(
            "POST", "/api/v1/calls", {"title": "Родительское собрание 5А", "host": HOST}
        )
        assert status == 201, call
        page = await new_page(browser)
        await page.goto(call["invite_url"])
        assert await page.locator("h1").inner_text() == "Родительское собрание 5А"
        # The script shows the time in the browser's locale.
        await page.wait_for_function("() => document.getElementById('invite-when').textContent")
        assert "–" in await page.locator("#invite-when").inner_text()
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-invite.png"))

        # No name: told so, nothing sent.
        await page.locator("#invite-join").click()
        error = page.locator("#invite-error")
        await error.wait_for(state="visible")
        assert await error.inner_text() == "Введите имя, чтобы войти."

        await page.locator("#invite-name").fill("Ольга Сергеевна")
        await page.locator("#invite-join").click()
        await page.wait_for_url(f"**/call/{call['id']}**", timeout=15000)
        await page.locator("#you-are").wait_for(state="visible", timeout=15000)
        assert "Ольга Сергеевна" in await page.locator("#you-are").inner_text()
        assert await page.locator("#lesson-title").inner_text() == "Родительское собрание 5А"


async def test_invite_page_says_why_not() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        status, call = await server.api(
            "POST",
            "/api/v1/calls",
            {"title": "Семинар", "host": HOST, "guests_allowed": False},
        )
        assert status == 201, call
        page = await new_page(browser)
        await page.goto(call["invite_url"] + "?lang=en")
        await page.locator("#invite-name").fill("Olga")
        await page.locator("#invite-join").click()
        error = page.locator("#invite-error")
        await error.wait_for(state="visible")
        assert "does not let people join by link" in await error.inner_text()
        assert "/invite/" in page.url

        status, _ = await server.api("DELETE", f"/api/v1/calls/{call['id']}")
        assert status == 200
        await page.goto(call["invite_url"])
        assert await page.locator("h1").inner_text() == "Звонок завершён"
