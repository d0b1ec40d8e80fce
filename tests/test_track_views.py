"""Adaptive subscription and "save data" end to end with bots (docs/protocol.md
"Track views", "Save data").

A real server, real aiortc peers over real UDP sockets. What is forwarded is
counted where it leaves the server (each consumer's packets) and where it
arrives (the watching bot's packets and bytes); a video shown again must decode.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import av
import pytest

from bench.bot import Bot
from bench.media import PatternVideoTrack, mean_rgb
from bench.preencoded import BenchMedia, PreEncodedTrack, prepare_media
from rooms.calls.track_views import layer_for_size
from sfu.consumer import Consumer
from signalling.keys import CALLS
from tests.live import LiveServer, running_server
from tests.test_weak_links import join, paused_ids, until

# Bytes a packet costs on the link besides its RTP payload: RTP header (12), SRTP
# tag (10), UDP (8) and IPv4 (20).
PACKET_OVERHEAD = 50
SAVE_DATA_LIMIT_BPS = 600_000


@pytest.fixture(scope="module")
def media() -> BenchMedia:
    """Pre-encoded media at a camera's usual rate, so the bots only packetize."""
    return prepare_media(
        audio_seconds=60, width=320, height=240, video_seconds=2, video_bitrate=300_000
    )


def test_the_smallest_layer_that_covers_the_size() -> None:
    # The call page's camera: 160x90, 320x180, 640x360 (device pixels).
    assert layer_for_size(3, 0, 0) == 0
    assert layer_for_size(3, 160, 90) == 0
    assert layer_for_size(3, 161, 90) == 1
    assert layer_for_size(3, 120, 100) == 1  # the height decides too
    assert layer_for_size(3, 320, 180) == 1
    assert layer_for_size(3, 500, 200) == 2
    assert layer_for_size(3, 1920, 1080) == 2  # larger than any: the top one
    assert layer_for_size(2, 300, 160) == 0  # two layers: 320x180 and 640x360
    assert layer_for_size(2, 400, 160) == 1
    assert layer_for_size(1, 1920, 1080) == 0


def consumer_of(server: LiveServer, viewer: str, owner: str, source: str) -> Consumer:
    (call,) = server.app[CALLS].calls.values()
    producer = call.participants[owner].producers[source]
    subscriber = call.participants[viewer].subscriber
    assert subscriber is not None
    (consumer,) = [c for c in subscriber.consumers if c.producer is producer]
    return consumer


def view(owner: str, visible: bool, width: int = 0, height: int = 0) -> dict[str, Any]:
    return {
        "participant_id": owner,
        "source": "camera",
        "visible": visible,
        "width": width,
        "height": height,
    }


async def views(bot: Bot, *entries: dict[str, Any]) -> None:
    """Send a track_view and wait until the server has handled it (the ping after it)."""
    await bot.send({"type": "track_view", "views": list(entries)})
    await bot.request({"type": "ping"}, lambda m: m["type"] == "pong")


async def test_a_hidden_video_is_not_sent_and_comes_back_from_a_keyframe() -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher", decode=False)
        pupil = await join(server, lesson, "s-1", "student", decode=False)
        await teacher.publish([(PatternVideoTrack((200, 30, 30), 160, 120, 15), "camera")])
        await pupil.publish([(PatternVideoTrack((30, 30, 200), 160, 120, 15), "camera")])
        watcher = await join(server, lesson, "s-2", "student")
        frames: list[tuple[float, tuple[float, float, float]]] = []

        async def decode() -> None:
            track = await watcher.wait_track(teacher.id, "video")
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                frames.append((time.monotonic(), mean_rgb(frame)))

        decoding = asyncio.create_task(decode())
        try:
            await until(lambda: len(frames) > 5, 20, "the teacher's camera decodes")
            hidden = consumer_of(server, watcher.id, teacher.id, "camera")
            shown = consumer_of(server, watcher.id, pupil.id, "camera")

            # The teacher's tile is on another page of the grid: nothing of it is sent.
            await views(watcher, view(teacher.id, False), view(pupil.id, True, 150, 84))
            assert hidden.paused and not shown.paused
            await asyncio.sleep(0.3)  # what was in flight
            sent_hidden, sent_shown = hidden.packets_sent, shown.packets_sent
            await until(lambda: shown.packets_sent - sent_shown > 15, 10, "the other flows on")
            assert hidden.packets_sent - sent_hidden <= 2
            # A hidden video is the page's own doing: not reported as held back.
            assert not any(
                teacher.id in paused_ids(m)
                for m in watcher.messages
                if m["type"] == "connection_quality"
            )

            # Shown again: forwarded from a keyframe, so it decodes at once.
            shown_at = time.monotonic()
            await views(watcher, view(teacher.id, True, 640, 360))
            assert not hidden.paused
            await until(lambda: any(t > shown_at + 0.1 for t, _ in frames), 5, "decoded once shown")
            red, green, blue = [rgb for t, rgb in frames if t > shown_at + 0.1][-1]
            assert red > 120 and green < 80 and blue < 80

            # The size picks the layer wanted (one layer here: bots send no simulcast;
            # which layer covers a size is the unit test above).
            assert hidden.layers.preferred == 0  # layer_for_size(1, ...)

            # Somebody unknown is refused, the other views still count.
            error = await watcher.request(
                {
                    "type": "track_view",
                    "views": [view("p_nobody", True), view(teacher.id, False)],
                },
                lambda m: False,
            )
            assert error["type"] == "error" and error["code"] == "unknown_participant"
            assert hidden.paused
            for bad in (
                {"type": "track_view", "views": []},
                {"type": "track_view", "views": [{**view(teacher.id, True), "width": -5}]},
                {"type": "track_view", "views": [view(teacher.id, True)] * 129},
                {"type": "save_data", "mode": "everything"},
            ):
                error = await watcher.request(bad, lambda m: False)
                assert error["type"] == "error" and error["code"] == "bad_message", bad
        finally:
            decoding.cancel()
            for bot in (watcher, pupil, teacher):
                await bot.close()


async def test_save_data_keeps_audio_and_the_screen_or_one_video(media: BenchMedia) -> None:
    async with running_server() as server:
        lesson = await server.create_lesson()
        teacher = await join(server, lesson, "t-1", "teacher", decode=False)
        pupils = [await join(server, lesson, f"s-{n}", "student", decode=False) for n in (1, 2)]
        await teacher.publish(
            [
                (PreEncodedTrack(media.audio), "microphone"),
                (PreEncodedTrack(media.video), "camera"),
                (PreEncodedTrack(media.video), "screen"),
            ]
        )
        await teacher.send({"type": "media_state", "audio": True, "video": True, "screen": True})
        for pupil in pupils:
            await pupil.publish([(PreEncodedTrack(media.video), "camera")])
        received: list[tuple[float, int]] = []
        watcher = await join(
            server,
            lesson,
            "s-3",
            "student",
            decode=False,
            on_packet=lambda _, packet, at: received.append((at, len(packet.payload))),
        )
        cameras = [teacher.id, *(p.id for p in pupils)]
        (call,) = server.app[CALLS].calls.values()
        screen = call.participants[teacher.id].producers["screen"]

        def sent(owner: str, source: str) -> int:
            """Video packets of `owner`'s `source` the server sent the watcher (the bot
            counts by person and kind: a camera and a screen are both video)."""
            return consumer_of(server, watcher.id, owner, source).packets_sent

        def camera_packets() -> dict[str, int]:
            return {who: sent(who, "camera") for who in cameras}

        async def downlink(seconds: float = 4.0) -> tuple[float, dict[str, int], int, int]:
            """bit/s to the watcher, camera packets, screen packets sent, audio packets
            (over two loops of the clip: its keyframe every 2 s is a third of its bytes)."""
            # What was in flight; a video given back waits for its keyframe (the bots
            # answer the server's request by skipping to their clip's next one).
            await asyncio.sleep(0.5)
            start, before = time.monotonic(), camera_packets()
            screen_before = sent(teacher.id, "screen")
            audio_before = watcher.packet_counts[(teacher.id, "audio")]
            await asyncio.sleep(seconds)
            bits = sum(size + PACKET_OVERHEAD for at, size in received if at >= start) * 8
            after = camera_packets()
            return (
                bits / (time.monotonic() - start),
                {who: after[who] - before[who] for who in cameras},
                sent(teacher.id, "screen") - screen_before,
                watcher.packet_counts[(teacher.id, "audio")] - audio_before,
            )

        try:
            await until(
                lambda: (
                    watcher.packet_counts[(teacher.id, "video")] > 60
                    and all(watcher.packet_counts[(p.id, "video")] > 30 for p in pupils)
                ),
                20,
                "every camera and the screen",
            )
            assert min(camera_packets().values()) > 30 and sent(teacher.id, "screen") > 30
            everything, _, _, _ = await downlink()

            reply = await watcher.request(
                {"type": "save_data", "mode": "audio_screen"},
                lambda m: m["type"] == "connection_quality",
            )
            assert reply["save_data"] == "audio_screen"
            assert paused_ids(reply) == set(cameras)  # shown as paused, not as frozen
            bps, flow, screen_sent, audio = await downlink()
            print(f"everything {everything / 1e3:.0f} kbit/s, audio + screen {bps / 1e3:.0f}")
            assert max(flow.values()) <= 2 and screen_sent > 30 and audio > 50, (flow, audio)
            assert bps < SAVE_DATA_LIMIT_BPS < everything, (bps, everything)

            # One video: the shared screen comes first...
            reply = await watcher.request(
                {"type": "save_data", "mode": "one_video"},
                lambda m: m["type"] == "connection_quality" and m["save_data"] == "one_video",
            )
            bps, flow, screen_sent, audio = await downlink()
            assert max(flow.values()) <= 2 and screen_sent > 30 and audio > 50, (flow, audio)
            assert bps < SAVE_DATA_LIMIT_BPS, bps
            # ... but the host's spotlight wins: that camera only.
            first = pupils[0].id
            await teacher.send({"type": "spotlight", "participant_id": first, "source": "camera"})
            subscriber = call.participants[watcher.id].subscriber
            assert subscriber is not None
            await until(lambda: screen.id in subscriber.held, 5, "the screen held back")
            bps, flow, screen_sent, audio = await downlink()
            print(f"one video {bps / 1e3:.0f} kbit/s")
            assert flow[first] > 10 and flow[teacher.id] <= 2 and flow[pupils[1].id] <= 2, flow
            assert screen_sent <= 2 and audio > 50, (screen_sent, audio)
            assert bps < SAVE_DATA_LIMIT_BPS, bps

            reply = await watcher.request(
                {"type": "save_data", "mode": "off"},
                lambda m: m["type"] == "connection_quality" and m["save_data"] == "off",
            )
            assert reply["paused"] == []
            _, flow, screen_sent, _ = await downlink(2.0)
            assert min(flow.values()) > 10 and screen_sent > 20, (flow, screen_sent)
        finally:
            for bot in (watcher, *pupils, teacher):
                await bot.close()
