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
Who sent each frame is known from its payload (the SFU forwards payloads
byte-identical), so a busy machine handling packets late cannot blur it.
For every slot an answer gives a new source, the first frame of that source
the slot decodes must show that source's colour (not the picture the decoder
held); the publisher must have sent it within 3 s of the answer (the keyframe
request was not lost), and it must arrive within 10 s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from bench.bot import Bot
from bench.measure import SendLog
from bench.media import PatternVideoTrack
from bench.slot_video import RGB, SlotBot, senders
from tests.live import LiveServer, running_server

COLOURS: dict[str, tuple[int, int, int]] = {
    "s-1": (220, 30, 30),  # red
    "s-2": (30, 200, 30),  # green
    "s-3": (30, 40, 220),  # blue
    "s-4": (220, 220, 30),  # yellow
    "s-5": (210, 40, 210),  # magenta
}
ROOM_OF_SUBSCRIBER = {"s-11": "r1", "s-12": "r1", "s-13": "r2", "s-14": "r2"}
# Seconds from the answer to the publisher sending the keyframe that starts the slot
# (the server's part), and to the subscriber decoding it (with this process's own
# backlog on a busy machine: generous).
KEYFRAME_BOUND, ARRIVAL_BOUND = 3.0, 10.0
ROUNDS = 10


def close_to(rgb: RGB | None, expected: tuple[int, int, int], tolerance: float = 45) -> bool:
    return rgb is not None and all(
        abs(c - e) <= tolerance for c, e in zip(rgb, expected, strict=True)
    )


def rounded(rgb: RGB | None) -> tuple[int, ...] | None:
    return tuple(round(c) for c in rgb) if rgb is not None else None


class Publishers:
    """The publishing bots, their colours and send logs, by participant id."""

    def __init__(self, server: LiveServer, lesson: str) -> None:
        self.server, self.lesson = server, lesson
        self.by_user: dict[str, Bot] = {}
        self.colour: dict[str, tuple[int, int, int]] = {}
        self.logs: dict[str, SendLog] = {}

    async def join(self, user: str) -> Bot:
        token = await self.server.token(self.lesson, user, f"Имя {user}", "student")
        bot = Bot(self.server.base_url, token, decode=False)
        await bot.connect()
        await bot.publish([(PatternVideoTrack(COLOURS[user], 160, 120, fps=15), "camera")])
        assert bot.publisher is not None
        self.logs[bot.id] = log = SendLog()
        log.install(bot.publisher)
        self.by_user[user], self.colour[bot.id] = bot, COLOURS[user]
        return bot

    def ids(self, users: list[str] | None = None) -> set[str]:
        return {self.by_user[u].id for u in (users if users is not None else self.by_user)}


async def shown(bot: SlotBot, expected: set[str], publishers: Publishers) -> None:
    """Wait until `bot` answered an offer putting exactly `expected` in its video slots
    and each of those slots decoded a frame of its source since."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if bot.answers:
            last, origin = bot.answers[-1], senders(publishers.logs)
            if {p for p in last.video.values() if p} == expected and all(
                any(
                    origin.get(f.payload) == source and f.rgb is not None
                    for f in bot.frames_after(mid, last.answered_at)
                )
                for mid, source in last.video.items()
                if source
            ):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"slots of {bot.id} did not settle on {sorted(expected)}")


@dataclass
class Outcome:
    reassigned: int = 0  # slots an answer gave a new source (a first fill counts too)
    switched: int = 0  # of those, slots that showed another person's picture before
    lost: int = 0  # a packet of (or before) the new source's first frame never came: no verdict
    failures: list[str] = field(default_factory=list)


def check_slots(bot: SlotBot, publishers: Publishers, out: Outcome) -> None:
    """Judge every slot of `bot` that an answer gave a new source."""
    origin = senders(publishers.logs)
    sent_at = {
        payload: t for log in publishers.logs.values() for t, payload, _ in log.sent["video"]
    }
    previous: dict[str, str | None] = {}
    for answer in bot.answers:
        for mid, source in answer.video.items():
            if source is None or previous.get(mid) == source:
                continue
            out.reassigned += 1
            expected = publishers.colour[source]
            frames = bot.video.frames(mid)
            held = [f.rgb for f in frames if f.first_packet_at <= answer.answered_at and f.rgb]
            if held and not close_to(held[-1], expected):
                out.switched += 1
            first = next(
                (
                    f
                    for f in bot.frames_after(mid, answer.answered_at)
                    if origin.get(f.payload) == source
                ),
                None,
            )
            where = f"{bot.joined['self']['user_id'] if bot.joined else '?'} mid {mid} -> {source}"
            if first is None:
                out.failures.append(f"{where}: no frame of it")
            elif not first.intact:
                out.lost += 1  # the loopback lost a packet for good: nothing to judge
            elif sent_at[first.payload] - answer.answered_at > KEYFRAME_BOUND:
                late = sent_at[first.payload] - answer.answered_at
                out.failures.append(
                    f"{where}: its first frame was sent {late:.2f} s after the answer"
                )
            elif first.first_packet_at - answer.answered_at > ARRIVAL_BOUND:
                late = first.first_packet_at - answer.answered_at
                out.failures.append(f"{where}: its first frame came {late:.2f} s after the answer")
            elif not close_to(first.rgb, expected):
                out.failures.append(
                    f"{where}: its first frame showed {rounded(first.rgb)} (keyframe: "
                    f"{first.keyframe}), expected {expected}; the slot held "
                    f"{rounded(held[-1]) if held else None}"
                )
        previous = dict(answer.video)


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
