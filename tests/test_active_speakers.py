"""Active speakers with real aiortc bots over loopback: levels from the audio level
extension aiortc's encoder writes, DTX silence, mutes.

One bot sends a loud tone, two send DTX silence, one sends a tone with its
microphone switched off; the teacher's bot reads `active_speakers` and counts
the packets it receives.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from typing import Any

from aiortc.rtp import RtpPacket

from bench.bot import Bot
from bench.media import SilentAudioTrack, ToneAudioTrack
from tests.live import LiveServer, running_server


def listed(message: dict[str, Any]) -> list[str]:
    return [s["participant_id"] for s in message["speakers"]]


async def join(server: LiveServer, lesson: str, user: str, role: str = "student") -> Bot:
    bot = Bot(server.base_url, await server.token(lesson, user, user, role), receive=False)
    await bot.connect()
    return bot


async def test_the_loud_one_is_named_within_a_second_and_never_the_silent_or_muted() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        arrivals: dict[str, list[tuple[float, RtpPacket]]] = defaultdict(list)
        teacher = Bot(
            server.base_url,
            await server.token(lesson, "t-1", "t-1", "teacher"),
            decode=False,
            on_packet=lambda pid, packet, at: arrivals[pid].append((at, packet)),
        )
        await teacher.connect()
        bots = [await join(server, lesson, f"s-{i}") for i in range(1, 5)]
        loud, quiet_a, quiet_b, muted = bots
        try:
            # Muted before it publishes: its tone must never make it a speaker.
            await muted.request(
                {"type": "media_state", "audio": False, "video": False},
                lambda m: m["type"] == "participant_updated" and m["participant"]["id"] == muted.id,
            )
            await muted.publish([(ToneAudioTrack(660), "microphone")])
            await quiet_a.publish([(SilentAudioTrack(), "microphone")])
            await quiet_b.publish([(SilentAudioTrack(), "microphone")])
            await asyncio.sleep(2.0)  # the silent ones are heard for a while first
            assert not [m for m in teacher.messages if m["type"] == "active_speakers"]

            named = teacher.wait_for(
                lambda m: m["type"] == "active_speakers" and loud.id in listed(m), timeout=10
            )
            await loud.publish([(ToneAudioTrack(440, amplitude=0.3), "microphone")])
            message = await named
            named_at = time.monotonic()
            first_packet_at = arrivals[loud.id][0][0]
            assert named_at - first_packet_at < 1.0 + 0.5  # ~1 s, with a margin for the machine
            assert listed(message) == [loud.id]
            assert 0.05 < message["speakers"][0]["level"] <= 1.0  # -13 dBov is about 0.2

            await asyncio.sleep(3.0)
            speaker_lists = [listed(m) for m in teacher.messages if m["type"] == "active_speakers"]
            assert speaker_lists == [[loud.id]]  # sent once: nothing changed since

            # DTX: the silent ones send ~2.5 packets a second, numbered without gaps.
            for bot in (quiet_a, quiet_b):
                packets = [p for at, p in arrivals[bot.id] if at > named_at]
                assert 4 <= len(packets) <= 12, len(packets)
                seqs = [p.sequence_number for p in packets]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                pairs = itertools.pairwise(packets)
                steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in pairs}
                assert min(steps) >= 19200 - 960  # 400 ms of 48 kHz between packets
            # The muted one's packets never even reach the teacher.
            assert not arrivals[muted.id]
            # A DTX gap is no loss: nobody's link is judged weak.
            assert not [m for m in teacher.messages if m["type"] == "connection_quality"]

            # A host mute ends it at the next update.
            gone = teacher.wait_for(
                lambda m: m["type"] == "active_speakers" and not m["speakers"], timeout=5
            )
            await teacher.send({"type": "mute", "participant_id": loud.id, "kind": "audio"})
            await gone
            await asyncio.sleep(1.5)
            last = [m for m in teacher.messages if m["type"] == "active_speakers"][-1]
            assert listed(last) == []
        finally:
            for bot in (*bots, teacher):
                await bot.close()


async def test_each_breakout_room_hears_of_its_own_speakers_only() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher")
        talker, roommate, elsewhere = [await join(server, lesson, f"s-{i}") for i in (1, 2, 3)]
        bots = (teacher, talker, roommate, elsewhere)
        try:
            for bot in (roommate, elsewhere):
                await bot.publish([(SilentAudioTrack(), "microphone")])
            everyone_told = [
                bot.wait_for(lambda m: m["type"] == "active_speakers" and listed(m), timeout=10)
                for bot in bots
            ]
            await talker.publish([(ToneAudioTrack(440), "microphone")])
            for told in everyone_told:  # the main room: everybody, the talker too
                assert listed(await told) == [talker.id]

            await teacher.request(
                {"type": "breakout_configure", "count": 2}, lambda m: m["type"] == "breakout"
            )
            await teacher.request(
                {
                    "type": "breakout_assign",
                    "assignments": {talker.id: "r1", roommate.id: "r1", elsewhere.id: "r2"},
                },
                lambda m: m["type"] == "breakout",
            )
            # Those who no longer share a room with the talker hear that nobody speaks.
            cleared = [
                bot.wait_for(lambda m: m["type"] == "active_speakers" and not m["speakers"])
                for bot in (teacher, elsewhere)
            ]
            await teacher.send({"type": "breakout_open", "minutes": 10})
            for told in cleared:
                await told
            await asyncio.sleep(1.5)
            for bot, expected in ((roommate, [talker.id]), (elsewhere, []), (teacher, [])):
                last = [m for m in bot.messages if m["type"] == "active_speakers"][-1]
                assert listed(last) == expected, bot.id
        finally:
            for bot in bots:
                await bot.close()
