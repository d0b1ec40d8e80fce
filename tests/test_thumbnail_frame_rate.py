"""Thumbnails at half the frame rate, end to end with bots (docs/protocol.md "Track
views"; sfu/temporal_layers.py).

A real server, real aiortc peers over real UDP sockets. The teacher and a pupil
publish the call page's simulcast camera as a browser does (bench/simulcast_publisher.py:
three VP8 layers, each with Chromium's three temporal layers); a watching pupil decodes
both. Shown as thumbnails, the pupil's camera comes at half the frame rate and the
teacher's (a host) at the full one; the thinned stream has no gap the watcher would ask
to have resent; made large, the pupil's camera is back at the full rate.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import av
import pytest

from bench.bot import Bot
from bench.simulcast_publisher import (
    LAYERS_SIMULCAST,
    LayerClip,
    LayeredCamera,
    encode_layers,
    publish_layered,
)
from rooms.calls.track_views import THUMBNAIL_RATE_SHARE
from sfu.consumer import Consumer
from signalling.config_sections import MediaSettings
from signalling.keys import CALLS
from tests.live import LiveServer, running_server
from tests.test_track_views import consumer_of, view, views
from tests.test_weak_links import join, until


@pytest.fixture(scope="module")
def layers() -> tuple[LayerClip, ...]:
    return encode_layers(LAYERS_SIMULCAST, fps=30, seconds=1.0)


class Decoded:
    """Frames a track decoded, with when."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def rate(self, since: float) -> float:
        recent = [t for t in self.times if t >= since]
        return len(recent) / max(1e-3, time.monotonic() - since)

    def longest_gap(self, since: float) -> float:
        recent = [since, *(t for t in self.times if t >= since), time.monotonic()]
        return max(b - a for a, b in itertools.pairwise(recent))


async def publish_camera(bot: Bot, layers: tuple[LayerClip, ...]) -> LayeredCamera:
    camera = await publish_layered(bot, layers)
    camera.start(bot.publisher)
    return camera


@asynccontextmanager
async def decoding(watcher: Bot, *people: str) -> AsyncIterator[dict[str, Decoded]]:
    decoded = {person: Decoded() for person in people}

    async def decode(person: str) -> None:
        track = await watcher.wait_track(person, "video")
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.VideoFrame)
            decoded[person].times.append(time.monotonic())

    tasks = [asyncio.create_task(decode(person)) for person in people]
    try:
        yield decoded
    finally:
        for task in tasks:
            task.cancel()


@asynccontextmanager
async def class_of_three(
    server: LiveServer, layers: tuple[LayerClip, ...]
) -> AsyncIterator[tuple[Bot, Bot, Bot]]:
    """The teacher and a pupil publishing simulcast cameras, and a watching pupil
    (decoding); cameras stopped and everyone gone afterwards."""
    lesson = await server.create_lesson()
    bots: list[Bot] = []
    cameras: list[LayeredCamera] = []
    try:
        for user, role in (("t-1", "teacher"), ("s-1", "student")):
            bots.append(await join(server, lesson, user, role, decode=False))
            cameras.append(await publish_camera(bots[-1], layers))
        bots.append(await join(server, lesson, "s-2", "student"))
        yield bots[0], bots[1], bots[2]
    finally:
        for camera in cameras:
            await camera.stop()
        for bot in reversed(bots):
            await bot.close()


async def both_small(
    server: LiveServer, watcher: Bot, teacher: Bot, pupil: Bot, decoded: dict[str, Decoded]
) -> Consumer:
    """The watcher shows both cameras small (160x90: the smallest layer of each) and
    decodes both; the consumer of the pupil's camera."""
    await views(watcher, view(teacher.id, True, 160, 90), view(pupil.id, True, 160, 90))
    await until(lambda: all(len(d.times) > 20 for d in decoded.values()), 20, "both decode")
    return consumer_of(server, watcher.id, pupil.id, "camera")


async def test_a_pupils_thumbnail_comes_at_half_the_frame_rate(
    layers: tuple[LayerClip, ...],
) -> None:
    async with running_server() as server:
        async with class_of_three(server, layers) as (teacher, pupil, watcher):
            async with decoding(watcher, teacher.id, pupil.id) as decoded:
                thumb = await both_small(server, watcher, teacher, pupil, decoded)
                host = consumer_of(server, watcher.id, teacher.id, "camera")
                assert thumb.layers.temporal.cap == 1 and host.layers.temporal.cap is None
                assert thumb.layers.preferred == host.layers.preferred == 0
                since, left_out = time.monotonic(), thumb.layers.temporal.pictures_left_out
                nacks = thumb.link.nacks_received
                await asyncio.sleep(3)
                teacher_fps, pupil_fps = (decoded[p].rate(since) for p in (teacher.id, pupil.id))
                print(f"decoded: teacher {teacher_fps:.1f} fps, pupil {pupil_fps:.1f} fps")
                assert 0.35 < pupil_fps / teacher_fps < 0.65, (pupil_fps, teacher_fps)
                assert decoded[pupil.id].longest_gap(since) < 0.5
                assert thumb.layers.temporal.pictures_left_out - left_out > 30
                # No gap in the numbering: nothing to ask again on a perfect loopback.
                assert thumb.link.nacks_received == nacks
                # The bandwidth plan counts the thumbnail at its share of the layer.
                call = server.app[CALLS].get(next(iter(server.app[CALLS].calls)))
                assert call is not None and thumb.producer and host.producer
                me = call.participants[watcher.id]
                assert me.subscriber is not None
                assert call.views.rate_shares(me) == {thumb.producer.id: THUMBNAIL_RATE_SHARE}
                pids = [host.producer.id, thumb.producer.id]
                fits = call.links._fit_videos(me, me.subscriber, pids, time.monotonic())
                host_q, thumb_q = (fit.layer_bps[0] for fit in fits)
                assert 0.45 < thumb_q / host_q < 0.75, fits  # the same clip, 0.6 of it

                # The pupil made large (the spotlight, a page of one): the full rate again.
                await views(watcher, view(pupil.id, True, 640, 360))
                await until(lambda: thumb.layers.temporal.cap is None, 5, "the cap lifted")
                await asyncio.sleep(1.5)  # the top layer's keyframe, then the layer syncs
                since = time.monotonic()
                await asyncio.sleep(2)
                teacher_fps, pupil_fps = (decoded[p].rate(since) for p in (teacher.id, pupil.id))
                print(f"pupil large: teacher {teacher_fps:.1f} fps, pupil {pupil_fps:.1f} fps")
                assert pupil_fps > 0.8 * teacher_fps, (pupil_fps, teacher_fps)
                assert not thumb.layers.temporal.active


async def test_thumbnails_at_the_full_rate_when_the_server_says_so(
    layers: tuple[LayerClip, ...],
) -> None:
    async with running_server(media=MediaSettings(thumbnail_frame_rate="full")) as server:
        async with class_of_three(server, layers) as (teacher, pupil, watcher):
            async with decoding(watcher, teacher.id, pupil.id) as decoded:
                thumb = await both_small(server, watcher, teacher, pupil, decoded)
                assert thumb.layers.temporal.cap is None and thumb.layers.preferred == 0
                since = time.monotonic()
                await asyncio.sleep(2)
                teacher_fps, pupil_fps = (decoded[p].rate(since) for p in (teacher.id, pupil.id))
                assert pupil_fps > 0.8 * teacher_fps, (pupil_fps, teacher_fps)
                assert thumb.layers.temporal.pictures_left_out == 0
