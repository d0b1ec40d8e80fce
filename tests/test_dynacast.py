"""Dynacast end to end with bots (rooms/calls/dynacast.py, docs/protocol.md
"publish_layers").

A real server, real aiortc peers over real UDP sockets. The teacher and a pupil
publish the call page's simulcast camera as a browser does, following the server's
`publish_layers` as the call page does (bench/simulcast_publisher.py). A watching
pupil shows the other pupil small: that camera's top layer stops coming into the
server; made large, it comes back and the watcher is forwarded it; hidden, the two
smallest are sent (never fewer). A server with `[media] dynacast = false` never asks.
"""

from __future__ import annotations

import time

import pytest

import rooms.calls.dynacast
from bench.bot import Bot
from bench.simulcast_publisher import LAYERS_SIMULCAST, LayerClip, encode_layers
from rooms.calls.call import Call
from sfu.producer import Producer
from signalling.config_sections import MediaSettings
from signalling.keys import CALLS
from tests.live import LiveServer, running_server
from tests.test_thumbnail_frame_rate import class_of_three
from tests.test_track_views import consumer_of, view, views
from tests.test_weak_links import until


@pytest.fixture(scope="module")
def layers() -> tuple[LayerClip, ...]:
    return encode_layers(LAYERS_SIMULCAST, fps=30, seconds=1.0)


def sent(producer: Producer) -> list[int]:
    """The layers coming into the server now."""
    now = time.monotonic()
    return [layer.index for layer in producer.layers if layer.active(now)]


def the_call(server: LiveServer) -> Call:
    (call,) = server.app[CALLS].calls.values()
    return call


def told(bot: Bot) -> list[int]:
    return [m["layers"] for m in bot.messages if m["type"] == "publish_layers"]


async def test_a_camera_sends_only_the_layers_somebody_receives(
    layers: tuple[LayerClip, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rooms.calls.dynacast, "OFF_AFTER", 1.0)
    async with running_server() as server:
        async with class_of_three(server, layers) as (teacher, pupil, watcher):
            call = the_call(server)
            camera = call.participants[pupil.id].producers["camera"]
            teachers = call.participants[teacher.id].producers["camera"]
            await until(lambda: sent(camera) == [0, 1, 2], 15, "all three layers at first")
            # The pupil small (160x90: the smallest layer) for both who see it, the
            # teacher large.
            await views(teacher, view(pupil.id, True, 160, 90), view(watcher.id, False))
            await views(watcher, view(pupil.id, True, 160, 90), view(teacher.id, True, 640, 360))
            await until(lambda: told(pupil) == [2], 10, "the pupil told: two layers")
            await until(lambda: sent(camera) == [0, 1], 5, "the top one stops")
            assert sent(teachers) == [0, 1, 2] and told(teacher) == []
            forwarded = consumer_of(server, watcher.id, pupil.id, "camera")
            assert forwarded.layers.layer == 0

            # Made large: asked at once (no waiting), the top layer back and forwarded.
            asked = time.monotonic()
            await views(watcher, view(pupil.id, True, 640, 360))
            await until(lambda: told(pupil) == [2, 3], 3, "the pupil told: three layers")
            assert time.monotonic() - asked < 2.5
            await until(lambda: sent(camera) == [0, 1, 2], 5, "all three come again")
            await until(lambda: forwarded.layers.layer == 2, 10, "the top layer forwarded")

            # Hidden (another page of the grid) for both: the two smallest stay.
            await views(teacher, view(pupil.id, False))
            await views(watcher, view(pupil.id, False))
            await until(lambda: told(pupil)[-1:] == [2], 10, "two layers again")
            await until(lambda: sent(camera) == [0, 1], 5, "the top one stops again")


async def test_no_dynacast_when_the_server_says_so(
    layers: tuple[LayerClip, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rooms.calls.dynacast, "OFF_AFTER", 1.0)
    async with running_server(media=MediaSettings(dynacast=False)) as server:
        async with class_of_three(server, layers) as (teacher, pupil, watcher):
            camera = the_call(server).participants[pupil.id].producers["camera"]
            await views(teacher, view(pupil.id, True, 160, 90), view(watcher.id, False))
            await views(watcher, view(pupil.id, True, 160, 90), view(teacher.id, True, 640, 360))
            await until(lambda: sent(camera) == [0, 1, 2], 15, "all three layers")
            started = time.monotonic()
            await until(lambda: time.monotonic() - started > 3, 5, "a while")
            assert told(pupil) == [] and sent(camera) == [0, 1, 2]


async def test_a_publisher_that_keeps_sending_is_told_again(
    layers: tuple[LayerClip, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rooms.calls.dynacast, "OFF_AFTER", 1.0)
    async with running_server() as server:
        async with class_of_three(server, layers) as (teacher, pupil, watcher):
            pupil.on_message = None  # the pupil's camera ignores publish_layers
            camera = the_call(server).participants[pupil.id].producers["camera"]
            await views(teacher, view(pupil.id, True, 160, 90), view(watcher.id, False))
            await views(watcher, view(pupil.id, True, 160, 90), view(teacher.id, False))
            await until(lambda: told(pupil)[:1] == [2], 10, "told: two layers")
            await until(lambda: told(pupil)[:2] == [2, 2], 10, "told again")
            assert sent(camera) == [0, 1, 2]  # still all three: nothing else is forced
