"""The allocator on real simulcast producers and consumers: a layer steps down (at a
keyframe of the lower layer) before any video is held back.

Real ForwardingReceiver, Producer and Consumer as in tests/test_sfu_simulcast.py
(synthetic VP8 packets, the network edge a WireRecorder); the layers' bitrates
are measured at the producers (rooms/calls/video_rates.py) and planned by
rooms/layer_fit.py, whose layers are given to the consumers as
`SubscriberTransport.prefer_layer` gives them, and whose holds pause them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

from rooms.calls.video_rates import VideoRates
from rooms.layer_fit import HELD, FitSettings, FitVideo, LayerFit
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.simulcast import RidDemux
from tests.sfu_support import RTX_IN, VP8_IN, WireRecorder, make_consumer, publish
from tests.test_sfu_simulcast import RIDS, Publisher, settle

Videos = dict[str, tuple[Producer, Publisher, Consumer, WireRecorder]]
# Packets per frame of each layer: the upper layers weigh more, as a browser's do.
PACKETS = {0: 1, 1: 3, 2: 8}


async def producer_of(producer_id: str, wire: WireRecorder) -> tuple[Producer, Publisher]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", wire))  # type: ignore[arg-type]
    receiver._set_rtcp_ssrc(1111)
    receiver.rids = RidDemux(RIDS)
    await receiver.receive(RTCRtpReceiveParameters(codecs=[VP8_IN, RTX_IN], muxId="0"))
    producer = Producer(producer_id, "video", receiver, {"source": "camera"}, 0.0)
    return producer, Publisher(receiver)


def current(consumer: Consumer) -> int | None:
    """The layer the consumer forwards now (None: waiting for a first keyframe)."""
    selector = consumer.layers.selector
    assert selector is not None
    return selector.current


async def frame(publisher: Publisher, key: frozenset[int] = frozenset()) -> None:
    for layer, count in PACKETS.items():
        packets = [publisher.packet(layer, key=layer in key and n == 0) for n in range(count)]
        await publish(publisher.receiver, *packets)


async def test_a_layer_steps_down_before_a_video_is_held() -> None:
    pub_wire = WireRecorder()
    videos: Videos = {}
    for name in ("pupil", "teacher"):  # least important first
        producer, publisher = await producer_of(name, pub_wire)
        wire = WireRecorder()
        consumer = await make_consumer(wire)
        consumer.set_target_layer(2)  # the tiles are large
        consumer.attach(producer)
        videos[name] = (producer, publisher, consumer, wire)

    async def frames(count: int, key: frozenset[int] = frozenset()) -> None:
        for _ in range(count):
            for _, publisher, _, _ in videos.values():
                await frame(publisher, key)
        await settle()

    await frames(1, frozenset({0, 1, 2}))
    await frames(4)
    assert all(current(c) == 2 for _, _, c, _ in videos.values())

    # Each layer's bitrate as the producers measure it.
    rates = VideoRates()
    producers = [p for p, _, _, _ in videos.values()]
    start = time.monotonic()
    rates.update(producers, start)
    await frames(10)
    now = start + 1.0
    rates.update(producers, now)
    fit_videos = [FitVideo(p.id, rates.layer_bps(p, now), 2) for p in producers]
    pupil_rates = fit_videos[0].layer_bps
    assert 0 < pupil_rates[0] < pupil_rates[1] < pupil_rates[2]

    fit = LayerFit(FitSettings(over_for=0.0, settle_seconds=1.0))
    estimate = pupil_rates[0] / 2  # far below even the lowest layers
    plans = []
    for second in range(5):  # one change a second (settle_seconds=1)
        if fit.step(now + second, estimate, fit_videos, congested=True):
            plans.append(tuple(fit.layer(v) for v in fit_videos))
            for video in fit_videos:  # as TrackViews and the hold set pass them on
                _, _, consumer, _ = videos[video.producer_id]
                layer = fit.layer(video)
                if layer == HELD:
                    consumer.pause()
                else:
                    consumer.set_target_layer(layer)
            if len(plans) == 1:
                await first_step_is_a_layer_switch(videos, frames)
    assert plans == [(1, 2), (0, 2), (0, 1), (0, 0), (HELD, 0)]

    pupil_wire, teacher_wire = videos["pupil"][3], videos["teacher"][3]
    before = len(pupil_wire.rtp()), len(teacher_wire.rtp())
    await frames(3, frozenset({0, 1, 2}))
    assert len(pupil_wire.rtp()) == before[0]  # held back: nothing more
    assert len(teacher_wire.rtp()) > before[1] and videos["teacher"][2].layers.layer == 0


async def first_step_is_a_layer_switch(
    videos: Videos, frames: Callable[[int, frozenset[int]], Awaitable[None]]
) -> None:
    """The pupil's consumer goes on with its top layer until the lower one's keyframe,
    then forwards that layer; the teacher's is untouched; nothing is paused."""
    pupil, teacher = videos["pupil"][2], videos["teacher"][2]
    await frames(2, frozenset())
    assert current(pupil) == 2  # no keyframe of layer 1 yet: layer 2 goes on
    await frames(1, frozenset({1}))
    assert current(pupil) == 1 and pupil.layers.switches >= 2
    assert current(teacher) == 2
    assert not pupil.paused and not teacher.paused
