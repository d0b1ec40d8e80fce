"""A node's orderly stop (signalling/drain.py): everyone told to come back, the running
recording finished and posted before they go, joins refused meanwhile; and
`urok serve` does it on SIGTERM, then exits by itself."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from bench.bot import Bot, BotError
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.drain import drain
from signalling.keys import HEALTH
from tests.live import LiveServer, free_port, running_server, serve_process, wait_healthy


def types_before_close(bot: Bot) -> list[str]:
    return [m["type"] for m in bot.messages]


def recording_ready(message: dict[str, Any]) -> bool:
    return (
        message["type"] == "chat_message"
        and message["message"]["data"].get("event") == "recording_ready"
    )


async def test_draining_tells_everyone_and_posts_the_recording_first(tmp_path: Path) -> None:
    async with running_server(data_dir=tmp_path) as server:
        lesson = await server.create_lesson()
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Анна", "teacher"))
        pupil = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
        late = Bot(server.base_url, await server.token(lesson, "s-2", "Ученик 2", "student"))
        try:
            await teacher.connect()
            await teacher.publish(
                [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack((200, 0, 0)), "camera")]
            )
            await pupil.connect()
            started = await teacher.request(
                {"type": "recording_start"}, lambda m: m["type"] == "recording"
            )
            assert started["recording"] is not None
            await asyncio.sleep(1.5)

            began = time.monotonic()
            await drain(server.app, 20)
            took = time.monotonic() - began
            for bot in (teacher, pupil):
                await asyncio.wait_for(bot.closed_by_server.wait(), 5)
                seen = types_before_close(bot)
                assert "restarting" in seen and "call_ended" not in seen, seen
                # The recording was posted while they were still there to see it.
                ready = [m for m in bot.messages if recording_ready(m)]
                assert len(ready) == 1, seen
                assert seen.index("restarting") < bot.messages.index(ready[0])
            assert took < 20
            assert server.app[HEALTH].draining
            async with server.http.get(server.base_url + "/readyz") as response:
                assert response.status == 503
                assert "draining" in (await response.json())["problems"]

            # A join while draining: a clear, retryable error, and the connection closes.
            try:
                await late.connect()
            except BotError as exc:
                assert "restarting" in str(exc)
            else:
                raise AssertionError("a join while draining was accepted")
            await asyncio.wait_for(late.closed_by_server.wait(), 5)
        finally:
            for bot in (teacher, pupil, late):
                await bot.close()


async def test_serve_drains_on_sigterm_and_exits(tmp_path: Path) -> None:
    port = free_port()
    process = await serve_process(port, data_dir=tmp_path, output=True)
    base = f"http://127.0.0.1:{port}"
    bot: Bot | None = None
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base)
            # The API is the same over HTTP whatever process serves it.
            remote = LiveServer(base, cast(web.Application, None), cast(Any, None), http)
            lesson = await remote.create_lesson()
            bot = Bot(base, await remote.token(lesson, "s-1", "Ученик 1", "student"))
            await bot.connect()
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(bot.closed_by_server.wait(), 10)
            assert "restarting" in types_before_close(bot)
            assert "call_ended" not in types_before_close(bot)
        code = await asyncio.wait_for(process.wait(), 30)
        output = (await process.stdout.read()).decode() if process.stdout else ""
        assert code == 0, output
        assert "Traceback" not in output, output
    finally:
        if bot is not None:
            await bot.close()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_stop_without_a_drain_closes_open_connections_at_once() -> None:
    # A drain cut short (a second signal) or an embedding app's plain cleanup: the
    # connections still open are closed as going away, not waited on for a minute.
    async with AsyncExitStack() as bots, aiohttp.ClientSession() as http:
        async with running_server() as server:
            lesson = await server.create_lesson()
            pupil = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
            bots.push_async_callback(pupil.close)
            await pupil.connect()
            # Connected, never joined.
            raw = await http.ws_connect(server.base_url.replace("http", "ws") + "/ws")
            began = time.monotonic()
        took = time.monotonic() - began
        await asyncio.wait_for(pupil.closed_by_server.wait(), 5)
        assert pupil.ws is not None and pupil.ws.close_code == WSCloseCode.GOING_AWAY
        closing = await asyncio.wait_for(raw.receive(), 5)
        assert (closing.type, closing.data) == (WSMsgType.CLOSE, WSCloseCode.GOING_AWAY)
        # aiohttp waits up to 60 s for each handler still running (its shutdown_timeout).
        assert took < 10, took
