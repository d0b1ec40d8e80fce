"""Simulcast end to end: a Chromium camera in three sizes, one forwarded per viewer.

The teacher's page publishes its camera as three VP8 encodings (q/h/f); the
server's answer accepts them and its producer sees three layers. The student's
window is made narrow, then wide: its page tells the size of the tile
(`track_view`), the server forwards the smallest layer that covers it, and the
size the page decodes follows, without a new connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page

from rooms.calls.track_views import layer_for_size
from signalling.keys import CALLS
from tests.browser.harness import (
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)

pytestmark = pytest.mark.browser

# The teacher's camera as its sender encodes it, per rid.
OUTBOUND_LAYERS_JS = """
async () => {
  const out = {};
  (await window.urok.pcs.publisher.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
      out[s.rid] = {width: s.frameWidth || 0, height: s.frameHeight || 0, bytes: s.bytesSent};
    }
  });
  return out;
}
"""

# What the student decodes of one person's camera: {width, frames}.
INBOUND_CAMERA_JS = """
async (who) => {
  let found = null;
  (await window.urok.pcs.subscriber.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
    const info = window.urok.tracks[s.mid];
    if (info && info.participant_id === who && info.source === 'camera') {
      found = {width: s.frameWidth || 0, frames: s.framesDecoded || 0};
    }
  });
  return found;
}
"""


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout}s (last: {last})")


async def sent_layers(page: Page) -> dict[str, Any] | None:
    """The teacher's encodings by rid, `all` of them and those `flowing` (bytes sent
    over the last 0.5 s); None while fewer than two flow."""
    first = await page.evaluate(OUTBOUND_LAYERS_JS)
    await asyncio.sleep(0.5)
    then = await page.evaluate(OUTBOUND_LAYERS_JS)
    flowing = [
        {"rid": rid, **v}
        for rid, v in then.items()
        if rid in first and v["bytes"] > first[rid]["bytes"] and v["width"] > 0
    ]
    if len(flowing) < 2:
        return None
    return {**then, "all": list(then), "flowing": flowing}


async def decoded_width(page: Page, who: str) -> dict[str, int] | None:
    return await page.evaluate(INBOUND_CAMERA_JS, who)  # type: ignore[no-any-return]


async def test_a_viewer_switches_between_the_layers_of_a_chromium_camera() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
        student_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        async with chromiums(pw, {}, {}) as (teacher_browser, student_browser):
            teacher, student = await new_page(teacher_browser), await new_page(student_browser)
            await join_call(teacher, teacher_url)
            await join_call(student, student_url)
            await wait_for_media(student)
            teacher_id = (await teacher.evaluate("window.urok.self"))["id"]
            call = server.app[CALLS].get(lesson["id"])
            assert call is not None
            producer = call.participants[teacher_id].producers["camera"]
            assert producer.layer_count == 3

            # The answer took all three: Chromium encodes each rid (without it, only the
            # first). Which of them it sends follows its bandwidth estimate: on this
            # loaded loopback, q and h at least; f once the estimate allows (docs).
            sizes = await eventually(lambda: sent_layers(teacher), 60, "two layers sent")
            print("layers:", [(r.rid, r.bitrate, r.packets) for r in producer.layer_reports()])
            print("sizes:", sizes)
            assert sorted(sizes["all"]) == ["f", "h", "q"]
            student_self = call.participants[(await student.evaluate("window.urok.self"))["id"]]
            assert student_self.subscriber is not None
            [consumer] = [c for c in student_self.subscriber.consumers if c.producer is producer]

            async def decoding() -> Any:
                """(layer, width) once the student decodes the layer that covers the size
                its page told for the teacher's tile (`track_view`)."""
                view = await student.evaluate("(k) => window.urok.views[k]", f"{teacher_id}|camera")
                if not view or not view["visible"]:
                    return None
                layer = layer_for_size(3, view["width"], view["height"])
                sent = await sent_layers(teacher)
                if not sent or consumer.layers.preferred != layer:
                    return None
                # The top layer: the largest one Chromium is sending now.
                rid = "qhf"[layer]
                width = (
                    sizes[rid]["width"] if layer < 2 else max(v["width"] for v in sent["flowing"])
                )
                before = await decoded_width(student, teacher_id)
                await asyncio.sleep(0.5)
                now = await decoded_width(student, teacher_id)
                ok = before and now and now["width"] == width and now["frames"] > before["frames"]
                return (layer, width) if ok else None

            # The student's page tells the size its tile of the teacher is shown at
            # (web_client/static/js/videoquality.js): a narrow window, then a wide one.
            decoded = []
            # 180 px: the tile is under 160x90 device pixels (q); 1280: over 320x180 (f,
            # or h while Chromium's estimate holds f back).
            for viewport in ((180, 400), (1280, 800)):
                await student.set_viewport_size({"width": viewport[0], "height": viewport[1]})
                decoded.append(await eventually(decoding, 30, f"the layer at {viewport}"))
            print("decoded (layer, width), narrow and wide:", decoded)
            assert decoded[0][0] < decoded[1][0] and decoded[0][1] < decoded[1][1]
            assert decoded[1][0] == 2
            # Wants f, forwards the best layer sent: h or f, reached at keyframes.
            assert consumer.layers.layer in (1, 2) and consumer.layers.switches >= 2
