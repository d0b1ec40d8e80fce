"""Shared by the tests of re-used video m-sections (tests/test_slot_churn.py,
tests/test_video_slots_call.py): publishing bots with colours of their own, and
the judgement of every slot an answer gave a new source.

Who sent each frame is known from its payload (the SFU forwards payloads
byte-identical), so a busy machine handling packets late cannot blur it. For
every slot an answer gives a new source, the first frame of that source the
slot decodes must show that source's colour (not the picture the decoder
held); the publisher must have sent it within KEYFRAME_BOUND of the answer
(the keyframe request was not lost), and it must arrive within ARRIVAL_BOUND.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.bot import Bot
from bench.measure import SendLog
from bench.media import PatternVideoTrack
from bench.slot_video import RGB, SlotBot, senders
from tests.live import LiveServer

COLOURS: dict[str, tuple[int, int, int]] = {
    "s-1": (220, 30, 30),  # red
    "s-2": (30, 200, 30),  # green
    "s-3": (30, 40, 220),  # blue
    "s-4": (220, 220, 30),  # yellow
    "s-5": (210, 40, 210),  # magenta
    "t-1": (235, 235, 235),  # white: the teacher
}
# Seconds from the answer to the publisher sending the keyframe that starts the slot
# (the server's part), and to the subscriber decoding it (with this process's own
# backlog on a busy machine: generous).
KEYFRAME_BOUND, ARRIVAL_BOUND = 3.0, 10.0


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

    async def join(self, user: str, role: str = "student") -> Bot:
        token = await self.server.token(self.lesson, user, f"Имя {user}", role)
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
