"""Bounded video in a call (issue 17): a subscriber's video m-sections are bounded by
what its page shows, re-used as the page changes, never showing the wrong person.

A server bounded at two cameras per subscriber (`[media] video_slots = 2`), a
teacher and five pupils publishing cameras of distinct colours, a pupil who
receives and decodes every video m-section (bench/slot_video.py). The
teacher's camera is pinned (a host's: every page shows it); of the pupils' five,
two reach the receiver at a time. The receiver's page then shows other pupils
(`track_view`, as the call page's grid pages do): the shown ones take the
m-sections of the hidden ones in one offer, the receiver's connection never
has more than 3 video m-sections, and every re-used m-section's first frame of
its new source shows that source's colour (tests/slot_support.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.bot import Bot
from bench.slot_video import SlotBot
from signalling.config_sections import MediaSettings
from tests.live import running_server
from tests.slot_support import Outcome, Publishers, check_slots, shown

PUPILS = ("s-1", "s-2", "s-3", "s-4", "s-5")


def video_sections(bot: SlotBot) -> int:
    assert bot.subscriber is not None
    return sum(t.kind == "video" for t in bot.subscriber.getTransceivers())


def views(publishers: Publishers, shown_users: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "participant_id": publishers.by_user[u].id,
            "source": "camera",
            "visible": u in shown_users,
        }
        | ({"width": 160, "height": 120} if u in shown_users else {})
        for u in PUPILS
    ]


async def test_a_page_of_cameras_takes_the_m_sections_of_the_hidden_ones() -> None:
    media = replace(MediaSettings(), video_slots=2)
    async with running_server(media=media) as server:
        lesson = await server.create_lesson()
        publishers = Publishers(server, lesson)
        receiver = SlotBot(
            server.base_url, await server.token(lesson, "s-11", "Зритель", "student")
        )
        bots: list[Bot] = [receiver]
        try:
            await receiver.connect()
            bots.append(await publishers.join("t-1", role="teacher"))
            for user in PUPILS:
                bots.append(await publishers.join(user))
            teacher = publishers.by_user["t-1"].id
            # Nothing told yet: the first two pupils and the teacher's pinned camera.
            await shown(receiver, publishers.ids(["t-1", "s-1", "s-2"]), publishers)
            assert video_sections(receiver) == 3

            pages = [{"s-3", "s-4"}, {"s-5", "s-1"}, {"s-2", "s-3"}]
            for page in pages:
                await receiver.send({"type": "track_view", "views": views(publishers, page)})
                await shown(receiver, publishers.ids(["t-1", *page]), publishers)
                assert video_sections(receiver) == 3  # re-used, never added
                # The teacher's camera kept its m-section all along.
                assert all(teacher in a.video.values() for a in receiver.answers)

            outcome = Outcome()
            check_slots(receiver, publishers, outcome)
            assert outcome.failures == [], "\n".join(outcome.failures)
            # Pictures really moved between people: each page flip re-used two m-sections.
            assert outcome.switched >= 2 * len(pages) - 1, outcome
        finally:
            for bot in bots:
                await bot.close()
