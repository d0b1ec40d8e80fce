"""Breakout rooms ("сессионные залы") in real browsers.

The teacher drives everything through the call page's own panel (never by
sending protocol messages from the test); what each person gets is checked on
their page and, for media, in WebRTC getStats: a person in a room must not
receive a single packet from anyone outside it, and once the rooms close
everybody decodes everybody again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromiums,
    inbound_by_mid,
    inbound_by_source,
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


async def until(page: Page, js: str, arg: Any = None, timeout: float = 15000) -> None:
    await page.wait_for_function(js, arg=arg, timeout=timeout)


async def self_id(page: Page) -> str:
    return str(await page.evaluate("() => window.urok.self.id"))


async def open_panel(page: Page, name: str) -> None:
    if await page.locator(f"#panel-{name}").is_hidden():
        await page.locator(f"#toggle-{name}").click()
    await page.locator(f"#panel-{name}").wait_for(state="visible")


async def visible_tiles(page: Page) -> list[str]:
    return list(
        await page.evaluate(
            "() => [...document.querySelectorAll('#grid .tile:not(.tile-screen-share)')]"
            ".filter((t) => !t.hidden && t.offsetParent !== null)"
            ".map((t) => t.dataset.participantId)"
        )
    )


async def wait_tiles(page: Page, expected: set[str]) -> None:
    deadline = time.monotonic() + 15
    shown: list[str] = []
    while time.monotonic() < deadline:
        shown = await visible_tiles(page)
        if set(shown) == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"tiles shown: {shown}, expected {sorted(expected)}")


async def only_media_from(page: Page, allowed: set[str], label: str) -> None:
    """Nobody outside `allowed` is in the page's track map, and over 2 s no
    inbound stream but theirs (mapped or idle) gets more than a stray packet."""
    deadline = time.monotonic() + 15
    owners: set[str] = set()
    while time.monotonic() < deadline:
        tracks = await page.evaluate("() => window.urok.tracks")
        owners = {info["participant_id"] for info in tracks.values()}
        if owners <= allowed:
            break
        await asyncio.sleep(0.3)
    else:
        raise AssertionError(f"{label}: still subscribed to {owners - allowed}")
    # The renegotiation has been applied (or nothing was ever sent to this page):
    # let streams that stopped settle, then measure.
    await until(
        page,
        "() => { const pc = window.urok.pcs.subscriber;"
        " return !pc || pc.signalingState === 'stable'; }",
    )
    await asyncio.sleep(1.0)
    before = await inbound_by_mid(page)
    await asyncio.sleep(2.0)
    after = await inbound_by_mid(page)
    leaks = {}
    for mid, stats in after.items():
        if stats["participant_id"] in allowed:
            continue
        grown = stats["packetsReceived"] - before.get(mid, {}).get("packetsReceived", 0)
        if grown > 3:
            leaks[mid] = {**stats, "grown": grown}
    assert not leaks, f"{label}: media from outside the room arrives: {leaks}"


async def wait_decoding(page: Page, participant_id: str, label: str, timeout: float = 30) -> int:
    """`participant_id`'s camera decodes on `page`, and keeps decoding."""
    deadline = time.monotonic() + timeout
    first: int | None = None
    frames = 0
    while time.monotonic() < deadline:
        stats = await inbound_by_source(page)
        frames = int(stats.get(participant_id, {}).get("camera", {}).get("framesDecoded", 0))
        if frames > 0 and first is None:
            first = frames
        elif first is not None and frames >= first + 10:
            return frames
        await asyncio.sleep(0.3)
    tracks = await page.evaluate("() => window.urok.tracks")
    raise AssertionError(f"{label}: no video decoded from {participant_id} ({frames}); {tracks}")


async def rejoin(page: Page) -> None:
    """Reload the call page (the token stays in the tab) and join again."""
    await page.reload()
    await page.wait_for_function(
        "() => !document.getElementById('join-video').disabled", timeout=15000
    )
    await page.locator("#join-video").click()
    await until(page, "() => window.urok.state === 'in-call'")


async def assign(teacher: Page, participant_id: str, room_id: str) -> None:
    select = teacher.locator(
        f"#bo-setup-map select.bo-select[data-participant-id='{participant_id}']"
    )
    await select.select_option(room_id)


async def chat_texts(page: Page) -> list[str]:
    return list(await page.evaluate("() => window.urok.chat.map((m) => m.text || '')"))


async def test_rooms_split_media_and_chat_then_everyone_comes_back() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        urls = [await server.join_url(lesson["id"], *p) for p in (TEACHER, IVAN, MARIA)]
        async with chromiums(pw, {}, {}, {}) as (tb, ib, mb):
            teacher, ivan, maria = await new_page(tb), await new_page(ib), await new_page(mb)
            await asyncio.gather(
                *(
                    join_call(page, url)
                    for page, url in zip((teacher, ivan, maria), urls, strict=True)
                )
            )
            teacher_id, ivan_id, maria_id = [await self_id(p) for p in (teacher, ivan, maria)]
            everyone = {teacher_id, ivan_id, maria_id}
            await asyncio.gather(*(wait_for_media(p) for p in (teacher, ivan, maria)))
            await wait_tiles(ivan, everyone)

            # Only hosts have the button; it sits between "Чат" and "Участники".
            assert await ivan.locator("#toggle-breakout").is_hidden()
            order = await teacher.evaluate(
                "() => [...document.querySelectorAll('.controls .ctrl')].map((b) => b.id)"
            )
            assert order.index("toggle-chat") + 1 == order.index("toggle-breakout")
            assert order.index("toggle-breakout") + 1 == order.index("toggle-people")
            button = teacher.locator("#toggle-breakout")
            assert await button.locator(".ctrl-label").inner_text() == "Сессионные залы"

            # Two rooms; the first gets a name of its own.
            await open_panel(teacher, "breakout")
            await teacher.locator("#bo-count").fill("2")
            await teacher.locator("#bo-create").click()
            await until(
                teacher, "() => window.urok.breakout && window.urok.breakout.rooms.length === 2"
            )
            rooms = await teacher.evaluate("() => window.urok.breakout.rooms")
            assert [r["name"] for r in rooms] == ["Комната 1", "Комната 2"], rooms
            r1, r2 = rooms[0]["id"], rooms[1]["id"]
            name = teacher.locator(f".bo-room-name[data-room-id='{r1}']")
            await name.fill("Группа А")
            await name.press("Enter")
            await until(teacher, "() => window.urok.breakout.rooms[0].name === 'Группа А'")

            # Ivan to "Группа А", Maria to "Комната 2", by hand.
            await assign(teacher, ivan_id, r1)
            await assign(teacher, maria_id, r2)
            await until(
                teacher,
                "([a, b]) => window.urok.breakout.assignments['s-1'] === a"
                " && window.urok.breakout.assignments['s-2'] === b",
                [r1, r2],
            )
            card = teacher.locator(f"#bo-setup-map .bo-room[data-room-id='{r1}']")
            assert "Иван Иванов" in await card.inner_text()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-setup.png"))

            # Open them with a 10-minute timer.
            await teacher.locator("#bo-minutes").fill("10")
            await teacher.locator("#bo-open").click()
            await until(ivan, "(r) => window.urok.room === r", r1)
            await until(maria, "(r) => window.urok.room === r", r2)
            await until(teacher, "() => window.urok.breakout.opened && window.urok.room === null")

            # Each student's page names the room, with the timer.
            for page, room_name in ((ivan, "Группа А"), (maria, "Комната 2")):
                bar = page.locator("#breakout-bar")
                await bar.wait_for(state="visible")
                assert (
                    f"Вы в зале «{room_name}»" in await page.locator("#breakout-where").inner_text()
                )
                timer = await page.locator("#breakout-timer").inner_text()
                assert timer.startswith("Осталось 9:") or timer == "Осталось 10:00", timer
                assert await page.locator("#breakout-help").is_visible()
                # Returning was not allowed.
                assert await page.locator("#breakout-return").is_hidden()
                assert await page.evaluate("() => window.urok.roomName") == room_name
            assert await teacher.locator("#breakout-help").is_hidden()

            # Nobody receives anyone from another room; each grid shows only that room.
            await asyncio.gather(
                only_media_from(ivan, {ivan_id}, "Ivan in room 1"),
                only_media_from(maria, {maria_id}, "Maria in room 2"),
                only_media_from(teacher, {teacher_id}, "the teacher in the main room"),
            )
            await wait_tiles(ivan, {ivan_id})
            await wait_tiles(maria, {maria_id})
            await wait_tiles(teacher, {teacher_id})
            # The participant list stays call-wide for the host, with where everyone is.
            live = teacher.locator(f"#bo-live-map .bo-room[data-room-id='{r2}']")
            assert "Мария Кузнецова" in await live.inner_text()
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-student.png"))

            # A broadcast reaches both rooms' chats, marked as one.
            await teacher.locator("#bo-broadcast-text").fill("Осталось пять минут!")
            await teacher.locator("#bo-broadcast").click()
            for page in (ivan, maria, teacher):
                await until(
                    page, "() => window.urok.chat.some((m) => m.text === 'Осталось пять минут!')"
                )
            await open_panel(maria, "chat")
            cast = maria.locator(".chat-broadcast", has_text="Осталось пять минут!")
            await cast.wait_for()
            assert await cast.locator(".chat-room-label").inner_text() == "Всем залам"
            assert "Комната 2" in await maria.locator("#chat-title").inner_text()

            # Ivan calls the teacher: his room lights up on her page.
            await ivan.locator("#breakout-help").click()
            await until(ivan, "() => document.getElementById('breakout-help').disabled")
            help_card = teacher.locator(f"#bo-live-map .bo-room-help[data-room-id='{r1}']")
            await help_card.wait_for(timeout=10000)
            assert "Зовут организатора" in await help_card.inner_text()
            assert await teacher.locator("#breakout-badge").inner_text() == "1"
            await teacher.locator(".toast", has_text="«Группа А» зовёт организатора").wait_for()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-help.png"))

            # "Перейти": the teacher is in Ivan's room; they see each other, Maria sees neither.
            await help_card.locator("[data-action='visit']").click()
            await until(teacher, "(r) => window.urok.room === r", r1)
            await until(teacher, "() => window.urok.breakout.help_requests.length === 0")
            await until(ivan, "() => !document.getElementById('breakout-help').disabled")
            await wait_decoding(ivan, teacher_id, "Ivan, the teacher visiting")
            await wait_decoding(teacher, ivan_id, "the teacher visiting Ivan")
            await wait_tiles(ivan, {ivan_id, teacher_id})
            await wait_tiles(teacher, {teacher_id, ivan_id})
            await only_media_from(maria, {maria_id}, "Maria while the teacher visits room 1")
            assert await teacher.locator("#breakout-return").is_visible()

            # The room's chat stays in the room.
            await open_panel(ivan, "chat")
            await ivan.locator("#chat-input").fill("Мы решили первую задачу")
            await ivan.locator("#chat-input").press("Enter")
            await until(
                teacher, "() => window.urok.chat.some((m) => m.text === 'Мы решили первую задачу')"
            )
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-visit.png"))

            await teacher.locator("#breakout-return").click()
            await until(teacher, "() => window.urok.room === null")
            await only_media_from(teacher, {teacher_id}, "the teacher back in the main room")
            assert "Мы решили первую задачу" not in await chat_texts(teacher)

            # Close with a 3 s countdown: everyone sees it, then all are back.
            await open_panel(teacher, "breakout")
            await teacher.locator("#bo-countdown").fill("3")
            await teacher.locator("#bo-close").click()
            closing = ivan.locator("#breakout-closing")
            await closing.wait_for(state="visible", timeout=5000)
            assert "Залы закроются через" in await closing.inner_text()
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-closing.png"))
            for page in (teacher, ivan, maria):
                await until(page, "() => window.urok.breakout && !window.urok.breakout.opened")
                assert await page.evaluate("() => window.urok.room") is None
                await page.locator("#breakout-bar").wait_for(state="hidden")

            await asyncio.gather(
                wait_decoding(ivan, teacher_id, "Ivan after the rooms closed"),
                wait_decoding(maria, teacher_id, "Maria after the rooms closed"),
                wait_decoding(teacher, ivan_id, "the teacher, Ivan after closing"),
                wait_decoding(teacher, maria_id, "the teacher, Maria after closing"),
                wait_decoding(ivan, maria_id, "Ivan, Maria after closing"),
            )
            for page in (teacher, ivan, maria):
                await wait_tiles(page, everyone)
            # Back in the main room's chat: the broadcast is there, room 1's message is not.
            texts = await chat_texts(ivan)
            assert "Осталось пять минут!" in texts
            assert "Мы решили первую задачу" not in texts
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-closed.png"))


async def test_random_split_drag_move_return_and_reconnect() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        urls = [await server.join_url(lesson["id"], *p) for p in (TEACHER, IVAN, MARIA)]
        async with chromiums(pw, {}, {}, {}) as (tb, ib, mb):
            teacher, ivan, maria = await new_page(tb), await new_page(ib), await new_page(mb)
            await asyncio.gather(
                *(
                    join_call(page, url)
                    for page, url in zip((teacher, ivan, maria), urls, strict=True)
                )
            )
            teacher_id, ivan_id, maria_id = [await self_id(p) for p in (teacher, ivan, maria)]

            await open_panel(teacher, "breakout")
            await teacher.locator("#bo-count").fill("2")
            await teacher.locator("#bo-create").click()
            await until(
                teacher, "() => window.urok.breakout && window.urok.breakout.rooms.length === 2"
            )
            await teacher.locator("#bo-random").click()
            # One student per room (sizes differ by at most one); the teacher stays out.
            await until(
                teacher,
                "() => { const a = window.urok.breakout.assignments;"
                " return a['s-1'] && a['s-2'] && a['s-1'] !== a['s-2'] && !a['t-1']; }",
            )
            assigned = await teacher.evaluate("() => window.urok.breakout.assignments")
            ivan_room, maria_room = assigned["s-1"], assigned["s-2"]

            # Drag Maria onto Ivan's room.
            row = teacher.locator(f"#bo-setup-map .bo-person[data-participant-id='{maria_id}']")
            await row.drag_to(
                teacher.locator(f"#bo-setup-map .bo-room[data-room-id='{ivan_room}']")
            )
            await until(teacher, "(r) => window.urok.breakout.assignments['s-2'] === r", ivan_room)

            await teacher.locator("#bo-allow-return").check()
            await teacher.locator("#bo-open").click()
            await until(ivan, "(r) => window.urok.room === r", ivan_room)
            await until(maria, "(r) => window.urok.room === r", ivan_room)
            # No timer was set; returning is allowed.
            assert await ivan.locator("#breakout-timer").is_hidden()
            await ivan.locator("#breakout-return").wait_for(state="visible")
            await asyncio.gather(
                wait_decoding(ivan, maria_id, "Ivan, with Maria in his room"),
                wait_decoding(maria, ivan_id, "Maria, in Ivan's room"),
            )
            await wait_tiles(maria, {maria_id, ivan_id})
            await only_media_from(teacher, {teacher_id}, "the teacher in the main room")
            # Students see the people of their room; the host sees where everyone is.
            await open_panel(maria, "people")
            people = await maria.locator(".people-in-call").inner_text()
            assert "Иван Иванов" in people and "Анна Петровна" not in people, people
            assert "В других залах: 1" in people, people
            await open_panel(teacher, "people")
            row = teacher.locator(f".people-in-call .person[data-participant-id='{ivan_id}']")
            assert await row.locator(".person-room").inner_text() == await teacher.evaluate(
                "(r) => window.urok.breakout.rooms.find((x) => x.id === r).name", ivan_room
            )
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-people.png"))

            # The teacher moves Maria to the other room: they lose each other at once.
            await open_panel(teacher, "breakout")
            move = teacher.locator(
                f"#bo-live-map select.bo-select[data-participant-id='{maria_id}']"
            )
            await move.select_option(maria_room)
            await until(maria, "(r) => window.urok.room === r", maria_room)
            await asyncio.gather(
                only_media_from(ivan, {ivan_id}, "Ivan after Maria moved out"),
                only_media_from(maria, {maria_id}, "Maria in her own room"),
            )
            await wait_tiles(ivan, {ivan_id})

            # Ivan goes back to the main room by himself.
            await ivan.locator("#breakout-return").click()
            await until(ivan, "() => window.urok.room === null")
            await wait_decoding(ivan, teacher_id, "Ivan back in the main room")
            await wait_decoding(teacher, ivan_id, "the teacher, Ivan back")
            assert "общем зале" in await ivan.locator("#breakout-where").inner_text()
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-breakout-returned.png"))

            # Maria reloads the page: she is put back in her room.
            await rejoin(maria)
            maria_id = await self_id(maria)
            await until(maria, "(r) => window.urok.room === r", maria_room)
            await maria.locator("#breakout-bar").wait_for(state="visible")
            await only_media_from(maria, {maria_id}, "Maria after reconnecting")
            await wait_tiles(maria, {maria_id})

            # Closing at once (countdown 0) brings Maria back too.
            await teacher.locator("#bo-countdown").fill("0")
            await teacher.locator("#bo-close").click()
            await until(maria, "() => window.urok.breakout && !window.urok.breakout.opened")
            await wait_decoding(maria, teacher_id, "Maria after closing")
            await wait_decoding(teacher, maria_id, "the teacher, Maria after closing")
            await wait_tiles(maria, {maria_id, ivan_id, teacher_id})
