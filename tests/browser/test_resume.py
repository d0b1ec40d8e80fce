"""The call page comes back by itself when the server cuts its WebSocket: a
"reconnecting" banner, never the pre-join screen, the same participant with its
hand still up, media both ways on the same peer connections, nobody told it left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from playwright.async_api import Page

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.keys import CALLS, STORE
from tests.browser.harness import chromium, join_call, new_page, playwright, running_server

pytestmark = pytest.mark.browser

# Every screen the page shows and every state it passes through, from now on.
WATCH_JS = """() => {
  window.__seen = {states: [], screens: [], banners: []};
  const seen = window.__seen;
  const note = () => {
    const state = window.urok.state;
    if (seen.states[seen.states.length - 1] !== state) seen.states.push(state);
    for (const el of document.querySelectorAll('section.screen')) {
      if (!el.hidden && !seen.screens.includes(el.id)) seen.screens.push(el.id);
    }
  };
  setInterval(note, 5);
  new MutationObserver(() => {
    note();
    for (const el of document.querySelectorAll('#banners .banner-text')) {
      if (!seen.banners.includes(el.textContent)) seen.banners.push(el.textContent);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


async def test_a_cut_websocket_resumes_without_the_prejoin_screen() -> None:
    async with (
        running_server(resume_grace_seconds=30) as server,
        playwright() as pw,
        chromium(pw) as browser,
    ):
        lesson = await server.create_lesson()
        lesson_id = lesson["id"]
        token = await server.token(lesson_id, "t-1", "Анна Петровна", "teacher")
        teacher = Bot(server.base_url, token, decode=False)
        await teacher.connect()
        try:
            await teacher.publish(
                [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack((30, 200, 30)), "camera")]
            )
            page = await new_page(browser)
            await join_call(page, await server.join_url(lesson_id, "s-1", "Иван", "student"))
            pupil_id = await page.evaluate("() => window.urok.self.id")
            raised = teacher.wait_for(lambda m: m["type"] == "hands" and m["queue"] == [pupil_id])
            await page.locator("#toggle-hand").click()
            await raised
            await until(lambda: teacher.packet_counts[(pupil_id, "video")] > 30)
            frames_before = await decoded_frames(page)
            seen = len(teacher.messages)
            await page.evaluate(WATCH_JS)

            # The server side closes the page's socket (as a proxy or a dead link would).
            participant = server.app[CALLS].calls[lesson_id].participants[pupil_id]
            await participant.send.__self__.ws.close()  # type: ignore[attr-defined]

            await page.wait_for_function("() => window.urok.resumes === 1", timeout=5000)
            watched = await page.evaluate("() => window.__seen")
            assert "Переподключение…" in watched["banners"]
            assert watched["screens"] == ["screen-call"]  # never the pre-join screen
            assert watched["states"] == ["in-call"]
            state = await page.evaluate(
                "() => ({id: window.urok.self.id, hands: window.urok.hands,"
                " banner: !!document.querySelector('#banners [data-key=reconnect]'),"
                " pub: window.urok.pcs.publisher.connectionState,"
                " sub: window.urok.pcs.subscriber.connectionState})"
            )
            assert state == {
                "id": pupil_id,
                "hands": [pupil_id],
                "banner": False,
                "pub": "connected",
                "sub": "connected",
            }
            # Media both ways, and nobody was told the pupil left or came.
            before = teacher.packet_counts[(pupil_id, "video")]
            await until(lambda: teacher.packet_counts[(pupil_id, "video")] > before + 30)
            deadline = time.monotonic() + 10
            while await decoded_frames(page) < frames_before + 20:
                assert time.monotonic() < deadline, "the page's video stopped"
                await asyncio.sleep(0.2)
            about = [
                m
                for m in teacher.messages[seen:]
                if m["type"] in ("participant_left", "participant_joined")
            ]
            assert about == []
            assert pupil_id in server.app[CALLS].calls[lesson_id].participants
            attendance = {r.user_id: r for r in await server.app[STORE].attendance(lesson_id)}
            assert attendance["s-1"].last_leave is None  # one continuous presence
        finally:
            await teacher.close()


async def decoded_frames(page: Page) -> int:
    stats = await page.evaluate(
        """async () => {
          let frames = 0;
          (await window.urok.pcs.subscriber.getStats()).forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
          });
          return frames;
        }"""
    )
    return int(stats)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
