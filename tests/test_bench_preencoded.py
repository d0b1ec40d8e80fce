"""Pre-encoded bench media (bench/preencoded.py): a bot's replayed camera answers keyframe
requests as a browser's encoder does, so what a test measures is the server, not how far
the clip's next keyframe happens to be."""

from __future__ import annotations

import asyncio
import time

import av
import pytest

from bench.bot import Bot
from bench.preencoded import EncodedClip, PreEncodedTrack, encode_video
from tests.live import running_server

FPS = 15


@pytest.fixture(scope="module")
def clip() -> EncodedClip:
    """4 s at 15 fps, a keyframe every 2 s: at frames 0 and 30."""
    return encode_video(160, 120, FPS, seconds=4, bitrate=100_000, keyframe_interval=2, fast=True)


@pytest.fixture(scope="module")
def rare_keyframes() -> EncodedClip:
    """One keyframe in a 10 s loop."""
    return encode_video(160, 120, FPS, seconds=10, bitrate=100_000, keyframe_interval=10, fast=True)


async def test_a_keyframe_request_skips_the_replay_ahead_to_the_clips_next_keyframe(
    clip: EncodedClip,
) -> None:
    assert [i for i, key in enumerate(clip.keyframes) if key] == [0, 30]
    track = PreEncodedTrack(clip)
    sent = [await track.recv() for _ in range(3)]
    assert [bytes(p) for p in sent] == list(clip.packets[:3])
    track.keyframe_requested()
    answer, after = await track.recv(), await track.recv()
    assert bytes(answer) == clip.packets[30]
    assert bytes(after) == clip.packets[31]
    # The answer takes the next frame's time; it came 27 frames early, so the frames
    # after it wait until the clip's bitrate has paid for it.
    ticks = 90000 // FPS
    assert [p.pts for p in (*sent, answer)] == [i * ticks for i in range(4)]
    assert after.pts >= 6 * ticks, after.pts / ticks
    assert track.keyframes_sent_early == 1
    # A request on a keyframe's own place costs no skip; a later one wraps the loop.
    for _ in range(26):
        await track.recv()  # frames 32..57
    track.keyframe_requested()
    assert bytes(await track.recv()) == clip.packets[0]
    assert track.keyframes_sent_early == 2


def bitrate_of(packets: list[av.Packet], first_pts: int = 0) -> float:
    seconds = (packets[-1].pts + 90000 // FPS - first_pts) / 90000
    return sum(len(bytes(p)) for p in packets) * 8 / seconds


async def test_the_clip_plays_at_its_bitrate_and_one_request_costs_nothing(
    clip: EncodedClip,
) -> None:
    """Its own keyframes never wait; a joining subscriber's one request moves the
    keyframes' phase, not the bitrate (the first seconds' rates are the server's first
    cut: a replay that dropped frames for it read 0.78 of the clip there)."""
    track = PreEncodedTrack(clip)
    played = [await track.recv() for _ in range(40)]  # its keyframes at 0 and 30
    assert [p.pts for p in played] == [i * 90000 // FPS for i in range(len(played))]
    track.keyframe_requested()  # 10 frames after the clip's last keyframe
    after = [await track.recv() for _ in range(2 * FPS)]
    assert bytes(after[0]) == clip.packets[0]
    assert 0.9 * clip.bitrate < bitrate_of(after, after[0].pts) < 1.1 * clip.bitrate


async def test_a_storm_of_keyframe_requests_does_not_raise_the_bitrate(clip: EncodedClip) -> None:
    track = PreEncodedTrack(clip)
    packets = []
    for frame in range(45):  # a request every 5th frame sent
        if frame % 5 == 4:
            track.keyframe_requested()
        packets.append(await track.recv())
    keyframes = sum(bytes(p) in (clip.packets[0], clip.packets[30]) for p in packets)
    assert keyframes >= 8  # against 2 in 3 s of the clip itself
    assert bitrate_of(packets) < 1.2 * clip.bitrate, (bitrate_of(packets), clip.bitrate)


async def test_a_subscriber_joining_mid_clip_gets_its_first_picture_at_once(
    rare_keyframes: EncodedClip,
) -> None:
    """The server asks the publisher for a keyframe for a new subscriber; the bot's
    sender hands the PLI to its track (sfu/aiortc_hooks.py `on_keyframe_request`)."""
    async with running_server() as server:
        lesson = await server.create_lesson()
        camera = PreEncodedTrack(rare_keyframes)
        teacher = Bot(server.base_url, await server.token(lesson, "t-1", "Учитель", "teacher"))
        student = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
        try:
            await teacher.connect()
            await teacher.publish([(camera, "camera")])
            await asyncio.sleep(1.5)  # the clip's own next keyframe is 8.5 s away now
            joined_at = time.monotonic()
            await student.connect()
            track = await student.wait_track(teacher.id, "video")
            await asyncio.wait_for(track.recv(), 5)
            waited = time.monotonic() - joined_at
        finally:
            await student.close()
            await teacher.close()
    assert camera.keyframes_sent_early >= 1
    assert waited < 6, waited
