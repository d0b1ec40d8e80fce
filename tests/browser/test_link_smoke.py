"""Chromium on a test host behind its own link (bench/links.py) joins a lesson."""

from __future__ import annotations

import pytest

from bench.links import LinkSpec, Testbed
from tests.browser.harness import (
    CHROMIUM,
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)

pytestmark = pytest.mark.browser


async def test_browser_on_a_shaped_host_link_gets_media() -> None:
    with Testbed() as bed:
        pupil_host = bed.add_host(LinkSpec(rate_kbit=3000, queue_ms=100))
        async with running_server(host=pupil_host.gateway) as server, playwright() as pw:
            lesson = await server.create_lesson()
            teacher_url = await server.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
            pupil_url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
            origin = server.base_url
            remote = pupil_host.executable(CHROMIUM)
            async with chromiums(
                pw, {"origin": origin}, {"executable": remote, "origin": origin}
            ) as (teacher_browser, pupil_browser):
                teacher = await new_page(teacher_browser)
                pupil = await new_page(pupil_browser)
                await join_call(teacher, teacher_url)
                await join_call(pupil, pupil_url)
                stats = await wait_for_media(pupil)
                assert stats["video"]["framesDecoded"] > 10
                sent = pupil_host.counters()
                # The pupil's media crossed its link: what the server sent it was counted.
                assert sent.packets_to_host > 200
                assert sent.packets_from_host > 200
