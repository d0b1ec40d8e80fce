"""Slot churn: a re-used video slot never shows the previous person's picture (issue 15).

An independent client once saw a slot labelled with one pupil show another's
frozen picture for seconds: when breakout moves or a leave and a join re-used
a subscriber's m-section, the new publisher's delta frames were forwarded
before any keyframe of it (a decoder applies them to the picture it has: the
previous person's), and of several consumers that became ready a few ms
apart only the first got a keyframe request through.

Here five publishers send distinct colours and four subscribers decode every
slot with one libvpx decoder per m-section, as a client does
(bench/slot_video.py). The slots change hands many times, many within a few
ms of each other: a publisher leaves as another joins, then breakout
assignments shuffle the publishers between two rooms, round after round.
Every slot an answer gave a new source is judged by tests/slot_support.py: its
first frame of that source shows that source's colour (not the picture the
decoder held), sent within 3 s of the answer and arrived within 10 s.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any

from bench.bot import Bot
from bench.slot_video import SlotBot
from tests.live import running_server
from tests.slot_support import Outcome, Publishers, check_slots, shown

ROOM_OF_SUBSCRIBER = {"s-11": "r1", "s-12": "r1", "s-13": "r2", "s-14": "r2"}
ROUNDS = 10


async def test_a_reused_slot_shows_the_new_person_first() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        token = await server.token(lesson, "t-1", "Учитель", "teacher")
        teacher = Bot(server.base_url, token, decode=False)
        bots: list[Bot] = [teacher]
        publishers = Publishers(server, lesson)
        try:
            await teacher.connect()
            subscribers = []
            for user in ROOM_OF_SUBSCRIBER:
                token = await server.token(lesson, user, f"Имя {user}", "student")
                subscribers.append(SlotBot(server.base_url, token))
                bots.append(subscribers[-1])
                await subscribers[-1].connect()
            for user in ("s-1", "s-2", "s-3", "s-4"):
                bots.append(await publishers.join(user))
            await asyncio.gather(*(shown(s, publishers.ids(), publishers) for s in subscribers))

            # A leave and a join: the newcomer takes the slot the leaver left, for every
            # subscriber at once.
            leaver = publishers.by_user.pop("s-4")
            await leaver.leave()
            bots.append(await publishers.join("s-5"))
            await asyncio.gather(*(shown(s, publishers.ids(), publishers) for s in subscribers))

            # Breakout rounds: each assignment moves the publishers at once; every
            # subscriber's slots change hands in one offer, answered a few ms apart.
            def breakout(kind: str, **fields: Any) -> Awaitable[dict[str, Any]]:
                message = {"type": kind, **fields}
                return teacher.request(message, lambda m: m["type"] == "breakout")

            await breakout("breakout_configure", count=2)
            rooms = {"s-1": "r1", "s-2": "r1", "s-3": "r2", "s-5": "r2"}
            assignments = {
                s.id: room for s, room in zip(subscribers, ROOM_OF_SUBSCRIBER.values(), strict=True)
            }
            assignments |= {publishers.by_user[u].id: room for u, room in rooms.items()}
            await breakout("breakout_assign", assignments=assignments)
            await breakout("breakout_open")
            shuffle = random.Random(15)
            for round_ in range(ROUNDS + 1):
                if round_:
                    await asyncio.sleep(shuffle.uniform(0.1, 0.4))
                    previous = rooms
                    while rooms == previous:
                        order = shuffle.sample(sorted(rooms), len(rooms))
                        rooms = {u: ("r1" if i < 2 else "r2") for i, u in enumerate(order)}
                    moves = {publishers.by_user[u].id: room for u, room in rooms.items()}
                    await breakout("breakout_assign", assignments=moves)
                await asyncio.gather(
                    *(
                        shown(
                            s,
                            publishers.ids([u for u, r in rooms.items() if r == room]),
                            publishers,
                        )
                        for s, room in zip(subscribers, ROOM_OF_SUBSCRIBER.values(), strict=True)
                    )
                )

            outcome = Outcome()
            for bot in subscribers:
                check_slots(bot, publishers, outcome)
            assert outcome.failures == [], "\n".join(outcome.failures)
            # The run really moved pictures between people, many times, and judged them.
            assert outcome.switched >= 30, outcome
            assert outcome.lost <= outcome.reassigned // 10, outcome
        finally:
            for bot in bots:
                await bot.close()
