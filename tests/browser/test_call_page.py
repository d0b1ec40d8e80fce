"""The call page's screens in a real browser: waiting, errors, language, the demo journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from signalling.config import DEMO_KEY_ID
from signalling.keys import LESSONS
from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromium,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)

pytestmark = pytest.mark.browser


async def test_student_waits_for_the_lesson_to_open_then_joins_audio_only() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        lesson = await server.create_lesson(open_=False)
        url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        page = await new_page(browser)
        await page.goto(url)
        await page.locator("#not-started").wait_for(state="visible", timeout=15000)
        assert "Урок ещё не начался" in await page.locator("#not-started").inner_text()
        assert await page.locator("#lesson-title").inner_text() == "Математика, 5А"
        assert "Иван Иванов" in await page.locator("#you-are").inner_text()
        # The token does not stay in the address bar.
        assert "token=" not in page.url
        await page.wait_for_function("() => window.urok.previewReady === true")
        assert await page.locator("#join-video").is_disabled()
        assert await page.locator("#join-audio").is_disabled()
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-prejoin-waiting.png"))

        status, _ = await server.api("POST", f"/api/v1/lessons/{lesson['id']}/open")
        assert status == 200
        # The page notices by itself (it polls), no reload needed.
        await page.wait_for_function(
            "() => !document.getElementById('join-audio').disabled", timeout=15000
        )
        assert await page.locator("#not-started").is_hidden()
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-prejoin-ready.png"))

        await page.locator("#join-audio").click()
        await page.wait_for_function("() => window.urok.state === 'in-call'", timeout=15000)
        camera = page.locator("#toggle-camera")
        assert await camera.get_attribute("aria-pressed") == "false"
        assert await page.locator("#toggle-mic").get_attribute("aria-pressed") == "true"
        published = await page.evaluate(
            "() => window.urok.published.map((p) => [p.transceiver.mid, p.source])"
        )
        assert [source for _, source in published] == ["microphone"]
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-call-alone.png"))

        # The journal ends the lesson: the page says so in Russian.
        status, _ = await server.api("DELETE", f"/api/v1/lessons/{lesson['id']}")
        assert status == 200
        await page.locator("#screen-message").wait_for(state="visible", timeout=10000)
        assert await page.locator("#message-title").inner_text() == "Урок завершён"
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-ended.png"))


async def test_a_bad_link_gets_a_readable_russian_error() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        lesson = await server.create_lesson()
        page = await new_page(browser)
        await page.goto(f"{server.base_url}/call/{lesson['id']}#token=not-a-token")
        await page.locator("#screen-message").wait_for(state="visible", timeout=15000)
        assert await page.locator("#message-title").inner_text() == "Не удалось войти в урок"
        assert "недействительна" in await page.locator("#message-text").inner_text()
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-bad-token.png"))

        await page.goto(f"{server.base_url}/call/{lesson['id']}")
        await page.locator("#screen-message").wait_for(state="visible", timeout=15000)
        assert "нет ключа доступа" in await page.locator("#message-text").inner_text()


async def test_english_on_request() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        lesson = await server.create_lesson()
        url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
        page = await new_page(browser)
        await join_call(page, url.replace("#", "?lang=en#"))
        assert await page.locator("#leave .ctrl-label").inner_text() == "Leave"
        assert await page.evaluate("document.documentElement.lang") == "en"


async def test_demo_journal_creates_opens_embeds_and_ends_a_lesson() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        page = await new_page(browser)
        await page.goto(server.base_url + "/")
        await page.locator("#create").wait_for(state="visible")
        await page.wait_for_function(
            "() => document.querySelectorAll('#roster-body tr').length === 5"
        )
        assert await page.locator("#teacher-name").inner_text() == "Анна Петровна Смирнова"

        await page.locator("#create").click()
        await page.locator("#open-here").wait_for(state="visible", timeout=10000)
        assert "создан" in await page.locator("#lesson-status").inner_text()
        links = page.locator("a.join-link")
        await links.first.wait_for(timeout=10000)
        assert await links.count() == 5
        assert await links.first.inner_text() == "Войти как Иван Иванов"
        href = await links.first.get_attribute("href")
        assert href and href.startswith("/call/les_") and "#token=" in href

        await page.locator("#open-here").click()
        await page.locator("#call-frame").wait_for(state="visible", timeout=10000)
        assert await page.locator("#lesson-status").inner_text() == "идёт"
        assert "camera" in (await page.locator("#call-frame").get_attribute("allow") or "")
        frame = page.frame_locator("#call-frame")
        await frame.locator("#join-video").click(timeout=15000)
        await frame.locator("#screen-call").wait_for(state="visible", timeout=15000)
        call = page.frame(url=lambda u: "/call/" in u)
        assert call is not None
        assert await call.evaluate("() => window.urok.self.host") is True
        assert await call.evaluate("() => window.urok.local.video.readyState") == "live"
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-demo-journal.png"), full_page=True)

        # "Открыть в новой вкладке" opens the teacher's call page in a tab of its own.
        async with browser.expect_page() as new_tab:
            await page.locator("#open-tab").click()
        tab = await new_tab.value
        await tab.wait_for_url("**/call/les_*", timeout=10000)
        await tab.locator("#screen-prejoin").wait_for(state="visible", timeout=10000)
        # The title comes with the lesson's info, fetched after the screen shows ("Урок"
        # until then): read once, it raced the fetch (a clean-clone run, 2026-12-05).
        await expect(tab.locator("#lesson-title")).to_have_text("Математика, 5А", timeout=10000)
        await tab.close()

        # "Завершить" ends the lesson for everyone in the call.
        await page.locator("#end").click()
        await frame.locator("#screen-message").wait_for(state="visible", timeout=10000)
        assert await frame.locator("#message-title").inner_text() == "Урок завершён"
        assert await page.locator("#lesson-status").inner_text() == "завершён"

        # Someone else created a lesson for the class meanwhile: the journal says so.
        start = datetime.now(UTC)
        status, _ = await server.api(
            "POST",
            "/api/v1/lessons",
            {
                "group": {"id": "demo-5a", "title": "5А"},
                "subject": "Математика",
                "teacher": {"id": "demo-t-smirnova", "name": "Анна Петровна Смирнова"},
                "roster": [],
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=45)).isoformat(),
            },
        )
        assert status == 201
        await page.locator("#create").click()
        message = page.locator("#message")
        await message.wait_for(state="visible")
        await page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('уже есть')"
        )
        assert "5А" in await message.inner_text()
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-demo-conflict.png"))


async def test_the_demo_journal_creates_a_lesson_that_ends_after_midnight() -> None:
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        page = await new_page(browser)
        # The teacher's clock says 23:40 (tomorrow, so it is ahead of the server's):
        # the form offers 23:40-00:25, and the end is the next day, not before the start.
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        late = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 23, 40, tzinfo=UTC)
        await page.clock.set_fixed_time(late)
        await page.goto(server.base_url + "/")
        await page.locator("#create").wait_for(state="visible")
        assert await page.locator("#lesson-start").input_value() == late.astimezone().strftime(
            "%H:%M"
        )
        await page.locator("#create").click()
        await page.locator("#open-here").wait_for(state="visible", timeout=10000)
        assert "создан" in await page.locator("#lesson-status").inner_text()
        (lesson,) = await server.app[LESSONS].list(DEMO_KEY_ID, "demo-5a")
        assert lesson.ends_at - lesson.starts_at == timedelta(minutes=45)


async def test_joining_again_elsewhere_replaces_the_first_tab() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        url = await server.join_url(lesson["id"], "t-1", "Анна Петровна Смирнова", "teacher")
        async with chromium(pw, viewport=(390, 844)) as phone:
            first = await new_page(phone)
            await join_call(first, url)
            await first.screenshot(path=str(SCREENSHOT_DIR / "urok-call-phone.png"))
            second = await phone.new_page()
            await join_call(second, url)
            await first.locator("#screen-message").wait_for(state="visible", timeout=10000)
            title = await first.locator("#message-title").inner_text()
            assert title == "Вы вошли в урок в другом месте"
            assert await first.locator("#message-action").inner_text() == "Продолжить здесь"
            assert await second.evaluate("() => window.urok.state") == "in-call"


async def test_without_camera_and_microphone_one_can_still_join_and_follow() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
        student_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        async with chromiums(pw, {"fake_devices": False}, {}) as (bare, equipped):
            student = await new_page(bare)
            await student.goto(student_url)
            await student.wait_for_function("() => window.urok.previewReady === true")
            notice = await student.locator("#prejoin-notice").inner_text()
            assert "не найдены" in notice
            assert await student.locator("#join-video").is_disabled()
            label = await student.locator("#join-audio").inner_text()
            assert label.strip() == "Войти без камеры и микрофона"
            await student.screenshot(path=str(SCREENSHOT_DIR / "urok-prejoin-no-devices.png"))
            await join_call(student, student_url, video=False)
            assert await student.evaluate("() => window.urok.pcs.publisher") is None

            teacher = await new_page(equipped)
            await join_call(teacher, teacher_url)
            stats = await wait_for_media(student)
            assert stats["video"]["framesDecoded"] > 10
            # The teacher sees the student as a name placeholder, microphone off.
            student_id = await student.evaluate("() => window.urok.self.id")
            tile = teacher.locator(f".tile[data-participant-id='{student_id}']")
            await tile.wait_for()
            await teacher.wait_for_function(
                f"() => document.querySelector(\".tile[data-participant-id='{student_id}']"
                ' .tile-muted").hidden === false',
                timeout=10000,
            )
            assert "has-video" not in (await tile.get_attribute("class") or "")


async def test_denied_permission_is_explained_and_joining_still_works() -> None:
    deny = """
      navigator.mediaDevices.getUserMedia = async () => {
        throw new DOMException('Permission denied', 'NotAllowedError');
      };
    """
    async with running_server() as server, playwright() as pw, chromium(pw) as browser:
        lesson = await server.create_lesson()
        url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        await browser.add_init_script(deny)
        page = await new_page(browser)
        await page.goto(url)
        await page.wait_for_function("() => window.urok.previewReady === true")
        assert "запрещён" in await page.locator("#prejoin-notice").inner_text()
        await page.screenshot(path=str(SCREENSHOT_DIR / "urok-prejoin-denied.png"))
        await join_call(page, url, video=False)
        assert await page.locator("#toggle-mic").get_attribute("aria-pressed") == "false"
