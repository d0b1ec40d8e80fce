"""Chromium decodes a thumbnail thinned to half its frame rate (sfu/temporal_layers.py).

Three bots publish the call page's simulcast camera as Chromium sends it (three VP8
layers with Chromium's temporal layers, bench/simulcast_publisher.py): the teacher
and two pupils. A pupil's call page in a small window shows them as small tiles: the
pupils' cameras come at half the frame rate, the teacher's (a host) at the full one.
The thinned streams must look like any other to Chromium: numbered without gaps
(no NACKs), picture ids without gaps (libwebrtc holds back every frame after a gap
in picture ids: a thumbnail would decode a few frames a second or none), no freeze.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bench.bot import Bot
from bench.simulcast_publisher import (
    LAYERS_SIMULCAST,
    encode_layers,
    publish_layered,
)
from signalling.keys import CALLS
from tests.browser.harness import Server, chromium, join_call, new_page, playwright, running_server
from tests.test_weak_links import until

pytestmark = pytest.mark.browser

# Per person: what the page decodes of their camera, and what it asked to be resent.
CAMERAS_JS = """
async () => {
  const pc = window.urok.pcs.subscriber;
  const out = {};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
    const info = window.urok.tracks[s.mid];
    if (!info || info.source !== 'camera') return;
    out[info.participant_id] = {frames: s.framesDecoded || 0, nacks: s.nackCount || 0,
                                freezes: s.freezeCount || 0, width: s.frameWidth || 0};
  });
  return out;
}
"""


@asynccontextmanager
async def class_of_three(server: Server) -> AsyncIterator[tuple[str, list[Bot]]]:
    layers = encode_layers(LAYERS_SIMULCAST, fps=30, seconds=1.0)
    roster = [{"id": f"s-{i}", "name": f"Ученик {i}", "role": "student"} for i in (1, 2, 3)]
    lesson = (await server.create_lesson(roster=roster))["id"]
    people = [("t-1", "Анна Петровна", "teacher"), ("s-2", "Пётр", "student")]
    people.append(("s-3", "Мария", "student"))
    bots, cameras = [], []
    try:
        for user, name, role in people:
            bot = Bot(server.base_url, await server.token(lesson, user, name, role), receive=False)
            bots.append(bot)
            await bot.connect(timeout=30)
            cameras.append(camera := await publish_layered(bot, layers))
            camera.start(bot.publisher)
        yield lesson, bots
    finally:
        for camera in cameras:
            await camera.stop()
        for bot in bots:
            await bot.close()


async def test_chromium_decodes_pupils_thumbnails_at_half_the_frame_rate() -> None:
    async with running_server() as server, playwright() as pw:
        async with class_of_three(server) as (lesson, bots), chromium(pw) as browser:
            page = await new_page(browser)
            # A small window: every tile under 320x180 (the middle layer).
            await page.set_viewport_size({"width": 560, "height": 420})
            url = await server.join_url(lesson, "s-1", "Иван", "student")
            await join_call(page, url, video=False)

            async def cameras() -> dict[str, Any]:
                return dict(await page.evaluate(CAMERAS_JS))

            await until_decoding(cameras, [bot.id for bot in bots])
            call = server.app[CALLS].get(lesson)
            assert call is not None
            me = call.participants[(await page.evaluate("window.urok.self"))["id"]]
            assert me.subscriber is not None
            teacher, *pupils = bots
            consumer = {}
            for bot in bots:
                producer = call.participants[bot.id].producers["camera"]
                mine = me.subscriber.consumers
                consumer[bot.id] = next(c for c in mine if c.producer is producer)
            await until(
                lambda: all(consumer[p.id].layers.temporal.cap == 1 for p in pupils),
                15,
                "the pupils' thumbnails capped",
            )
            assert consumer[teacher.id].layers.temporal.cap is None
            await asyncio.sleep(2)  # settled at the new rate
            first = await cameras()
            await asyncio.sleep(4)
            last = await cameras()
            fps = {who: (last[who]["frames"] - first[who]["frames"]) / 4 for who in last}
            print("frames decoded a second:", fps, "last:", last)
            for pupil in pupils:
                ratio = fps[pupil.id] / fps[teacher.id]
                assert 0.45 < ratio < 0.56, (fps, last)  # 12 of 30 with picture id gaps
                assert last[pupil.id]["nacks"] == first[pupil.id]["nacks"], (first, last)
                assert last[pupil.id]["freezes"] == first[pupil.id]["freezes"], (first, last)
                assert consumer[pupil.id].layers.temporal.pictures_left_out > 30
            assert fps[teacher.id] > 20, fps


async def until_decoding(cameras: Any, people: list[str]) -> None:
    async def decoding() -> bool:
        seen = await cameras()
        return all(seen.get(who, {}).get("frames", 0) > 10 for who in people)

    for _ in range(60):
        if await decoding():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the page did not decode every camera: {await cameras()}")
