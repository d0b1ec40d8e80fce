"""A broken media path (docs/protocol.md "ice_restart"), with aiortc bots over real
sockets against the real server: a bot's connection is cut with nftables on its UDP
ports (as after a network change: that path never comes back), the bot asks for a new
connection and media flows again within 10 s; the others' media is not affected, and
the other subscribers see the same stream go on (no renegotiation)."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager
from typing import Any

import pytest

from bench.bot import Bot, BotError
from bench.media import PatternVideoTrack, ToneAudioTrack
from bench.nft_drop import dropping
from signalling.keys import CALLS
from tests.live import LiveServer, running_server

GREEN = (30, 200, 30)
BLUE = (30, 30, 220)


def udp_ports_cut(ports: set[int]) -> AbstractContextManager[str]:
    """Drop every UDP packet to or from these local ports."""
    listed = ", ".join(str(p) for p in sorted(ports))
    return dropping("icerestart", [f"udp dport {{ {listed} }}", f"udp sport {{ {listed} }}"])


async def bot(server: LiveServer, lesson: str, user: str, role: str = "student") -> Bot:
    made = Bot(server.base_url, await server.token(lesson, user, f"Имя {user}", role), decode=False)
    await made.connect()
    return made


async def packets_grow(bot: Bot, source: str, kind: str, by: int = 20, within: float = 10) -> float:
    """`bot` receives `by` more packets of `source`'s `kind` within `within` s: how long it took."""
    start, began = bot.packet_counts[(source, kind)], time.monotonic()
    while bot.packet_counts[(source, kind)] < start + by:
        assert time.monotonic() - began < within, f"{kind} from {source} stopped at {start}"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def all_back(bot: Bot, streams: list[tuple[str, str]], by: int = 20) -> float:
    """Every (source, kind) of `streams` reaches `bot` again (`by` packets more than now),
    within 10 s: how long the last one took."""
    start, began = {s: bot.packet_counts[s] for s in streams}, time.monotonic()
    while any(bot.packet_counts[s] < start[s] + by for s in streams):
        late = [s for s in streams if bot.packet_counts[s] < start[s] + by]
        assert time.monotonic() - began < 10, f"not back within 10 s: {late}"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def stalled(bot: Bot, source: str, kind: str, window: float = 1.5) -> bool:
    """Nothing of `source`'s `kind` reaches `bot` for `window` s, within 8 s (what was
    on its way when the path was cut drains first)."""
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        before = bot.packet_counts[(source, kind)]
        await asyncio.sleep(window)
        if bot.packet_counts[(source, kind)] == before:
            return True
    return False


@pytest.fixture
async def server() -> Any:
    async with running_server(resume_grace_seconds=30) as live:
        yield live


async def _three(server: LiveServer) -> tuple[str, Bot, Bot, Bot]:
    lesson = await server.create_lesson()
    teacher = await bot(server, lesson, "t-1", "teacher")
    pupil = await bot(server, lesson, "s-1")
    other = await bot(server, lesson, "s-2")
    await teacher.publish(
        [
            (ToneAudioTrack(440), "microphone"),
            (PatternVideoTrack(GREEN, 160, 120, fps=15), "camera"),
        ]
    )
    await pupil.publish(
        [(ToneAudioTrack(660), "microphone"), (PatternVideoTrack(BLUE, 160, 120, fps=15), "camera")]
    )
    for receiver, source in ((other, pupil), (other, teacher), (pupil, teacher), (teacher, pupil)):
        await packets_grow(receiver, source.id, "video")
    return lesson, teacher, pupil, other


async def test_a_cut_publisher_path_comes_back_on_a_new_connection(server: LiveServer) -> None:
    lesson, teacher, pupil, other = await _three(server)
    try:
        call = server.app[CALLS].get(lesson)
        assert call is not None
        participant = call.participants[pupil.id]
        old_transport = participant.publisher
        offers_before = sum(m["type"] == "subscribe_offer" for m in other.messages)
        with udp_ports_cut(Bot.udp_ports(pupil.publisher)):
            assert await stalled(other, pupil.id, "video")
            # The teacher's media to the same subscriber is not affected.
            await packets_grow(other, teacher.id, "video", within=3)
            began = time.monotonic()
            await pupil.restart_publisher()
            answered = time.monotonic() - began
            streams = [(pupil.id, "video"), (pupil.id, "audio")]
            back = await asyncio.gather(all_back(other, streams), all_back(teacher, streams))
            took = answered + max(back)
        print(
            f"publisher: media back {took:.2f} s after the restart was asked for "
            f"(answered in {answered:.2f} s)"
        )
        assert took < 10
        # A new transport; the old one closed and gone from the router.
        assert participant.publisher is not old_transport and old_transport is not None
        assert old_transport.closed and old_transport.id not in call.router.transports
        assert {
            p.app_data["source"]
            for p in call.router.producers
            if p.app_data["participant_id"] == pupil.id
        } == {"microphone", "camera"}
        # The other subscribers' consumers switched in place: no new offer for them.
        assert sum(m["type"] == "subscribe_offer" for m in other.messages) == offers_before
        # Nobody heard the pupil leave.
        assert not [m for m in other.messages if m["type"] == "participant_left"]
    finally:
        for b in (teacher, pupil, other):
            await b.close()


async def test_a_cut_subscriber_path_comes_back_on_a_new_connection(server: LiveServer) -> None:
    lesson, teacher, pupil, other = await _three(server)
    try:
        call = server.app[CALLS].get(lesson)
        assert call is not None
        old_transport = call.participants[other.id].subscriber
        with udp_ports_cut(Bot.udp_ports(other.subscriber)):
            assert await stalled(other, pupil.id, "video")
            # The pupil's publisher path is its own: the teacher still gets its video.
            await packets_grow(teacher, pupil.id, "video", within=3)
            began = time.monotonic()
            await other.restart_subscriber()
            streams = [(b.id, kind) for b in (pupil, teacher) for kind in ("video", "audio")]
            await all_back(other, streams)
            took = time.monotonic() - began
        print(f"subscriber: media back {took:.2f} s after the restart was asked for")
        assert took < 10
        assert old_transport is not None and old_transport.closed
        assert call.participants[other.id].subscriber is not old_transport
    finally:
        for b in (teacher, pupil, other):
            await b.close()


async def test_restarts_are_validated_and_rate_limited(server: LiveServer) -> None:
    lesson = await server.create_lesson()
    pupil = await bot(server, lesson, "s-1")
    try:
        # Nothing published yet: no publisher to restart.
        pupil._published = [(ToneAudioTrack(440), "microphone")]
        with pytest.raises(BotError, match="no_connection"):
            await pupil.restart_publisher()
        bad: list[dict[str, Any]] = [
            {"type": "ice_restart", "connection": "publisher"},
            {"type": "ice_restart", "connection": "subscriber", "sdp": "v=0"},
            {"type": "ice_restart", "connection": "both"},
            {"type": "ice_restart", "connection": "publisher", "sdp": "nonsense", "tracks": []},
        ]
        for message in bad:
            reply = await pupil.request(message, lambda m: False)
            assert reply["type"] == "error", reply
        codes = [r["code"] for r in pupil.messages if r["type"] == "error"][-4:]
        assert codes[:3] == ["bad_message"] * 3 and codes[3] in ("no_connection", "bad_sdp")
        await pupil.restart_subscriber()
        with pytest.raises(BotError, match="rate_limited"):
            await pupil.restart_subscriber()
        # Still in the call and served.
        pong = await pupil.request({"type": "ping"}, lambda m: m["type"] == "pong")
        assert pong["type"] == "pong"
    finally:
        await pupil.close()
