"""Recording a call in real browsers: the teacher's "Записать звонок" dialog, the
"Запись" indicator with its running time on every page (also a late joiner's),
stopping after a confirmation, and the recording's card in the chat, whose link
plays (and seeks) for those who may watch it.

The teacher drives everything through the call page's own controls; the file
behind the card's link is fetched over HTTP and opened with PyAV.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import pytest
from playwright.async_api import Page

from signalling.config import RecordingSettings
from signalling.keys import CALLS
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

TEACHER = ("t-1", "Анна Петровна Смирнова", "teacher")
IVAN = ("s-1", "Иван Иванов", "student")
MARIA = ("s-2", "Мария Кузнецова", "student")
PARENT = ("p-1", "Ольга Иванова", "parent")
GUEST = ("g-1", "Гость Урока", "guest")
ROSTER = [
    {"id": "s-1", "name": "Иван Иванов", "role": "student"},
    {"id": "s-2", "name": "Мария Кузнецова", "role": "student"},
    {"id": "p-1", "name": "Ольга Иванова", "role": "parent"},
]
# A small composite keeps the recorder light next to three Chromium processes.
SMALL = RecordingSettings(width=640, height=360, fps=10, min_free_mb=1)

INDICATOR = "[data-testid='recording-indicator']"
CARD = "[data-testid='recording-card']"
# The indicator is showing and its running time is at least `n` seconds.
ELAPSED_AT_LEAST = """(n) => {
  const el = document.querySelector("[data-testid='recording-elapsed']");
  if (!el || !el.offsetParent) return false;
  const parts = el.textContent.trim().split(':').map(Number);
  if (parts.length < 2 || parts.some(Number.isNaN)) return false;
  return parts.reduce((total, part) => total * 60 + part, 0) >= n;
}"""
ELAPSED_JS = """() => {
  const parts = document.querySelector("[data-testid='recording-elapsed']")
    .textContent.trim().split(':').map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}"""


async def until(page: Page, js: str, arg: Any = None, timeout: float = 10000) -> None:
    await page.wait_for_function(js, arg=arg, timeout=timeout)


async def open_chat(page: Page) -> None:
    if await page.locator("#panel-chat").is_hidden():
        await page.locator("#toggle-chat").click()
    await page.locator("#panel-chat").wait_for(state="visible")


async def start_recording(page: Page, title: str, *, parents: bool = True) -> None:
    """The teacher: "Записать звонок", a title, who may watch, "Записать звонок"."""
    await page.locator("#toggle-recording").click()
    dialog = page.locator("[data-testid='recording-dialog']")
    await dialog.wait_for(state="visible")
    title_input = dialog.locator("#recording-title")
    await title_input.fill(title)
    parent_box = dialog.locator("#recording-vis-parent")
    if await parent_box.is_checked() != parents:
        await parent_box.click()
    await dialog.locator("[data-testid='recording-submit']").click()
    await dialog.wait_for(state="hidden")


async def stop_recording(page: Page) -> None:
    await page.locator("[data-testid='recording-stop']").click()
    confirm = page.locator("#dialog")
    await confirm.wait_for(state="visible")
    await confirm.locator("[data-value='ok']").click()


async def test_teacher_records_the_call_and_everyone_gets_the_recording() -> None:
    async with running_server(recording=SMALL) as server, playwright() as pw:
        lesson = await server.create_lesson(roster=ROSTER)
        teacher_url = await server.join_url(lesson["id"], *TEACHER)
        ivan_url = await server.join_url(lesson["id"], *IVAN)
        maria_url = await server.join_url(lesson["id"], *MARIA)
        async with chromiums(pw, {}, {}, {}) as (tb, ib, mb):
            teacher, ivan, maria = await new_page(tb), await new_page(ib), await new_page(mb)
            await asyncio.gather(join_call(teacher, teacher_url), join_call(ivan, ivan_url))
            await asyncio.gather(wait_for_media(teacher), wait_for_media(ivan))

            # Only hosts have the control; nobody sees the indicator yet.
            record = teacher.locator("#toggle-recording")
            await record.wait_for(state="visible")
            assert await record.locator(".ctrl-label").inner_text() == "Записать звонок"
            assert await ivan.locator("#toggle-recording").is_hidden()
            assert await teacher.locator(INDICATOR).is_hidden()

            # The dialog: the title field has focus and the lesson's default title;
            # students and parents may watch unless unticked; guests never.
            await record.click()
            dialog = teacher.locator("[data-testid='recording-dialog']")
            await dialog.wait_for(state="visible")
            title_input = dialog.locator("#recording-title")
            assert await title_input.evaluate("(el) => document.activeElement === el")
            default = await title_input.input_value()
            assert re.fullmatch(r"Математика, 5А, \d\d\.\d\d\.\d{4}", default), default
            assert await dialog.locator("#recording-vis-student").is_checked()
            assert await dialog.locator("#recording-vis-parent").is_checked()
            assert "Гости её не увидят" in await dialog.inner_text()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-rec-dialog.png"))
            # Esc cancels: nothing is recorded.
            await title_input.press("Escape")
            await dialog.wait_for(state="hidden")
            await asyncio.sleep(0.5)
            assert await teacher.evaluate("() => window.urok.recording") is None

            await start_recording(teacher, "Дроби, повторение")

            # Both pages show "Запись" with a running time; only the host can stop it.
            for page in (teacher, ivan):
                indicator = page.locator(INDICATOR)
                await indicator.wait_for(state="visible", timeout=10000)
                assert "Запись" in await indicator.inner_text()
            await until(teacher, ELAPSED_AT_LEAST, 2, timeout=15000)
            await until(ivan, ELAPSED_AT_LEAST, 2, timeout=15000)
            assert await teacher.locator("[data-testid='recording-stop']").is_visible()
            assert await ivan.locator("[data-testid='recording-stop']").is_hidden()
            state = await ivan.evaluate("() => window.urok.recording")
            assert state["title"] == "Дроби, повторение"
            assert state["author"]["name"] == "Анна Петровна Смирнова"
            label = teacher.locator("#toggle-recording .ctrl-label")
            assert await label.inner_text() == "Завершить запись"
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-rec-running.png"))

            # Maria joins late: the indicator is there at once, counting on from the
            # time already recorded, as the server told her page when she joined (not
            # from 0). Bounds from the server's own clock on both sides of the reading.
            recorder = next(iter(server.app[CALLS].calls.values())).recorder
            assert recorder is not None
            while recorder.elapsed_s < 4:
                await asyncio.sleep(0.1)
            before_join = recorder.elapsed_s
            await join_call(maria, maria_url)
            await maria.locator(INDICATOR).wait_for(state="visible", timeout=5000)
            maria_s = await maria.evaluate(ELAPSED_JS)
            after_reading = recorder.elapsed_s
            told = (await maria.evaluate("() => window.urok.recording"))["elapsed_s"]
            assert before_join <= told <= after_reading, (before_join, told, after_reading)
            assert told - 1 <= maria_s <= after_reading + 1, (told, maria_s, after_reading)
            await until(maria, ELAPSED_AT_LEAST, maria_s + 2, timeout=6000)
            await maria.screenshot(path=str(SCREENSHOT_DIR / "urok-rec-late-joiner.png"))

            # "Завершить", then "Отмена": still recording.
            await teacher.locator("[data-testid='recording-stop']").click()
            confirm = teacher.locator("#dialog")
            await confirm.wait_for(state="visible")
            assert "Завершить запись?" in await confirm.inner_text()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-rec-stop-confirm.png"))
            await confirm.locator("[data-value='cancel']").click()
            await confirm.wait_for(state="hidden")
            await asyncio.sleep(1.5)
            for page in (teacher, ivan, maria):
                assert await page.locator(INDICATOR).is_visible()
            assert await teacher.evaluate("() => window.urok.recording") is not None

            # "Завершить" and confirm: the indicator goes everywhere.
            await stop_recording(teacher)
            for page in (teacher, ivan, maria):
                await page.locator(INDICATOR).wait_for(state="hidden", timeout=10000)
                assert await page.evaluate("() => window.urok.recording") is None
            assert await label.inner_text() == "Записать звонок"

            # The recording's card appears in the chat: still, title, author, length, size.
            await open_chat(ivan)
            card = ivan.locator(CARD)
            await card.wait_for(state="visible", timeout=60000)
            assert await card.locator(".rec-title").inner_text() == "Дроби, повторение"
            assert await card.locator(".rec-author").inner_text() == "Анна Петровна Смирнова"
            duration = await card.locator("[data-testid='recording-duration']").inner_text()
            minutes, seconds = (int(x) for x in duration.split(":"))
            assert 5 <= minutes * 60 + seconds <= 120, duration
            size = await card.locator("[data-testid='recording-size']").inner_text()
            assert re.fullmatch(r"\d+(,\d)? (КБ|МБ)", size), size
            await until(
                ivan,
                "(sel) => { const img = document.querySelector(sel + ' img');"
                " return Boolean(img) && img.complete && img.naturalWidth > 0; }",
                CARD,
                timeout=10000,
            )
            link = card.locator("[data-testid='recording-link']")
            assert await link.inner_text() == "Смотреть запись"
            assert await link.get_attribute("target") == "_blank"
            assert "noopener" in (await link.get_attribute("rel") or "")
            href = await link.get_attribute("href")
            assert href and href.startswith("/recordings/rec_") and "/file?token=" in href
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-rec-chat-card.png"))
            # The teacher's page (chat closed) has it too, and Maria's, as the last message.
            await open_chat(maria)
            await maria.locator(CARD).wait_for(state="visible", timeout=10000)
            await open_chat(teacher)
            await teacher.locator(CARD).wait_for(state="visible", timeout=10000)

            # The link plays: the whole file, and a range of it (a player seeking).
            async with server.http.get(server.base_url + href) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("video/mp4")
                body = await response.read()
            assert len(body) > 10000
            headers = {"Range": "bytes=0-99"}
            async with server.http.get(server.base_url + href, headers=headers) as response:
                assert response.status == 206
                part = await response.read()
            assert len(part) == 100 and part == body[:100]
            # Without the token the file is not served.
            async with server.http.get(server.base_url + href.split("?")[0]) as response:
                assert response.status == 401
            with av.open(io.BytesIO(body)) as container:
                video = container.streams.video
                assert len(video) == 1 and video[0].codec_context.name == "h264"
                frame = next(container.decode(video=0))
                assert (frame.width, frame.height) == (640, 360)


async def test_who_may_not_watch_is_told_so() -> None:
    """Parents left out of the recording and guests (never) get no link, just a note."""
    async with running_server(recording=SMALL) as server, playwright() as pw:
        lesson = await server.create_lesson(roster=ROSTER)
        teacher_url = await server.join_url(lesson["id"], *TEACHER)
        parent_url = await server.join_url(lesson["id"], *PARENT)
        guest_url = await server.join_url(lesson["id"], *GUEST)
        async with chromiums(pw, {}, {}) as (tb, pb):
            teacher, parent = await new_page(tb), await new_page(pb)
            await join_call(teacher, teacher_url)
            # Guests may come in.
            await teacher.locator("#toggle-rights").click()
            await teacher.locator("#setting-guests_allowed").click()
            await until(teacher, "() => window.urok.settings.guests_allowed === true")
            await join_call(parent, parent_url, video=False)
            guest = await pb.new_page()
            await join_call(guest, guest_url, video=False)

            await start_recording(teacher, "Только для учеников", parents=False)
            for page in (teacher, parent, guest):
                await until(page, ELAPSED_AT_LEAST, 2, timeout=15000)
            assert await guest.locator("#toggle-recording").is_hidden()
            await stop_recording(teacher)

            await open_chat(teacher)
            await teacher.locator(f"{CARD} [data-testid='recording-link']").wait_for(timeout=60000)
            for page, note in (
                (parent, "Эта запись не открыта для вашей роли"),
                (guest, "Запись доступна участникам с учебным профилем"),
            ):
                await open_chat(page)
                card = page.locator(CARD)
                await card.wait_for(state="visible", timeout=10000)
                await card.locator("[data-testid='recording-note']").wait_for(timeout=10000)
                assert note in await card.inner_text()
                assert await card.locator("[data-testid='recording-link']").count() == 0
                assert await card.locator("img").count() == 0
            await parent.screenshot(path=str(SCREENSHOT_DIR / "urok-rec-card-parent.png"))

            # And the server agrees: the parent's own token does not open it.
            href = await teacher.locator(f"{CARD} [data-testid='recording-link']").get_attribute(
                "href"
            )
            assert href
            parent_token = parse_qs(urlsplit(parent_url).fragment)["token"][0]
            path = href.split("?")[0]
            async with server.http.get(
                server.base_url + path, params={"token": parent_token}
            ) as response:
                assert response.status == 403


async def test_recording_switched_off_is_explained() -> None:
    off = RecordingSettings(enabled=False)
    async with running_server(recording=off) as server, playwright() as pw:
        lesson = await server.create_lesson(roster=ROSTER)
        teacher_url = await server.join_url(lesson["id"], *TEACHER)
        async with chromium(pw) as tb:
            teacher = await new_page(tb)
            await join_call(teacher, teacher_url, video=False)
            await start_recording(teacher, "Не получится")
            toast = teacher.locator(".toast", has_text="Запись звонков на этом сервере")
            await toast.wait_for(state="visible", timeout=10000)
            record = teacher.locator("#toggle-recording")
            await until(teacher, "() => !document.getElementById('toggle-recording').disabled")
            assert await record.locator(".ctrl-label").inner_text() == "Записать звонок"
            assert await teacher.locator(INDICATOR).is_hidden()


async def test_a_recording_stopped_for_lack_of_disk_space_says_so() -> None:
    from signalling.keys import RECORDINGS

    async with running_server(recording=SMALL) as server, playwright() as pw:
        service = server.app[RECORDINGS]
        service.disk_check_seconds = 0.2
        lesson = await server.create_lesson(roster=ROSTER)
        teacher_url = await server.join_url(lesson["id"], *TEACHER)
        async with chromium(pw) as tb:
            teacher = await new_page(tb)
            await join_call(teacher, teacher_url, video=False)
            await start_recording(teacher, "Пока есть место")
            await until(teacher, ELAPSED_AT_LEAST, 1)
            # The disk is "nearly full" from now on: the server stops the recording itself.
            service.stop_free_bytes = 2**62
            toast = teacher.locator(".toast", has_text="на сервере заканчивается место")
            await toast.wait_for(state="visible", timeout=10000)
            await teacher.locator(INDICATOR).wait_for(state="hidden", timeout=5000)
            # What was recorded is kept: its card comes as usual.
            await open_chat(teacher)
            card = teacher.locator(CARD)
            await card.wait_for(state="visible", timeout=30000)
            assert await card.locator(".rec-title").inner_text() == "Пока есть место"
