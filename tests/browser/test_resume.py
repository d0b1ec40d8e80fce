"""The call page comes back by itself when the server cuts its WebSocket: a
"reconnecting" banner, never the pre-join screen, the same participant with its
hand still up, media both ways on the same peer connections, nobody told it left.
Then, in the same page, its WebSocket's packets are dropped for 3 s (nftables):
the page hears and is heard again within 5 s of the link coming back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack
from bench.nft_drop import dropping
from signalling.keys import CALLS, STORE
from tests.browser.harness import Server, chromium, join_call, new_page, playwright, running_server

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

            await packets_dropped_for_3_s(server, page, teacher, lesson_id, pupil_id)
        finally:
            await teacher.close()


def browser_ports(server_port: int) -> set[int]:
    """The local ports of the browser's connections to the server: every established one
    to `server_port` not of this process (the bots and the test's HTTP client)."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{server_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        int(line.split()[2].rsplit(":", 1)[1])
        for line in listing.splitlines()
        if f"pid={os.getpid()}," not in line
    }


def tcp_cut(client_ports: set[int], server_port: int) -> AbstractContextManager[str]:
    """Drop every packet of these connections to the server, and every new connection
    to it: a blip on the client's link (nothing is closed or refused)."""
    ports = ", ".join(str(p) for p in sorted(client_ports))
    return dropping(
        "ws_cut",
        [
            f"tcp sport {{ {ports} }} tcp dport {server_port}",
            f"tcp sport {server_port} tcp dport {{ {ports} }}",
            f"tcp dport {server_port} tcp flags & (syn | ack) == syn",
        ],
    )


async def packets_dropped_for_3_s(
    server: Server, page: Page, teacher: Bot, lesson_id: str, pupil_id: str
) -> None:
    """The page's WebSocket loses every packet for 3 s (a chat message is said meanwhile):
    within 5 s of the link coming back the page has the message and its ping is answered,
    by the same socket (TCP retransmits) or a resumed one; the call screen, the hand,
    the media and the attendance go on as if nothing happened."""
    call = server.app[CALLS].calls[lesson_id]
    server_port = urlsplit(server.base_url).port or 80
    ports = browser_ports(server_port)
    assert ports, "the page has no connection to the server"
    attendance = {r.user_id: r for r in await server.app[STORE].attendance(lesson_id)}
    present_since = attendance["s-1"].present_since
    assert present_since is not None
    seen, resumes = len(teacher.messages), await page.evaluate("() => window.urok.resumes")
    frames_before = await decoded_frames(page)
    with tcp_cut(ports, server_port):
        cut_at = time.monotonic()
        said = await teacher.request(
            {"type": "chat_send", "text": "Все меня слышат?"},
            lambda m: m["type"] == "chat_message",
        )
        await asyncio.sleep(3.0 - (time.monotonic() - cut_at))  # the blip lasts 3 s
        seq = said["message"]["seq"]
        assert await page.evaluate("() => window.urok.lastChatSeq") < seq  # really cut
    back_at = time.monotonic()
    await page.wait_for_function("(seq) => window.urok.lastChatSeq >= seq", arg=seq, timeout=5000)
    pong = await page.evaluate(
        "() => window.urok.ws.request({type: 'ping'}, ['pong'], 5000).then((m) => m.type)"
    )
    took = time.monotonic() - back_at
    resumed = await page.evaluate("() => window.urok.resumes") - resumes
    print(f"3 s drop: heard and heard again {took:.2f} s after it ended (resumes: {resumed})")
    assert pong == "pong" and took < 5, took
    watched = await page.evaluate("() => window.__seen")
    assert watched["screens"] == ["screen-call"] and watched["states"] == ["in-call"]
    state = await page.evaluate(
        "() => ({id: window.urok.self.id, hands: window.urok.hands,"
        " pub: window.urok.pcs.publisher.connectionState,"
        " sub: window.urok.pcs.subscriber.connectionState})"
    )
    assert state == {"id": pupil_id, "hands": [pupil_id], "pub": "connected", "sub": "connected"}
    before = teacher.packet_counts[(pupil_id, "video")]
    await until(lambda: teacher.packet_counts[(pupil_id, "video")] > before + 30, timeout=20)
    deadline = time.monotonic() + 20  # a loaded machine's Chromium decodes slowly
    while await decoded_frames(page) < frames_before + 20:
        assert time.monotonic() < deadline, "the page's video stopped"
        await asyncio.sleep(0.2)
    told = [m["type"] for m in teacher.messages[seen:]]
    assert "participant_left" not in told and "participant_joined" not in told
    participant = call.participants[pupil_id]
    assert participant.held_since is None
    attendance = {r.user_id: r for r in await server.app[STORE].attendance(lesson_id)}
    assert attendance["s-1"].last_leave is None
    assert attendance["s-1"].present_since == present_since  # one continuous presence


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
