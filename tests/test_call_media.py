"""Bots join a lesson through the real HTTP API and WebSocket; media goes through the SFU."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bench.bot import Bot
from bench.media import PatternVideoTrack, ToneAudioTrack, dominant_frequency, mean_rgb
from sfu.aiortc_hooks import ForwardingReceiver
from signalling.keys import CALLS
from tests.live import running_server

RED = (220, 30, 30)
BLUE = (30, 40, 220)


async def collect_audio(track, seconds: float) -> tuple[np.ndarray, int]:
    chunks, rate = [], 48000
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = await asyncio.wait_for(track.recv(), 5)
        rate = frame.sample_rate
        data = frame.to_ndarray()
        # packed interleaved stereo -> first channel
        chunks.append(data.reshape(-1, len(frame.layout.channels))[:, 0])
    return np.concatenate(chunks), rate


async def decoded_colour(track, frames: int = 15) -> tuple[float, float, float]:
    colour = (0.0, 0.0, 0.0)
    for _ in range(frames):
        frame = await asyncio.wait_for(track.recv(), 5)
        colour = mean_rgb(frame)
    return colour


def close_to(colour: tuple[float, ...], expected: tuple[int, ...], tolerance: float = 40) -> bool:
    return all(abs(c - e) <= tolerance for c, e in zip(colour, expected, strict=True))


async def test_teacher_and_student_receive_each_others_pattern_and_tone() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = Bot(
            server.base_url, await server.token(lesson, "t-1", "Анна Петровна", "teacher")
        )
        student = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
        try:
            joined = await teacher.connect()
            assert joined["self"]["host"] is True
            await teacher.publish(
                [(ToneAudioTrack(440), "microphone"), (PatternVideoTrack(RED), "camera")]
            )
            joined = await student.connect()
            assert joined["self"]["host"] is False
            assert [p["id"] for p in joined["participants"]] == [teacher.id]
            await student.publish(
                [(ToneAudioTrack(1000), "microphone"), (PatternVideoTrack(BLUE), "camera")]
            )

            s_video = await student.wait_track(teacher.id, "video")
            s_audio = await student.wait_track(teacher.id, "audio")
            t_video = await teacher.wait_track(student.id, "video")
            t_audio = await teacher.wait_track(student.id, "audio")

            assert close_to(await decoded_colour(s_video), RED)
            assert close_to(await decoded_colour(t_video), BLUE)
            samples, rate = await collect_audio(s_audio, 1.0)
            assert abs(dominant_frequency(samples[-rate // 2 :], rate) - 440) < 15
            samples, rate = await collect_audio(t_audio, 1.0)
            assert abs(dominant_frequency(samples[-rate // 2 :], rate) - 1000) < 15

            # The server forwarded packets without a decoder on its side.
            call = server.app[CALLS].get(lesson)
            assert call is not None
            producers = call.router.producers
            assert len(producers) == 4
            for producer in producers:
                receiver = producer._receiver
                assert isinstance(receiver, ForwardingReceiver)
                assert receiver._RTCRtpReceiver__decoder_thread is None
                assert producer.packets_received > 0
            consumers = call.router.consumers
            assert len(consumers) == 4
            assert all(c.packets_sent > 0 for c in consumers)
            # Over plain UDP candidates every packet takes the synchronous path.
            assert all(c.fast_sent > 0 for c in consumers)
        finally:
            await student.leave()
            await teacher.leave()


async def test_people_come_and_go_without_new_connections() -> None:
    """Slots are reused by renegotiation: one subscriber connection for the whole call."""
    async with running_server() as server:
        lesson = await server.create_lesson()

        async def bot(user: str, role: str = "student") -> Bot:
            b = Bot(server.base_url, await server.token(lesson, user, user, role))
            await b.connect()
            return b

        teacher = await bot("t-1", "teacher")
        bots = [teacher]
        try:
            first = await bot("s-1")
            bots.append(first)
            await first.publish(
                [(ToneAudioTrack(500), "microphone"), (PatternVideoTrack(RED), "camera")]
            )
            track = await teacher.wait_track(first.id, "video")
            assert close_to(await decoded_colour(track), RED)
            subscriber_pc = teacher.subscriber
            mids = {t.mid for t in subscriber_pc.getTransceivers()}

            left = teacher.wait_for(lambda m: m["type"] == "participant_left")
            await first.leave()
            bots.remove(first)
            assert (await left)["participant_id"] == first.id

            second = await bot("s-2")
            bots.append(second)
            await second.publish(
                [(ToneAudioTrack(700), "microphone"), (PatternVideoTrack(BLUE), "camera")]
            )
            track = await teacher.wait_track(second.id, "video")
            assert close_to(await decoded_colour(track, frames=30), BLUE)
            # Same peer connection, same m-sections: renegotiation only.
            assert teacher.subscriber is subscriber_pc
            assert {t.mid for t in subscriber_pc.getTransceivers()} == mids
            assert teacher.track_of(first.id, "video") is None
        finally:
            for b in bots:
                await b.leave()


async def test_late_joiner_receives_every_publisher() -> None:
    """Several m-sections added in one offer all carry media (max-bundle on our side)."""
    async with running_server() as server:
        lesson = await server.create_lesson()
        bots: list[Bot] = []

        async def bot(user: str, role: str = "student") -> Bot:
            b = Bot(server.base_url, await server.token(lesson, user, user, role))
            bots.append(b)
            await b.connect()
            return b

        try:
            red = await bot("t-1", "teacher")
            await red.publish([(PatternVideoTrack(RED), "camera")])
            blue = await bot("s-1")
            await blue.publish([(PatternVideoTrack(BLUE), "camera")])
            late = await bot("s-2")
            assert close_to(await decoded_colour(await late.wait_track(red.id, "video")), RED)
            assert close_to(await decoded_colour(await late.wait_track(blue.id, "video")), BLUE)
        finally:
            for b in bots:
                await b.leave()
