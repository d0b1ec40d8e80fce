"""Classroom control in real browsers: waiting room, hands, moderation, rights,
screen sharing, chat and "End for everyone".

Lessons and join URLs come from the journal HTTP API; the teacher drives
everything through the call page's own buttons (never by sending protocol
messages from the test), and the results are checked on the other person's
page and, for media, in WebRTC getStats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page

from tests.browser.harness import (
    SCREENSHOT_DIR,
    chromiums,
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
# Headless Chromium with fake devices: getDisplayMedia picks the (fake) screen by itself.
SCREEN_ARGS = ("--auto-select-desktop-capture-source=Entire screen",)
# The muted-microphone icon on someone's tile is showing.
MUTED_ICON_SHOWN = """(id) => {
  const icon = document.querySelector(`.tile[data-participant-id='${id}'] .tile-muted`);
  return Boolean(icon) && !icon.hidden;
}"""


async def urls(server: Any, lesson_id: str, *people: tuple[str, str, str]) -> list[str]:
    return [await server.join_url(lesson_id, *person) for person in people]


async def self_id(page: Page) -> str:
    return str(await page.evaluate("() => window.urok.self.id"))


async def until(page: Page, js: str, arg: Any = None, timeout: float = 10000) -> None:
    await page.wait_for_function(js, arg=arg, timeout=timeout)


async def open_panel(page: Page, name: str) -> None:
    """Open a side panel (chat | people | rights) with its control-bar button."""
    if await page.locator(f"#panel-{name}").is_hidden():
        await page.locator(f"#toggle-{name}").click()
    await page.locator(f"#panel-{name}").wait_for(state="visible")


async def person_action(page: Page, participant_id: str, action: str) -> None:
    """Host: open the person's menu in the participants panel and pick `action`."""
    await open_panel(page, "people")
    item = page.locator(f".menu [data-action='{action}'][data-participant-id='{participant_id}']")
    if not await item.is_visible():
        await page.locator(f".person-more[data-participant-id='{participant_id}']").click()
    await item.click()


async def packets_from(page: Page, participant_id: str, source: str) -> int:
    stats = await inbound_by_source(page)
    return int(stats.get(participant_id, {}).get(source, {}).get("packetsReceived", 0))


async def sliding_count(
    page: Page,
    participant_id: str,
    source: str,
    seconds: float,
    done: Callable[[int], bool],
    *,
    at_least: bool,
) -> int | None:
    """Count that person's `source` packets over a window of `seconds` that slides on
    every 0.2 s poll, until `done(count)` (return the count) or about 10 s have gone
    (None). at_least: the window lasts at least `seconds` (a stall), else at most (a
    flow): as strict as back-to-back windows, without waiting for the next to begin."""
    samples: list[tuple[float, float, int]] = []  # (before reading, after reading, count)
    deadline = time.monotonic() + 10 + seconds
    while time.monotonic() < deadline:
        before = time.monotonic()
        count = await packets_from(page, participant_id, source)
        after = time.monotonic()
        if at_least:  # the newest earlier reading at least `seconds` back
            starts = [c for _, read, c in samples if before - read >= seconds][-1:]
        else:  # the oldest earlier reading at most `seconds` back
            starts = [c for began, _, c in samples if after - began <= seconds][:1]
        samples.append((before, after, count))
        if starts and done(count - starts[0]):
            return count - starts[0]
        await asyncio.sleep(0.2)
    return None


async def packet_rate(page: Page, participant_id: str, source: str, seconds: float = 2.0) -> int:
    """How many packets of that person's `source` arrived during `seconds`."""
    before = await packets_from(page, participant_id, source)
    await asyncio.sleep(seconds)
    return await packets_from(page, participant_id, source) - before


async def wait_packets_stall(page: Page, participant_id: str, source: str) -> int:
    """Wait until (almost) nothing of `source` arrives any more: at most 3 packets in
    2 s; return that count."""
    rate = await sliding_count(
        page, participant_id, source, 2.0, lambda count: count <= 3, at_least=True
    )
    if rate is None:
        last = await packet_rate(page, participant_id, source)
        raise AssertionError(f"{source} of {participant_id} still flows: {last} packets in 2 s")
    return rate


async def wait_packets_flow(page: Page, participant_id: str, source: str) -> int:
    """Wait until `source` flows: at least 20 packets in 1 s; return that count."""
    rate = await sliding_count(
        page, participant_id, source, 1.0, lambda count: count >= 20, at_least=False
    )
    if rate is None:
        last = await packet_rate(page, participant_id, source, 1.0)
        raise AssertionError(f"{source} of {participant_id} does not flow: {last} packets in 1 s")
    return rate


# ---------------------------------------------------------------- waiting room


async def test_waiting_room_host_admits_one_and_denies_another() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url, ivan_url, maria_url = await urls(server, lesson["id"], TEACHER, IVAN, MARIA)
        async with chromiums(pw, {}, {}, {}) as (tb, ib, mb):
            teacher, ivan, maria = await new_page(tb), await new_page(ib), await new_page(mb)
            await join_call(teacher, teacher_url)

            # The teacher turns the waiting room on in "Права доступа".
            await open_panel(teacher, "rights")
            toggle = teacher.locator("#setting-waiting_room")
            assert not await toggle.is_checked()
            await toggle.click()
            await until(teacher, "() => window.urok.settings && window.urok.settings.waiting_room")
            assert await toggle.is_checked()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-rights.png"))

            # Ivan waits: no call screen, no media, no chat.
            await join_call(ivan, ivan_url, expect_state="waiting")
            waiting_screen = ivan.locator("#screen-waiting")
            await waiting_screen.wait_for(state="visible")
            assert "Ожидайте, организатор скоро впустит вас" in await waiting_screen.inner_text()
            assert await ivan.locator("#screen-call").is_hidden()
            assert await ivan.evaluate("() => window.urok.pcs.publisher") is None
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-waiting.png"))
            ivan_id = await self_id(ivan)

            # The teacher sees him waiting: a badge, a header pill, a row in the panel.
            await teacher.locator("#people-badge").wait_for(state="visible", timeout=10000)
            assert await teacher.locator("#people-badge").inner_text() == "1"
            assert "Ожидают входа: 1" in await teacher.locator("#waiting-pill").inner_text()
            await open_panel(teacher, "people")
            row = teacher.locator(f".person-waiting[data-participant-id='{ivan_id}']")
            await row.wait_for()
            assert "Иван Иванов" in await row.inner_text()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-waiting-host.png"))
            # Nobody is in the call with the teacher yet.
            assert await teacher.locator(".tile").count() == 1

            await row.locator("[data-action='admit']").click()

            # Ivan is in the call on the same page, without a reload, with media both ways.
            await until(ivan, "() => window.urok.state === 'in-call'")
            await ivan.locator("#screen-call").wait_for(state="visible")
            teacher_stats, ivan_stats = await asyncio.gather(
                wait_for_media(teacher), wait_for_media(ivan)
            )
            assert teacher_stats["video"]["framesDecoded"] > 10
            assert ivan_stats["video"]["framesDecoded"] > 10
            await teacher.locator(f".tile[data-participant-id='{ivan_id}']").wait_for()
            await teacher.locator("#people-badge").wait_for(state="hidden")
            assert await teacher.locator(".person-waiting").count() == 0

            # Maria waits too and is turned away: she gets a clear screen.
            await join_call(maria, maria_url, expect_state="waiting")
            maria_id = await self_id(maria)
            deny = teacher.locator(f"[data-action='deny'][data-participant-id='{maria_id}']")
            await deny.click(timeout=10000)
            await maria.locator("#screen-message").wait_for(state="visible", timeout=10000)
            assert "не впустил" in await maria.locator("#message-title").inner_text()
            assert await maria.evaluate("() => window.urok.state") == "denied"
            await maria.screenshot(path=str(SCREENSHOT_DIR / "urok-class-denied.png"))
            await teacher.locator("#people-badge").wait_for(state="hidden")
            assert await teacher.locator(f".tile[data-participant-id='{maria_id}']").count() == 0


# ---------------------------------------------------------------- hands, nudge, co-host, remove


async def test_hands_nudge_cohost_and_remove() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url, ivan_url = await urls(server, lesson["id"], TEACHER, IVAN)
        async with chromiums(pw, {}, {}) as (tb, ib):
            teacher, ivan = await new_page(tb), await new_page(ib)
            await asyncio.gather(join_call(teacher, teacher_url), join_call(ivan, ivan_url))
            ivan_id, teacher_id = await self_id(ivan), await self_id(teacher)
            ivan_tile = f".tile[data-participant-id='{ivan_id}']"
            await teacher.locator(ivan_tile).wait_for()

            # Ivan raises his hand: the teacher sees it on his tile (1st) and in the panel.
            await ivan.locator("#toggle-hand").click()
            await until(
                ivan,
                "() => document.getElementById('toggle-hand')"
                ".getAttribute('aria-pressed') === 'true'",
            )
            assert await ivan.locator("#toggle-hand .ctrl-label").inner_text() == "Опустить руку"
            hand = teacher.locator(f"{ivan_tile} .tile-hand")
            await hand.wait_for(state="visible", timeout=10000)
            assert await hand.inner_text() == "1"
            await open_panel(teacher, "people")
            hands = teacher.locator(".people-hands")
            await hands.wait_for()
            assert "Иван Иванов" in await hands.inner_text()
            # The teacher raises hers too: second in the queue, everywhere.
            await teacher.locator("#toggle-hand").click()
            await until(ivan, "(id) => window.urok.hands.join() === id", f"{ivan_id},{teacher_id}")
            teacher_hand = ivan.locator(f".tile[data-participant-id='{teacher_id}'] .tile-hand")
            await teacher_hand.wait_for(state="visible")
            assert await teacher_hand.inner_text() == "2"
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-hands.png"))

            # The teacher lowers Ivan's hand, then all hands.
            await teacher.locator(
                f".people-hands [data-action='lower-hand'][data-participant-id='{ivan_id}']"
            ).click()
            await hand.wait_for(state="hidden", timeout=10000)
            await until(
                ivan,
                "() => document.getElementById('toggle-hand')"
                ".getAttribute('aria-pressed') === 'false'",
            )
            await ivan.locator("#toggle-hand").click()
            await until(teacher, "() => window.urok.hands.length === 2")
            await teacher.locator("[data-action='lower-all-hands']").click()
            await until(teacher, "() => window.urok.hands.length === 0")
            await until(ivan, "() => window.urok.hands.length === 0")
            assert await teacher.locator(".people-hands").count() == 0
            assert await teacher.locator(".tile-hand:visible").count() == 0

            # Nudge: Ivan gets a banner, a beep and his tile flashes.
            await person_action(teacher, ivan_id, "nudge")
            nudge = ivan.locator(".banner-nudge")
            await nudge.wait_for(state="visible", timeout=10000)
            assert "Анна Петровна Смирнова просит вашего внимания" in await nudge.inner_text()
            assert await ivan.evaluate("() => window.urok.nudges.length") == 1
            assert await ivan.evaluate("() => window.urok.beeped") is True
            assert "tile-flash" in (await ivan.locator(".tile-self").get_attribute("class") or "")
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-nudged.png"))

            # Co-host: Ivan gets the host controls; the teacher sees the badge.
            await person_action(teacher, ivan_id, "make-cohost")
            await until(ivan, "() => window.urok.isHost === true")
            await ivan.locator("#toggle-rights").wait_for(state="visible")
            row = teacher.locator(f".people-in-call .person[data-participant-id='{ivan_id}']")
            await until(
                teacher,
                "(id) => { const r = document.querySelector("
                "`.people-in-call .person[data-participant-id='${id}']`);"
                " return r && r.textContent.includes('Соорганизатор'); }",
                ivan_id,
            )
            await person_action(teacher, ivan_id, "unmake-cohost")
            await until(ivan, "() => window.urok.isHost === false")
            await ivan.locator("#toggle-rights").wait_for(state="hidden")
            assert "Соорганизатор" not in await row.inner_text()

            # Remove, after a confirmation: Ivan is out and his link no longer works.
            await person_action(teacher, ivan_id, "remove")
            dialog = teacher.locator("#dialog")
            await dialog.wait_for(state="visible")
            assert "Иван Иванов" in await dialog.inner_text()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-remove-confirm.png"))
            await dialog.locator("[data-value='ok']").click()
            await ivan.locator("#screen-message").wait_for(state="visible", timeout=10000)
            assert "удалил вас" in await ivan.locator("#message-title").inner_text()
            await teacher.locator(ivan_tile).wait_for(state="detached", timeout=10000)

            # The pre-join screen already refuses the link (GET /call/{id}/info says
            # token_revoked, as the join would): no join button to press.
            again = await ib.new_page()
            await again.goto(ivan_url)
            await again.locator("#screen-message").wait_for(state="visible", timeout=15000)
            assert await again.locator("#join-audio").is_visible() is False
            assert await again.evaluate("() => window.urok.state") == "error"
            assert "token_revoked" in await again.locator("#message-details").inner_text()


# ---------------------------------------------------------------- mute and rights


async def test_host_mutes_a_student_and_takes_the_right_away() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url, ivan_url, maria_url = await urls(server, lesson["id"], TEACHER, IVAN, MARIA)
        async with chromiums(pw, {}, {}, {}) as (tb, ib, mb):
            teacher, ivan, maria = await new_page(tb), await new_page(ib), await new_page(mb)
            await asyncio.gather(join_call(teacher, teacher_url), join_call(ivan, ivan_url))
            await asyncio.gather(wait_for_media(teacher), wait_for_media(ivan))
            ivan_id = await self_id(ivan)
            assert await packet_rate(teacher, ivan_id, "microphone") > 20

            # The host turns Ivan's microphone off from the participants panel.
            await person_action(teacher, ivan_id, "mute-audio")
            notice = ivan.locator(".banner", has_text="Организатор выключил ваш микрофон")
            await notice.wait_for(state="visible", timeout=10000)
            await until(ivan, "() => !window.urok.local.audio.enabled")
            mic = ivan.locator("#toggle-mic")
            assert await mic.get_attribute("aria-pressed") == "false"
            # Unmuting is still permitted: the button stays usable.
            assert await mic.is_enabled()
            await until(teacher, MUTED_ICON_SHOWN, ivan_id)
            # The SFU stopped forwarding it: the teacher receives no more audio from Ivan.
            await wait_packets_stall(teacher, ivan_id, "microphone")
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-muted.png"))

            # Ivan may switch it back on, and it flows again.
            await mic.click()
            await until(ivan, "() => window.urok.local.audio.enabled")
            await wait_packets_flow(teacher, ivan_id, "microphone")

            # The teacher takes the right away for students: his microphone goes off
            # at once and the button is locked with an explanation.
            await open_panel(teacher, "rights")
            await teacher.locator("#perm-student-unmute").click()
            await until(ivan, "() => window.urok.permissions.unmute === false")
            await until(ivan, "() => document.getElementById('toggle-mic').disabled")
            assert await mic.get_attribute("aria-pressed") == "false"
            assert await mic.get_attribute("title") == "Организатор не разрешил включать микрофон"
            await wait_packets_stall(teacher, ivan_id, "microphone")
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-mic-locked.png"))

            # Maria joins while the right is off: her microphone starts off and locked.
            await join_call(maria, maria_url)
            maria_id = await self_id(maria)
            assert await maria.locator("#toggle-mic").is_disabled()
            assert await maria.evaluate("() => window.urok.local.audio.enabled") is False
            await until(teacher, MUTED_ICON_SHOWN, maria_id)
            await until(
                teacher,
                "(id) => window.urok.tracks && Object.values(window.urok.tracks)"
                ".some((t) => t.participant_id === id && t.source === 'microphone')",
                maria_id,
            )
            await wait_packets_stall(teacher, maria_id, "microphone")

            # "Выключить всем микрофоны" once the right is back.
            await teacher.locator("#perm-student-unmute").click()
            await until(ivan, "() => !document.getElementById('toggle-mic').disabled")
            await mic.click()
            await wait_packets_flow(teacher, ivan_id, "microphone")
            await open_panel(teacher, "people")
            await teacher.locator("[data-action='mute-all']").click()
            await until(ivan, "() => !window.urok.local.audio.enabled")
            await wait_packets_stall(teacher, ivan_id, "microphone")
            # The teacher's own microphone is not touched.
            assert await teacher.evaluate("() => window.urok.local.audio.enabled") is True


# ---------------------------------------------------------------- screen sharing


async def test_student_shares_the_screen_once_allowed_and_the_host_stops_it() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url, ivan_url = await urls(server, lesson["id"], TEACHER, IVAN)
        screen = {"extra_args": SCREEN_ARGS}
        async with chromiums(pw, screen, screen) as (tb, ib):
            teacher, ivan = await new_page(tb), await new_page(ib)
            await asyncio.gather(join_call(teacher, teacher_url), join_call(ivan, ivan_url))
            await asyncio.gather(wait_for_media(teacher), wait_for_media(ivan))
            ivan_id = await self_id(ivan)

            # Students may not share by default.
            share = ivan.locator("#toggle-screen")
            assert await share.is_disabled()
            title = await share.get_attribute("title")
            assert title == "Организатор не разрешил демонстрацию экрана"

            await open_panel(teacher, "rights")
            await teacher.locator("#perm-student-screen").click()
            await until(ivan, "() => !document.getElementById('toggle-screen').disabled")
            await share.click()
            await until(ivan, "() => window.urok.self.screen === true")
            published = await ivan.evaluate(
                "() => window.urok.published.map((p) => [p.transceiver.mid, p.source])"
            )
            assert [source for _, source in published] == ["microphone", "camera", "screen"]

            # The teacher's page shows the screen large and people in a filmstrip.
            big = teacher.locator(f"#screen-stage .tile-screen-share[data-screen-of='{ivan_id}']")
            await big.wait_for(state="visible", timeout=15000)
            assert "Иван Иванов" in await big.inner_text()
            await wait_screen_frames(teacher)
            assert "presenting" in (await teacher.locator("#stage").get_attribute("class") or "")
            big_box = await big.bounding_box()
            ivan_tile = teacher.locator(f".tile[data-participant-id='{ivan_id}']")
            tile_box = await ivan_tile.bounding_box()
            assert big_box and tile_box and big_box["width"] > 2.5 * tile_box["width"]
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-screen-host.png"))
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-screen-student.png"))

            # The host stops it: Ivan is told, his share ends, the layout goes back to a grid.
            await person_action(teacher, ivan_id, "mute-screen")
            await ivan.locator(".banner", has_text="остановил демонстрацию").wait_for(timeout=10000)
            await until(ivan, "() => window.urok.local.screen === null")
            await big.wait_for(state="detached", timeout=10000)
            assert await teacher.locator("#screen-stage").is_hidden()

            # Sharing again reuses the same m-section (replaceTrack, no new one).
            await share.click()
            await big.wait_for(state="visible", timeout=15000)
            await wait_screen_frames(teacher)
            assert (
                await ivan.evaluate(
                    "() => window.urok.published.map((p) => [p.transceiver.mid, p.source])"
                )
                == published
            )
            # The browser's own "Stop sharing" (the track ends) ends it for the teacher too.
            await ivan.evaluate("() => window.urok.local.screen.dispatchEvent(new Event('ended'))")
            await until(
                ivan, "() => window.urok.local.screen === null && window.urok.self.screen === false"
            )
            assert await share.get_attribute("aria-pressed") == "false"
            await big.wait_for(state="detached", timeout=10000)
            await until(teacher, "(id) => window.urok.participants[id].screen === false", ivan_id)


async def wait_screen_frames(page: Page) -> None:
    """The big screen video on `page` decodes frames, and keeps doing so."""
    js = """() => { const v = document.querySelector('#screen-stage video');
      return v ? v.getVideoPlaybackQuality().totalVideoFrames : -1; }"""
    deadline = time.monotonic() + 15
    first = None
    while time.monotonic() < deadline:
        frames = await page.evaluate(js)
        if frames > 0 and first is None:
            first = frames
        elif first is not None and frames > first + 3:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the shared screen does not play (frames={first})")


# ---------------------------------------------------------------- chat and ending


async def test_chat_reaches_the_host_masked_when_rude_and_the_host_ends_the_lesson() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url, ivan_url = await urls(server, lesson["id"], TEACHER, IVAN)
        async with chromiums(pw, {}, {}) as (tb, ib):
            teacher, ivan = await new_page(tb), await new_page(ib)
            await asyncio.gather(join_call(teacher, teacher_url), join_call(ivan, ivan_url))

            await open_panel(ivan, "chat")
            box = ivan.locator("#chat-input")
            await box.fill("Здравствуйте, Анна Петровна!")
            await box.press("Enter")
            assert await box.input_value() == ""

            # The teacher's chat is closed: an unread badge, then the message with its author.
            badge = teacher.locator("#chat-badge")
            await badge.wait_for(state="visible", timeout=10000)
            assert await badge.inner_text() == "1"
            await open_panel(teacher, "chat")
            await badge.wait_for(state="hidden")
            message = teacher.locator(".chat-msg:not(.chat-system)", has_text="Здравствуйте")
            await message.wait_for()
            assert await message.locator(".chat-author").inner_text() == "Иван Иванов"
            assert await message.locator(".chat-role").inner_text() == "Ученик"
            assert await message.locator(".chat-time").inner_text()

            # A rude word arrives masked; only the author is told his message was changed.
            await box.fill("Это задание просто хуйня")
            await box.press("Enter")
            rude = teacher.locator(".chat-msg", has_text="Это задание")
            await rude.wait_for(timeout=10000)
            text = await rude.locator(".chat-text").inner_text()
            assert "хуйня" not in text and "*" in text
            assert await rude.locator(".chat-filtered").count() == 0
            own = ivan.locator(".chat-own", has_text="Это задание")
            await own.locator(".chat-filtered").wait_for()
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-chat-host.png"))
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-chat-student.png"))

            # The input takes at most the 1000 characters the server accepts.
            await box.fill("а" * 1001)
            assert len(await box.input_value()) == 1000
            await box.fill("")
            error = ivan.locator("#chat-error")

            # Too many too fast: the server's refusal is shown inline and the text kept.
            for n in range(1, 8):
                text = f"Сообщение номер {n}"
                await box.fill(text)
                await box.press("Enter")
                # Either it comes back in the chat or the error shows.
                await until(
                    ivan,
                    "(text) => window.urok.chat.some((m) => m.text === text)"
                    " || !document.getElementById('chat-error').hidden",
                    text,
                )
                if await error.is_visible():
                    break
            await error.wait_for(state="visible", timeout=10000)
            assert "слишком часто" in await error.inner_text()
            assert (await box.input_value()).startswith("Сообщение номер")
            await ivan.screenshot(path=str(SCREENSHOT_DIR / "urok-class-chat-rate.png"))

            # The teacher forbids the chat for students: Ivan's input is disabled.
            await open_panel(teacher, "rights")
            await teacher.locator("#perm-student-chat").click()
            await until(ivan, "() => document.getElementById('chat-input').disabled")
            await ivan.locator("#chat-disabled").wait_for(state="visible")

            # "Завершить для всех" after the dialog: everyone's lesson is over.
            await teacher.locator("#leave").click()
            dialog = teacher.locator("#dialog")
            await dialog.wait_for(state="visible")
            await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-class-end-dialog.png"))
            await dialog.locator("[data-value='end']").click()
            for page in (teacher, ivan):
                await page.locator("#screen-message").wait_for(state="visible", timeout=10000)
                assert await page.locator("#message-title").inner_text() == "Урок завершён"
            assert "Организатор завершил урок" in await ivan.locator("#message-text").inner_text()
            status, body = await server.api("GET", f"/api/v1/lessons/{lesson['id']}")
            assert status == 200 and body["state"] == "ended", body


async def test_after_the_screen_right_is_taken_back_the_camera_can_still_start() -> None:
    """A stopped share leaves an idle screen m-section; once sharing is no longer
    permitted, renegotiating (here: turning the camera on for the first time)
    must still work."""
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url, ivan_url = await urls(server, lesson["id"], TEACHER, IVAN)
        screen = {"extra_args": SCREEN_ARGS}
        async with chromiums(pw, screen, screen) as (tb, ib):
            teacher, ivan = await new_page(tb), await new_page(ib)
            await asyncio.gather(
                join_call(teacher, teacher_url), join_call(ivan, ivan_url, video=False)
            )
            ivan_id = await self_id(ivan)
            await open_panel(teacher, "rights")
            screen_right = teacher.locator("#perm-student-screen")
            await screen_right.click()
            share = ivan.locator("#toggle-screen")
            await until(ivan, "() => !document.getElementById('toggle-screen').disabled")
            await share.click()
            await teacher.locator("#screen-stage .tile-screen-share").wait_for(timeout=15000)
            await share.click()
            await until(ivan, "() => window.urok.local.screen === null")
            await screen_right.click()
            await until(ivan, "() => window.urok.permissions.screen === false")

            await ivan.locator("#toggle-camera").click()
            await until(
                ivan,
                "() => window.urok.published.some((p) => p.source === 'camera')"
                " && window.urok.pcs.publisher.signalingState === 'stable'"
                " && window.urok.pcs.publisher.currentRemoteDescription"
                ".sdp.split('m=video').length === 3",
                timeout=15000,
            )
            errors = await ivan.evaluate("() => window.urok.errors.map((e) => e.code)")
            assert "not_permitted" not in errors, errors
            tile = f".tile[data-participant-id='{ivan_id}']"
            await until(
                teacher,
                "(sel) => document.querySelector(sel)"
                " && document.querySelector(sel).classList.contains('has-video')",
                tile,
                timeout=15000,
            )
