"""Two Chromium pages whose WebSockets reach different nodes (issue 13): two real nodes
on one real redis-server, the lesson held by the first; the pupil's page is served by the
second, whose WebSocket is relayed to the first (signalling/ws_relay.py). Both pages are
in one call and decode each other; the pupil's media connections are the owning node's;
a chat message crosses between them."""

from __future__ import annotations

import asyncio

import pytest

from signalling.config_cluster import ClusterSettings
from signalling.keys import CALLS, MEDIA, NODE
from tests.browser.harness import (
    chromiums,
    join_call,
    new_page,
    playwright,
    running_server,
    wait_for_media,
)
from tests.redis_server import redis_server

pytestmark = pytest.mark.browser

# Slow beats and a long stale time: a busy machine must not make a node look dead.
BEAT, STALE = 0.5, 15.0


def cluster(node_id: str) -> ClusterSettings:
    return ClusterSettings(node_id=node_id, heartbeat_seconds=BEAT, stale_after_seconds=STALE)


async def test_pages_on_two_nodes_are_in_one_call_and_decode_each_other() -> None:
    async with (
        redis_server() as url,
        running_server(redis_url=url, cluster=cluster("n1")) as owner,
        running_server(redis_url=url, cluster=cluster("n2")) as other,
        playwright() as pw,
    ):
        lesson = await owner.create_lesson()
        # Placed for a minute (as GET /node places it): the pages take seconds to join.
        assert await owner.app[NODE].placement.claim(lesson["id"], "n1", 60) == "n1"
        teacher_url = await owner.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
        pupil_url = await other.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
        assert pupil_url.startswith(other.base_url + "/")  # the page is the second node's
        async with chromiums(pw, {}, {}) as (tb, pb):
            teacher, pupil = await new_page(tb), await new_page(pb)
            await join_call(teacher, teacher_url)
            await join_call(pupil, pupil_url)
            teacher_stats, pupil_stats = await asyncio.gather(
                wait_for_media(teacher), wait_for_media(pupil)
            )
            assert teacher_stats["video"]["framesDecoded"] > 10
            assert pupil_stats["video"]["framesDecoded"] > 10

            # One call, on the owning node: both people there, none on the other node,
            # whose app carries no media at all (the pupil's WebSocket only passes through).
            (call,) = owner.app[CALLS].calls.values()
            assert sorted(p.user_id for p in call.participants.values()) == ["s-1", "t-1"]
            assert not other.app[CALLS].calls and not other.app[MEDIA].routers

            # A chat message from the relayed page reaches the teacher's page.
            await pupil.locator("#toggle-chat").click()
            await pupil.locator("#chat-input").fill("Здравствуйте, я через другой узел")
            await pupil.locator("#chat-input").press("Enter")
            await teacher.wait_for_function(
                "() => window.urok.chat.some((m) => m.text.includes('через другой узел'))",
                timeout=15000,
            )
