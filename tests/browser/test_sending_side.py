"""Chromium as the subscriber of the sending side (issue 16): RTX negotiated and
understood, receiver reports that give each outgoing stream its RTT and loss.

Each Chromium receives two videos (the other Chromium's, a bot's), so one of its
m-sections has RTX payload types of its own (sfu/rtx_sdp.py). Chromium's link here
is clean loopback, so nothing is lost by itself: the server resends a few recent
packets as if a NACK had asked for them, and Chromium's own getStats must count
them as retransmissions it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from bench.bot import Bot
from bench.media import PatternVideoTrack
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

# Packets resent to each video: what the budget's floor holds at once (4 kB, half a
# second of 64 kbit/s), whatever the rate of the video.
RESENT = 3

RETRANSMITTED_JS = """
async () => {
  const pc = window.urok.pcs.subscriber;
  let packets = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video')
      packets += s.retransmittedPacketsReceived || 0;
  });
  return packets;
}
"""


async def test_chromium_takes_rtx_and_reports_its_link() -> None:
    async with running_server() as server, playwright() as pw:
        lesson = await server.create_lesson()
        teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
        student_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        token = await server.token(lesson["id"], "s-2", "Мария Смирнова", "student")
        # A publisher only (a third browser would load this 2-core machine past
        # what loopback carries without loss).
        publisher = Bot(server.base_url, token, receive=False)
        async with (
            chromiums(pw, {}, {}) as (teacher_browser, student_browser),
            contextlib.AsyncExitStack() as stack,
        ):
            stack.push_async_callback(publisher.close)
            await publisher.connect()
            await publisher.publish([(PatternVideoTrack((40, 200, 40)), "camera")])
            teacher = await new_page(teacher_browser)
            student = await new_page(student_browser)
            await join_call(teacher, teacher_url)
            await join_call(student, student_url)
            await asyncio.gather(wait_for_media(teacher), wait_for_media(student))

            call = server.app[CALLS].get(lesson["id"])
            assert call is not None
            video = [
                c
                for c in call.router.consumers
                if c.kind == "video" and c.producer and c.sender.started
            ]
            assert len(video) == 4
            # Chromium's answer kept RTX for the video codec it receives, in each
            # m-section under its own payload type.
            for consumer in video:
                assert consumer.rtx.payload_types, consumer.sender.negotiated_codecs
            for transport in {c.sender.transport for c in video}:
                ours = [c for c in video if c.sender.transport is transport]
                types = [set(c.rtx.payload_types.values()) for c in ours]
                assert len(ours) == 2 and not types[0] & types[1], types

            # Its receiver reports echo our sender reports: an RTT, and no loss.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(c.link.rtt is None for c in video):
                await asyncio.sleep(0.25)
            for consumer in video:
                link = consumer.link
                assert link.rtt is not None and 0 <= link.rtt < 0.5, link
                assert link.reports_received >= 1 and link.packets_lost == 0

            # Packets resent as RTX reach Chromium's video stream as retransmissions.
            assert await student.evaluate(RETRANSMITTED_JS) == 0
            for consumer in video:
                last = consumer.rewriter.last_out_seq
                await consumer.on_nack([(last - i) % 65536 for i in range(RESENT, 0, -1)])
                # A subscriber's two videos share its retransmission budget: let the
                # bucket fill again before the next ones.
                await asyncio.sleep(1.0)
            deadline = time.monotonic() + 10
            received = 0
            while time.monotonic() < deadline and received < 2 * RESENT:
                received = await student.evaluate(RETRANSMITTED_JS)
                await asyncio.sleep(0.25)
            assert received >= 2 * RESENT  # for each of its two videos
            assert all(c.link.retransmitted == RESENT for c in video)
