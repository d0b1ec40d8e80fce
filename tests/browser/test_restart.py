"""A node restarted mid-lesson (issue 12): with Redis, the page comes back by itself.

`urok serve` with a Redis store, a pupil's Chromium in the call, a teacher bot
that wrote in the chat. SIGTERM: the page is told `restarting`, the node
drains and exits. The same node starts again on the same port and Redis: the
page's resume finds no session (it lived in the old process), so it joins
afresh by itself, without anyone clicking, as the same participant with its
hand still up, and the lesson's chat is there.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiohttp import web

from bench.bot import Bot
from signalling.config import Settings
from tests.browser.harness import Server, chromium, join_call, new_page, playwright
from tests.live import free_port, serve_process, wait_healthy
from tests.redis_server import redis_server

pytestmark = pytest.mark.browser


async def test_a_restarted_node_takes_the_page_back_without_a_click(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes: list[asyncio.subprocess.Process] = []
    teacher: Bot | None = None
    async with redis_server() as redis_url, aiohttp.ClientSession() as http, playwright() as pw:
        try:
            processes.append(await serve_process(port, "--redis-url", redis_url, data_dir=tmp_path))
            await wait_healthy(http, base, 60)
            # The node runs the embedded defaults: the demo journal's key is Settings()'s.
            server = Server(base, cast(web.Application, None), Settings(), http)
            lesson = (await server.create_lesson())["id"]
            teacher = Bot(base, await server.token(lesson, "t-1", "Анна", "teacher"))
            await teacher.connect()
            await teacher.send({"type": "chat_send", "text": "Тема: дроби"})
            async with chromium(pw) as browser:
                page = await new_page(browser)
                url = await server.join_url(lesson, "s-1", "Иван Иванов", "student")
                await join_call(page, url, video=False)
                await page.wait_for_function(
                    "() => document.getElementById('chat-list').textContent.includes('дроби')",
                    timeout=10000,
                )
                first_id = await page.evaluate("window.urok.self.id")
                await page.click("#toggle-hand")
                # urok.hands is the server's list, replaced by every joined.
                hand_up = (
                    "() => window.urok.hands.includes(window.urok.self.id)"
                    " && document.getElementById('toggle-hand')"
                    ".getAttribute('aria-pressed') === 'true'"
                )
                await page.wait_for_function(hand_up, timeout=10000)
                await page.evaluate("window.connectionBeforeRestart = window.urok.ws")

                processes[0].send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(processes[0].wait(), 40) == 0
                await page.wait_for_function("() => window.urok.serverRestarting === true")
                await teacher.close()
                teacher = None

                processes.append(
                    await serve_process(port, "--redis-url", redis_url, data_dir=tmp_path)
                )
                await page.wait_for_function(
                    "() => window.urok.state === 'in-call' && window.urok.ws"
                    " && window.urok.ws !== window.connectionBeforeRestart",
                    timeout=60000,
                )
                # A new join, yet the same participant (rooms/calls/restart.py).
                assert await page.evaluate("window.urok.self.id") == first_id
                await page.wait_for_function(hand_up, timeout=10000)  # its hand still up
                # The lesson's chat came back from Redis with the new join.
                await page.wait_for_function(
                    "() => document.getElementById('chat-list').textContent.includes('дроби')",
                    timeout=10000,
                )
                assert await page.evaluate("window.urok.serverRestarting") is False
        finally:
            if teacher is not None:
                await teacher.close()
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
