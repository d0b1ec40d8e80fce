"""The journal's embedding API (docs/embedding.md), driven from pages of other origins.

A journal page served by this test at another loopback address (127.0.0.2) embeds the
teacher's call through /embed.js: its commands work (the microphone off as the server
sees it, "mute all" muting a bot, the chat opened, hang up, end for everyone), its events
arrive (ready, joined, the bot joining, raising a hand and leaving, left, lesson ended).
A frame from a third address (127.0.0.3) beside the call posts into it: ignored. A page
there, allowed to frame the call page by another integration but not named by the
lesson's, embeds a pupil's call and posts commands into it: they are ignored, counted,
and the pupil's microphone stays on; that page hears no event.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from playwright.async_api import Frame, Page

from bench.bot import Bot
from signalling.config import DEMO_KEY_ID, DEMO_SECRET, Integration
from signalling.keys import CALLS
from tests.browser.harness import chromium, new_page, playwright, running_server

JOURNAL_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Журнал</title></head>
<body><div id="slot" style="width: 1000px; height: 640px"></div>
<script src="{urok}/embed.js"></script>
<script>
  window.events = [];
  window.call = new UrokCall({{
    container: 'slot', url: {url}, lang: 'ru', height: '640px', width: '1000px',
    onEvent: (name, data) => window.events.push({{ name, data }}),
  }});
  window.addSibling = (src) => document.body.append(
    Object.assign(document.createElement('iframe'), {{ src }}));
</script></body></html>
"""

# Another origin's frame beside the call (an advert, a widget) posting into it.
SIBLING_PAGE = """<!doctype html><meta charset="utf-8"><script>
  parent.frames[0].postMessage({ urok: 'command', name: 'toggleMic', args: {} }, '*');
</script>
"""

# A page the lesson's integration does not name: a bare iframe, commands posted to '*'.
FOREIGN_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Чужой сайт</title></head>
<body><iframe id="call" src={url} allow="camera; microphone; autoplay"
  style="width: 800px; height: 600px"></iframe>
<script>
  window.heard = [];
  addEventListener('message', (event) => window.heard.push(event.data));
  window.post = (name) => document.getElementById('call').contentWindow
    .postMessage({{ urok: 'command', name, args: {{}} }}, '*');
</script></body></html>
"""


@asynccontextmanager
async def pages_at(*hosts: str) -> AsyncIterator[tuple[dict[str, str], list[str]]]:
    """Serve `pages[name]` at /<name> on each of `hosts` (port from the OS); their origins."""
    pages: dict[str, str] = {}

    async def page(request: web.Request) -> web.Response:
        body = pages.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{name}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    origins = []
    try:
        for host in hosts:
            sock = socket.socket()
            sock.bind((host, 0))
            await web.SockSite(runner, sock).start()
            origins.append(f"http://{host}:{sock.getsockname()[1]}")
        yield pages, origins
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def event(page: Page, name: str, where: str = "true", timeout: float = 15000) -> Any:
    """The first event `name` the journal page heard whose data `d` satisfies `where`."""
    found = f"window.events.find((e) => e.name === {json.dumps(name)} && ((d) => {where})(e.data))"
    await page.wait_for_function(f"() => Boolean({found})", timeout=timeout)
    return await page.evaluate(f"() => ({found}).data")


async def call_frame(page: Page) -> Frame:
    for _ in range(200):
        frame = page.frame(url=lambda u: "/call/" in u)
        if frame is not None:
            return frame
        await asyncio.sleep(0.05)
    raise AssertionError("no call frame")


async def join_in(frame: Frame) -> None:
    button = frame.locator("#join-audio")
    await button.wait_for(state="visible", timeout=15000)
    await frame.wait_for_function("() => !document.getElementById('join-audio').disabled")
    await button.click()
    await frame.wait_for_function("() => window.urok.state === 'in-call'", timeout=15000)


async def test_a_journal_in_another_origin_drives_the_call_and_a_foreign_one_cannot() -> None:
    async with pages_at("127.0.0.2", "127.0.0.3") as (pages, (journal, foreign)):
        integrations = (
            Integration(key_id=DEMO_KEY_ID, secret=DEMO_SECRET, name="Журнал", origins=(journal,)),
            # May frame the call page (frame-ancestors), but it is not this lesson's journal.
            Integration(key_id="other", secret="other-secret-0123456789ab", origins=(foreign,)),
        )
        async with (
            running_server(integrations=integrations) as server,
            playwright() as pw,
            chromium(pw) as browser,
        ):
            lesson_id = (await server.create_lesson())["id"]
            teacher_url = await server.join_url(lesson_id, "t-1", "Анна Петровна", "teacher")
            pages["journal"] = JOURNAL_PAGE.format(
                urok=server.base_url, url=json.dumps(teacher_url)
            )
            page = await new_page(browser)
            await page.goto(f"{journal}/journal")
            ready = await event(page, "ready")
            assert ready["lesson_id"] == lesson_id and ready["you"]["role"] == "teacher"
            frame = await call_frame(page)
            assert await frame.evaluate("() => window.urok.embed.parentOrigin") == journal
            await join_in(frame)
            joined = await event(page, "joined")
            assert joined["you"]["host"] is True and joined["participants"] == 1
            teacher_id = joined["you"]["id"]
            call = server.app[CALLS].calls[lesson_id]
            assert call.participants[teacher_id].record.audio is True

            # A bot joins and raises its hand: the journal hears both.
            bot = Bot(server.base_url, await server.token(lesson_id, "s-2", "Мария", "student"))
            await bot.connect()
            try:
                came = await event(page, "participantJoined", f"d.id === {json.dumps(bot.id)}")
                assert came["name"] == "Мария" and came["participants"] == 2
                await bot.send({"type": "hand", "raised": True})
                hand = await event(page, "handRaised", f"d.id === {json.dumps(bot.id)}")
                assert hand["name"] == "Мария" and hand["queue"] == [bot.id]
                # The host's "mute all" through the journal: the server mutes the pupil.
                assert call.participants[bot.id].record.audio is True
                muted = bot.wait_for(lambda m: m["type"] == "muted" and m["kind"] == "audio")
                await page.evaluate("() => window.call.muteAll()")
                await muted
                assert call.participants[bot.id].record.audio is False
            finally:
                await bot.close()
            gone = await event(page, "participantLeft", f"d.id === {json.dumps(bot.id)}")
            assert gone["participants"] == 1

            # Commands: the microphone off as the server sees it, the chat opened.
            await page.evaluate("() => window.call.toggleMic()")
            await until(lambda: call.participants[teacher_id].record.audio is False)
            # A frame of another origin beside the call cannot switch it back on.
            pages["sibling"] = SIBLING_PAGE
            await page.evaluate(f"() => window.addSibling('{foreign}/sibling')")
            await frame.wait_for_function("() => window.urok.embed.ignored === 1")
            assert await frame.evaluate("() => window.urok.embed.ignoredOrigins") == {foreign: 1}
            assert await frame.evaluate("() => window.urok.local.audio.enabled") is False
            await page.evaluate("() => window.call.openChat()")
            await frame.wait_for_function("() => window.urok.panel === 'chat'")
            assert await frame.locator("#panel-chat").is_visible()
            await page.evaluate("() => window.call.setDisplayName('Другое имя')")
            refused = await event(page, "error", "d.command === 'setDisplayName'")
            assert refused["code"] == "not_supported"

            # A page of another integration's origin embeds a pupil: its commands are ignored.
            pupil_url = await server.join_url(lesson_id, "s-1", "Иван", "student")
            pages["foreign"] = FOREIGN_PAGE.format(url=json.dumps(pupil_url))
            other = await browser.new_page()
            await other.goto(f"{foreign}/foreign")
            pupil = await call_frame(other)
            await join_in(pupil)
            pupil_id = await pupil.evaluate("() => window.urok.self.id")
            await until(lambda: pupil_id in call.participants)
            assert call.participants[pupil_id].record.audio is True
            await other.evaluate("() => { window.post('toggleMic'); window.post('hangUp'); }")
            await pupil.wait_for_function("() => window.urok.embed.ignored >= 2", timeout=10000)
            assert await pupil.evaluate("() => window.urok.embed.ignoredOrigins") == {foreign: 2}
            assert await pupil.evaluate("() => window.urok.embed.handled") == 0
            # The page went on as it was: the commands had their chance to run by now.
            await event(page, "participantJoined", f"d.id === {json.dumps(pupil_id)}")
            assert await pupil.evaluate("() => window.urok.state") == "in-call"
            assert call.participants[pupil_id].record.audio is True
            assert await other.evaluate("() => window.heard") == []
            await other.close()

            # Hang up: left and readyToClose; back in, "end for everyone": lessonEnded.
            await page.evaluate("() => window.call.hangUp()")
            assert (await event(page, "left"))["reason"] == "hangup"
            await event(page, "readyToClose")
            await frame.locator("#message-action").click()
            await join_in(frame)
            await page.wait_for_function(
                "() => window.events.filter((e) => e.name === 'joined').length === 2"
            )
            await page.evaluate("() => window.call.endLesson()")
            ended = await event(page, "lessonEnded")
            assert ended["reason"] == "ended_by_host"
            names = await page.evaluate("() => window.events.map((e) => e.name)")
            assert names.count("ready") == 1 and "error" in names
            assert await frame.evaluate("() => window.urok.embed.ignored") == 1
