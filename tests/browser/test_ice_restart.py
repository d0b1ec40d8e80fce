"""The call page brings media back by itself after its UDP path was cut
(docs/protocol.md "ice_restart"): Chromium on a test host behind its own link
(bench/links.py), all UDP dropped for 5 s with nftables; when the path returns
the old connections' server ports stay dead (as after a change of network: the
old 5-tuples never come back), so only new peer connections can carry media.
Media flows both ways again within 10 s of the path returning, without a
reload or the pre-join screen, with the hand still up."""

from __future__ import annotations

import asyncio
import time

import pytest
from playwright.async_api import Page

from bench.bot import Bot
from bench.links import LinkSpec, Testbed
from bench.media import PatternVideoTrack, ToneAudioTrack
from signalling.keys import CALLS
from tests.browser.harness import (
    CHROMIUM,
    chromium,
    join_call,
    new_page,
    playwright,
    running_server,
)
from tests.browser.test_resume import WATCH_JS, decoded_frames, until

pytestmark = pytest.mark.browser


TIMELINE_JS = """() => {
  window.__timeline = [];
  const t0 = performance.now();
  const seenPcs = new Set();
  setInterval(() => {
    for (const which of ['publisher', 'subscriber']) {
      const pc = window.urok.pcs[which];
      if (!pc || seenPcs.has(pc)) continue;
      seenPcs.add(pc);
      const note = () => window.__timeline.push(
        [Math.round(performance.now() - t0), which, pc.iceConnectionState, pc.connectionState]);
      note();
      pc.addEventListener('iceconnectionstatechange', note);
      pc.addEventListener('connectionstatechange', note);
    }
  }, 20);
}"""


async def sent_packets(page: Page) -> int:
    return int(
        await page.evaluate(
            """async () => {
              let packets = 0;
              (await window.urok.pcs.publisher.getStats()).forEach((r) => {
                if (r.type === 'outbound-rtp' && r.kind === 'video') packets += r.packetsSent;
              });
              return packets;
            }"""
        )
    )


async def test_media_comes_back_on_new_connections_after_the_udp_path_is_cut() -> None:
    with Testbed() as bed:
        pupil_host = bed.add_host()
        async with (
            running_server(host=pupil_host.gateway, resume_grace_seconds=30) as server,
            playwright() as pw,
            chromium(pw, executable=pupil_host.executable(CHROMIUM), origin=server.base_url) as b,
        ):
            lesson_id = (await server.create_lesson())["id"]
            token = await server.token(lesson_id, "t-1", "Анна Петровна", "teacher")
            teacher = Bot(server.base_url, token, decode=False)
            await teacher.connect()
            try:
                await teacher.publish(
                    [
                        (ToneAudioTrack(440), "microphone"),
                        (PatternVideoTrack((30, 200, 30)), "camera"),
                    ]
                )
                page = await new_page(b)
                await join_call(page, await server.join_url(lesson_id, "s-1", "Иван", "student"))
                pupil_id = await page.evaluate("() => window.urok.self.id")
                raised = teacher.wait_for(
                    lambda m: m["type"] == "hands" and m["queue"] == [pupil_id]
                )
                await page.locator("#toggle-hand").click()
                await raised
                await until(lambda: teacher.packet_counts[(pupil_id, "video")] > 30, 20)
                await until_frames(page, 20, 20)
                participant = server.app[CALLS].calls[lesson_id].participants[pupil_id]
                old = (participant.publisher, participant.subscriber)
                assert old[0] is not None and old[1] is not None
                old_ports = Bot.udp_ports(old[0].pc) | Bot.udp_ports(old[1].pc)
                await page.evaluate(
                    "() => { window.__notReloaded = true; window.__oldPcs = {...window.urok.pcs}; }"
                )
                await page.evaluate(WATCH_JS)
                await page.evaluate(TIMELINE_JS)
                seen = len(teacher.messages)

                pupil_host.shape(LinkSpec(udp_dropped=True))
                await asyncio.sleep(5)
                pupil_host.shape(LinkSpec(server_udp_ports_dropped=tuple(sorted(old_ports))))
                returned = time.monotonic()
                received = teacher.packet_counts[(pupil_id, "video")]
                # Both ways: the teacher gets the pupil's video, the page decodes the teacher's.
                await until(lambda: teacher.packet_counts[(pupil_id, "video")] > received + 30, 10)
                # On the new subscriber connection (its count starts at 0).
                await page.wait_for_function(
                    "() => window.urok.pcs.subscriber"
                    " && window.urok.pcs.subscriber !== window.__oldPcs.subscriber",
                    timeout=max(100, 1000 * (10 - (time.monotonic() - returned))),
                )
                await until_frames(page, 20, 10 - (time.monotonic() - returned))
                took = time.monotonic() - returned
                print(f"media back {took:.2f} s after the UDP path returned")
                print(await page.evaluate("() => window.__timeline"))
                assert took < 10

                state = await page.evaluate(
                    """() => ({
                      notReloaded: window.__notReloaded === true,
                      restarts: window.urok.iceRestarts,
                      newPub: window.urok.pcs.publisher !== window.__oldPcs.publisher,
                      newSub: window.urok.pcs.subscriber !== window.__oldPcs.subscriber,
                      oldClosed: window.__oldPcs.publisher.connectionState === 'closed'
                        && window.__oldPcs.subscriber.connectionState === 'closed',
                      hands: window.urok.hands,
                      self: window.urok.self.id,
                      seen: window.__seen,
                    })"""
                )
                assert state["notReloaded"] and state["self"] == pupil_id
                assert state["restarts"] >= 2 and state["newPub"] and state["newSub"]
                assert state["oldClosed"]
                assert state["hands"] == [pupil_id]
                assert state["seen"]["screens"] == ["screen-call"]  # never the pre-join screen
                assert state["seen"]["states"] == ["in-call"]
                assert "Восстанавливаем звук и видео…" in state["seen"]["banners"]
                await page.wait_for_function(
                    "() => !document.querySelector('#banners [data-key=media-restart]')",
                    timeout=5000,
                )
                # The server replaced both connections; nobody heard the pupil leave.
                assert participant.publisher is not old[0] and participant.subscriber is not old[1]
                assert old[0].closed and old[1].closed
                assert server.app[CALLS].calls[lesson_id].participants[pupil_id] is participant
                left = [m for m in teacher.messages[seen:] if m["type"] == "participant_left"]
                assert left == []
                assert await sent_packets(page) > 30
            finally:
                await teacher.close()


async def until_frames(page: Page, frames: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await decoded_frames(page) < frames:
        assert time.monotonic() < deadline, "the page decodes no new video"
        await asyncio.sleep(0.2)
