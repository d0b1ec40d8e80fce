"""A pupil's Chromium behind a link that turns bad: the weak sign at the pupil and at the
teacher's, "very poor" when it gets much worse, videos held back and said so, "audio
only", and all of it undone on recovery.

The pupil's browser runs on a test host (bench/links.py: its own network
namespace behind a veth pair; nftables drops 20 % of what the server sends it),
the teacher's on loopback; two pupils publishing are bots (pre-encoded media,
cheap on this machine's two cores).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from playwright.async_api import Page

from bench.bot import Bot
from bench.links import LinkSpec, Testbed
from bench.preencoded import PreEncodedTrack, prepare_media
from tests.browser.harness import (
    CHROMIUM,
    SCREENSHOT_DIR,
    Server,
    chromiums,
    inbound_by_source,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)

pytestmark = pytest.mark.browser

OWN = "() => window.urok.connection"


async def bot(server: Server, lesson_id: str, user_id: str, name: str) -> Bot:
    token = await server.token(lesson_id, user_id, name, "student")
    # A publisher only: receiving would cost this machine's two cores for nothing.
    joined = Bot(server.base_url, token, receive=False)
    await joined.connect()
    return joined


async def video_received(page: Page) -> dict[str, int]:
    """Camera video packets received so far, by sender."""
    by_sender = await inbound_by_source(page)
    return {
        who: sources["camera"]["packetsReceived"]
        for who, sources in by_sender.items()
        if "camera" in sources
    }


async def frames_decoded(page: Page) -> dict[str, int]:
    by_sender = await inbound_by_source(page)
    return {
        who: sources["camera"]["framesDecoded"]
        for who, sources in by_sender.items()
        if "camera" in sources
    }


async def grows(page: Page, probe: Any, seconds: float) -> dict[str, int]:
    before = await probe(page)
    await asyncio.sleep(seconds)
    after = await probe(page)
    return {who: after.get(who, 0) - count for who, count in before.items()}


async def all_decoding(page: Page, senders: set[str], within: float) -> None:
    """Wait until every sender's camera decodes at the page: more than 5 frames each
    within at most 2 s, in a window that slides on every 0.25 s poll."""
    started = time.monotonic()
    samples: list[tuple[float, dict[str, int]]] = []  # (before reading, frames)
    decoding: dict[str, int] = {}
    while True:
        before = time.monotonic()
        frames = await frames_decoded(page)
        after = time.monotonic()
        # The oldest earlier reading at most 2 s before this one ended.
        first = next((f for began, f in samples if after - began <= 2), None)
        samples.append((before, frames))
        if first is not None:
            decoding = {who: frames.get(who, 0) - count for who, count in first.items()}
            if all(decoding.get(sender, 0) > 5 for sender in senders):
                return
        assert time.monotonic() - started < within + 2, decoding
        await asyncio.sleep(0.25)


async def rate_to_host(host: Any, seconds: float) -> float:
    """Bytes a second the server sent the host, over `seconds`."""
    before = host.counters().bytes_to_host
    await asyncio.sleep(seconds)
    return (host.counters().bytes_to_host - before) / seconds


async def test_weak_sign_held_videos_and_audio_only_on_a_lossy_link(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rooms.calls.weak_links")  # shown if it fails
    media = prepare_media(
        audio_seconds=240, width=320, height=240, video_seconds=2, video_bitrate=300_000
    )
    with Testbed() as bed:
        pupil_host = bed.add_host(LinkSpec())
        async with running_server(host=pupil_host.gateway) as server, playwright() as pw:
            lesson = await server.create_lesson(
                roster=[
                    {"id": f"s-{i}", "name": name, "role": "student"}
                    for i, name in enumerate(("Иван Иванов", "Мария Кузнецова", "Олег Орлов"), 1)
                ]
            )
            teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
            pupil_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
            bots = list(
                await asyncio.gather(
                    bot(server, lesson["id"], "s-2", "Мария Кузнецова"),
                    bot(server, lesson["id"], "s-3", "Олег Орлов"),
                )
            )
            try:
                await asyncio.gather(
                    *(
                        publisher.publish(
                            [
                                (PreEncodedTrack(media.audio), "microphone"),
                                (PreEncodedTrack(media.video), "camera"),
                            ]
                        )
                        for publisher in bots
                    )
                )
                remote = pupil_host.executable(CHROMIUM)
                async with chromiums(
                    pw,
                    {"origin": server.base_url},
                    {"executable": remote, "origin": server.base_url},
                ) as (teacher_browser, pupil_browser):
                    teacher = await new_page(teacher_browser)
                    pupil = await new_page(pupil_browser)
                    await asyncio.gather(
                        join_call(teacher, teacher_url), join_call(pupil, pupil_url)
                    )
                    await wait_for_media(pupil)
                    await scenario(pupil_host, teacher, pupil, [b.id for b in bots])
            finally:
                for publisher in bots:
                    await publisher.close()


async def scenario(pupil_host: Any, teacher: Page, pupil: Page, bot_ids: list[str]) -> None:
    teacher_id = (await teacher.evaluate("window.urok.self"))["id"]
    pupil_id = (await pupil.evaluate("window.urok.self"))["id"]
    senders = {teacher_id, *bot_ids}
    await pupil.wait_for_function(
        "() => Object.keys(window.urok.tracks).length >= 6", timeout=20000
    )
    # On a good link no sign (on a machine this loaded, loss at the start may show one
    # for a few seconds: it must go), and every video decodes.
    notice = pupil.locator("#link-notice")
    await notice.wait_for(state="hidden", timeout=60000)
    badge = teacher.locator(f".tile[data-participant-id='{pupil_id}'] .tile-weak")
    await badge.wait_for(state="hidden", timeout=10000)
    await all_decoding(pupil, senders, within=30)
    full_rate = await rate_to_host(pupil_host, 3)

    # The link turns bad: the pupil's own view and the teacher's tile of the pupil say so.
    pupil_host.shape(LinkSpec(loss_percent=20))
    degraded = time.monotonic()
    await notice.wait_for(state="visible", timeout=30000)
    print(f"weak sign {time.monotonic() - degraded:.1f} s after the link lost 20 %")
    assert await pupil.locator("#link-notice-text").inner_text() == "Слабое соединение"
    assert await pupil.locator("#link-audio-only").inner_text() == "Только звук"
    assert await pupil.locator(".tile-self .tile-weak").is_visible()
    await badge.wait_for(state="visible", timeout=10000)
    assert await badge.inner_text() == "Слабое соединение"
    assert (await teacher.evaluate("window.urok.qualities"))[pupil_id] == "weak"
    # A pupil's camera is held back first, and its tile says why instead of freezing.
    await pupil.wait_for_function("() => window.urok.connection.paused.length > 0", timeout=20000)
    first_held = (await pupil.evaluate(OWN))["paused"][0]
    assert first_held["participant_id"] in bot_ids and first_held["source"] == "camera"
    held_tile = pupil.locator(f".tile[data-participant-id='{first_held['participant_id']}']")
    assert await held_tile.get_attribute("data-paused") == "weak"
    assert "слабое соединение" in await held_tile.locator(".tile-paused").inner_text()
    await pupil.screenshot(path=str(SCREENSHOT_DIR / "urok-weak-link-pupil.png"))
    await teacher.screenshot(path=str(SCREENSHOT_DIR / "urok-weak-link-teacher.png"))

    # Much worse (protocol 1.4 `level`): "very poor" at both, still "weak" to a 1.2 client.
    pupil_host.shape(LinkSpec(loss_percent=45))
    text = pupil.locator("#link-notice-text")
    await pupil.wait_for_function("() => window.urok.connection.level === 'bad'", timeout=30000)
    assert await text.inner_text() == "Очень плохое соединение"
    assert await notice.get_attribute("data-quality") == "bad"
    await teacher.wait_for_function(
        f"() => window.urok.levels['{pupil_id}'] === 'bad'", timeout=10000
    )
    assert await badge.inner_text() == "Очень плохое соединение"
    assert (await teacher.evaluate("window.urok.qualities"))[pupil_id] == "weak"
    pupil_host.shape(LinkSpec(loss_percent=20))
    await pupil.wait_for_function("() => window.urok.connection.level === 'weak'", timeout=30000)
    assert await text.inner_text() == "Слабое соединение"

    # The pupil chooses audio only: no video reaches them at all.
    await pupil.locator("#link-audio-only").click()
    await pupil.wait_for_function(
        "() => window.urok.connection.audioOnly && window.urok.connection.paused.length === 3",
        timeout=10000,
    )
    assert await pupil.locator("#link-audio-only").inner_text() == "Вернуть видео"
    for sender in senders:
        tile = pupil.locator(f".tile[data-participant-id='{sender}']")
        assert await tile.get_attribute("data-paused") == "audio_only"
    await asyncio.sleep(1)  # what was on its way
    stopped = await grows(pupil, video_received, 3)
    assert all(count <= 3 for count in stopped.values()), stopped
    audio_only_rate = await rate_to_host(pupil_host, 3)
    full_kbit, audio_kbit = full_rate * 8 / 1000, audio_only_rate * 8 / 1000
    print(f"to the pupil: {full_kbit:.0f} kbit/s, audio only {audio_kbit:.0f}")
    # Audio goes to the pupil as RED two packets deep (three times the Opus payload, issue 16):
    # here alone about 0.3 of the full rate (0.13 before RED); no video left is checked above.
    assert audio_only_rate < 0.45 * full_rate, (audio_only_rate, full_rate)

    # The link recovers: the sign clears at the teacher's, the pupil stays on audio only.
    pupil_host.shape(LinkSpec())
    recovered = time.monotonic()
    await badge.wait_for(state="hidden", timeout=90000)
    print(f"sign cleared {time.monotonic() - recovered:.1f} s after the link recovered")
    await pupil.wait_for_function("() => window.urok.connection.quality === 'good'", timeout=10000)
    assert await pupil.locator(".tile-self .tile-weak").is_hidden()
    assert await notice.is_visible()  # "audio only" is still on, with the way back
    assert await pupil.locator("#link-notice-text").inner_text() == (
        "Только звук: видео других участников не передаётся"
    )

    # Video back on: every video decodes again and the notice goes away.
    await pupil.locator("#link-audio-only").click()
    await notice.wait_for(state="hidden", timeout=10000)
    assert (await pupil.evaluate(OWN))["paused"] == []
    await all_decoding(pupil, senders, within=20)
    for sender in senders:
        tile = pupil.locator(f".tile[data-participant-id='{sender}']")
        assert await tile.get_attribute("data-paused") == ""
