"""A teacher and a student in two separate Chromium instances see and hear each other.

Everything goes through the real interfaces: the lesson is created, opened and
the join URLs minted over the journal HTTP API; the browsers load the call page,
press "join with video" and talk to the server over /ws and WebRTC.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)

pytestmark = pytest.mark.browser


async def test_teacher_and_student_decode_each_others_video_and_audio() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(
            lesson["id"], "t-1", "Анна Петровна Смирнова", "teacher"
        )
        student_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        assert "#token=" in teacher_url

        async with chromiums(pw, {}, {}) as (teacher_browser, student_browser):
            teacher = await new_page(teacher_browser)
            student = await new_page(student_browser)

            await join_call(teacher, teacher_url)
            await join_call(student, student_url)

            teacher_stats, student_stats = await asyncio.gather(
                wait_for_media(teacher), wait_for_media(student)
            )
            assert teacher_stats["video"]["framesDecoded"] > 10
            assert student_stats["audio"]["packetsReceived"] > 50

            # Each side shows the other as a tile with live video and the right name.
            teacher_self = await teacher.evaluate("window.urok.self")
            student_self = await student.evaluate("window.urok.self")
            assert teacher_self["host"] is True
            assert student_self["host"] is False
            for page, other, name in (
                (teacher, student_self["id"], "Иван Иванов"),
                (student, teacher_self["id"], "Анна Петровна Смирнова"),
            ):
                tile = page.locator(f".tile[data-participant-id='{other}']")
                await tile.wait_for(state="visible")
                assert name in await tile.locator(".tile-name").inner_text()
                await page.wait_for_function(
                    f"() => document.querySelector(\".tile[data-participant-id='{other}']\")"
                    ".classList.contains('has-video')",
                    timeout=10000,
                )
                assert await page.locator(".tile").count() == 2
                assert await page.locator(".tile-self").count() == 1

            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-call-teacher.png"))
            await student.screenshot(path=str(SCREENSHOT_DIR / "urok-call-student.png"))

            # The student mutes: the teacher's tile for them shows the muted icon.
            await student.locator("#toggle-mic").click()
            await teacher.wait_for_function(
                f"() => document.querySelector(\".tile[data-participant-id='{student_self['id']}']"
                ' .tile-muted").hidden === false',
                timeout=10000,
            )

            # The student leaves: the page says so and the teacher's tile goes away.
            await student.locator("#leave").click()
            await student.locator("#screen-message").wait_for(state="visible")
            assert "Вы вышли из урока" in await student.locator("#message-title").inner_text()
            await teacher.locator(f".tile[data-participant-id='{student_self['id']}']").wait_for(
                state="detached", timeout=10000
            )
