"""Chromium as the subscriber of the sending side (issue 16): RTX negotiated and
understood, receiver reports that give each outgoing stream its RTT and loss.

Chromium's link here is clean loopback, so nothing is lost by itself: the server
resends a few recent packets as if a NACK had asked for them, and Chromium's own
getStats must count them as retransmissions it received.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from signalling.keys import CALLS
from tests.browser.harness import (
    chromium,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)

pytestmark = pytest.mark.browser

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
        async with chromium(pw) as teacher_browser, chromium(pw) as student_browser:
            teacher = await new_page(teacher_browser)
            student = await new_page(student_browser)
            await join_call(teacher, teacher_url)
            await join_call(student, student_url)
            await asyncio.gather(wait_for_media(teacher), wait_for_media(student))

            call = server.app[CALLS].get(lesson["id"])
            assert call is not None
            video = [c for c in call.router.consumers if c.kind == "video" and c.producer]
            assert len(video) == 2
            # Chromium's answer kept RTX for the video codec it receives.
            for consumer in video:
                assert consumer.rtx_payload_types, consumer.sender.negotiated_codecs

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
                await consumer.on_nack([(last - i) % 65536 for i in range(5, 0, -1)])
            deadline = time.monotonic() + 10
            received = 0
            while time.monotonic() < deadline and received < 5:
                received = await student.evaluate(RETRANSMITTED_JS)
                await asyncio.sleep(0.25)
            assert received >= 5
            assert all(c.link.retransmitted == 5 for c in video)
