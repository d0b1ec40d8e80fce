"""Simulcast in the SFU: layers demultiplexed by RID, one forwarded per consumer.

Real ForwardingReceiver, Producer and Consumer; the network edge is WireRecorder
(tests/sfu_support.py). Packets are synthetic VP8 with picture ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from itertools import pairwise
from typing import Any

import pytest
from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import RtpPacket

import sfu.layer_select
import sfu.layers
import sfu.producer
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.consumer import Consumer
from sfu.producer import CachedPacket, Producer
from sfu.simulcast import MidRtpRouter, RidDemux
from tests.sfu_support import RTX_IN, VP8_IN, WireRecorder, make_consumer, publish, rtp
from tests.test_vp8_descriptor import read, vp8

SSRC = {0: 1000, 1: 2000, 2: 3000}
RTX_SSRC = {0: 1001, 1: 2001, 2: 3001}
RIDS = ("q", "h", "f")


async def simulcast_producer(wire: WireRecorder) -> tuple[Producer, ForwardingReceiver]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", wire))  # type: ignore[arg-type]
    receiver._set_rtcp_ssrc(1111)
    receiver.rids = RidDemux(RIDS)
    await receiver.receive(RTCRtpReceiveParameters(codecs=[VP8_IN, RTX_IN], muxId="0"))
    # No keyframe floor here: the tests look at every PLI.
    producer = Producer("pr_simulcast", "video", receiver, {"source": "camera"}, 0.0)
    return producer, receiver


class Publisher:
    """Three layers with their own numbering, as a browser sends them."""

    def __init__(self, receiver: ForwardingReceiver) -> None:
        self.receiver = receiver
        self.seq = {0: 100, 1: 30000, 2: 65530}  # the top layer wraps soon
        self.ts = {0: 5000, 1: 900000, 2: 4294967000}
        self.pid = {0: 10, 1: 20000, 2: 32760}
        self.tl0 = {0: 1, 1: 100, 2: 250}
        self.rid_sent: set[int] = set()

    def packet(self, layer: int, key: bool = False) -> RtpPacket:
        packet = rtp(
            self.seq[layer],
            self.ts[layer],
            vp8(self.pid[layer], self.tl0[layer], key=key),
            ssrc=SSRC[layer],
            marker=1,
        )
        if layer not in self.rid_sent:  # the rid rides on a layer's first packets only
            packet.extensions.rtp_stream_id = RIDS[layer]
            self.rid_sent.add(layer)
        self.seq[layer] = (self.seq[layer] + 1) % 65536
        self.ts[layer] = (self.ts[layer] + 3000) % (1 << 32)
        self.pid[layer] = (self.pid[layer] + 1) % 32768
        self.tl0[layer] = (self.tl0[layer] + 1) % 256
        return packet

    async def frame(
        self, key: frozenset[int] = frozenset(), layers: tuple[int, ...] = (0, 1, 2)
    ) -> None:
        await publish(self.receiver, *(self.packet(layer, layer in key) for layer in layers))


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def _plis(wire: WireRecorder) -> list[int]:
    return [p.media_ssrc for p in wire.plis()]


async def test_layers_are_told_apart_by_rid_and_counted() -> None:
    pub_wire = WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    publisher = Publisher(receiver)
    unknown = rtp(1, 1, vp8(1, 1), ssrc=9999)  # never carried a rid: no layer to put it in
    await publish(receiver, unknown)
    for _ in range(5):
        await publisher.frame()
    assert [(r.rid, r.ssrc, r.packets) for r in producer.layer_reports()] == [
        ("q", 1000, 5),
        ("h", 2000, 5),
        ("f", 3000, 5),
    ]
    assert all(r.active for r in producer.layer_reports())
    assert producer.packets_received == 15
    # Each layer's cache is its own: the same sequence number in two layers is two packets.
    assert producer.cached(100, 0) is not None and producer.cached(100, 1) is None
    assert producer.cached(30000, 1) is not None


async def test_layer_bitrates_are_measured_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfu.layers, "RATE_WINDOW", 0.05)
    producer, receiver = await simulcast_producer(WireRecorder())
    publisher = Publisher(receiver)
    for _ in range(8):
        await publisher.frame()
        await publish(receiver, *(publisher.packet(2) for _ in range(3)))  # f: 4x the packets
        await asyncio.sleep(0.01)
    q, h, f = (r.bitrate for r in producer.layer_reports())
    q_bytes = 8 * len(publisher.packet(0).payload)  # 8 frames of one packet each
    # f carries 4x the bytes of q; a window may close between them (a busy machine: few
    # frames a window), hence the margin.
    assert q > 0 and h > 0 and f > 1.5 * q
    assert [r.bytes for r in producer.layer_reports()] == [q_bytes, q_bytes, 4 * q_bytes]


async def test_retransmissions_are_unwrapped_by_repaired_rid() -> None:
    producer, receiver = await simulcast_producer(WireRecorder())
    publisher = Publisher(receiver)
    await publisher.frame()
    original = publisher.seq[1] - 1
    rtx = rtp(7, publisher.ts[1], original.to_bytes(2, "big") + b"resent", RTX_SSRC[1], 97)
    rtx.extensions.repaired_rtp_stream_id = "h"
    await publish(receiver, rtx)
    entry = producer.cached(original, 1)
    assert entry is not None and entry.payload == b"resent" and entry.layer == 1


async def test_each_layer_has_its_own_nack_sequence_space() -> None:
    pub_wire = WireRecorder()
    _, receiver = await simulcast_producer(pub_wire)
    publisher = Publisher(receiver)
    for _ in range(3):
        await publisher.frame()  # interleaved numbering far apart: nothing is lost
    nacks = [p for p in pub_wire.rtcp() if type(p).__name__ == "RtcpRtpfbPacket"]
    assert nacks == []
    publisher.seq[1] += 2  # two packets of h lost
    await publisher.frame()
    nacks = [p for p in pub_wire.rtcp() if type(p).__name__ == "RtcpRtpfbPacket"]
    assert [(p.media_ssrc, sorted(p.lost)) for p in nacks] == [(2000, [30003, 30004])]


def test_a_new_ssrc_is_routed_by_its_mid() -> None:
    camera, screen = object(), object()
    router = RtpRouter()
    router.__class__ = MidRtpRouter
    router.register_receiver(camera, ssrcs=[], payload_types=[96], mid="1")  # type: ignore[arg-type]
    router.register_receiver(screen, ssrcs=[], payload_types=[96], mid="2")  # type: ignore[arg-type]
    packet = rtp(1, 1, ssrc=555)
    assert router.route_rtp(packet) is None  # aiortc alone: two receivers of payload type 96
    packet.extensions.mid = "2"
    assert router.route_rtp(packet) is screen
    assert router.route_rtp(rtp(2, 2, ssrc=555)) is screen  # later packets carry no mid


async def test_a_consumer_forwards_one_layer_and_switches_at_its_keyframe() -> None:
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    consumer = await make_consumer(sub_wire)
    consumer.set_target_layer(0)
    consumer.attach(producer)
    publisher = Publisher(receiver)
    await publisher.frame()  # delta frames only: nothing yet, a keyframe of q asked for
    await settle()
    assert sub_wire.rtp() == [] and set(_plis(pub_wire)) == {SSRC[0]}
    await publisher.frame(key=frozenset({0, 1, 2}))
    for _ in range(3):
        await publisher.frame()
    sent = sub_wire.rtp()
    assert len(sent) == 4 and consumer.layers.layer == 0
    assert [read(p.payload) for p in sent] == [(11, 2), (12, 3), (13, 4), (14, 5)]  # q's own

    consumer.set_target_layer(2)
    await settle()
    assert _plis(pub_wire)[-1] == SSRC[2]  # asked on f's SSRC
    await publisher.frame()  # no keyframe of f yet: q goes on
    assert len(sub_wire.rtp()) == 5 and consumer.layers.layer == 0
    await publisher.frame(key=frozenset({2}))
    await publisher.frame()
    sent = sub_wire.rtp()
    # q's delta of that frame, then f's keyframe and its next frame.
    assert len(sent) == 8 and consumer.layers.layer == 2 and consumer.layers.switches == 2
    seqs = [p.sequence_number for p in sent]
    assert all((b - a) % 65536 == 1 for a, b in pairwise(seqs))
    ts = [p.timestamp for p in sent]
    assert all(0 < (b - a) % (1 << 32) < 90000 for a, b in pairwise(ts))
    assert [read(p.payload) for p in sent[4:]] == [(15, 6), (16, 7), (17, 8), (18, 9)]
    assert {p.ssrc for p in sent} == {consumer.ssrc}


async def test_a_layer_that_stops_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfu.layers, "LAYER_TIMEOUT", 0.4)
    monkeypatch.setattr(sfu.layer_select, "RESELECT_INTERVAL", 0.0)
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    consumer = await make_consumer(sub_wire)
    consumer.attach(producer)  # no preference: the highest
    publisher = Publisher(receiver)
    await publisher.frame()  # all three layers arrive; nothing to start from yet
    await publisher.frame(key=frozenset({0, 1, 2}))
    assert consumer.layers.layer == 2 and len(sub_wire.rtp()) == 1
    started = time.monotonic()
    while time.monotonic() - started < 1.0:  # f paused by the publisher: h is the best left
        await asyncio.sleep(0.02)
        await publisher.frame(layers=(0, 1))
    await settle()
    assert SSRC[1] in _plis(pub_wire) and not producer.layers[2].active(time.monotonic())
    assert len(sub_wire.rtp()) == 1  # nothing of h before its keyframe
    await publisher.frame(key=frozenset({1}), layers=(0, 1))
    sent = sub_wire.rtp()
    assert consumer.layers.layer == 1 and len(sent) == 2
    assert (sent[1].sequence_number - sent[0].sequence_number) % 65536 == 1
    (pid_before, tl0_before), (pid_after, tl0_after) = (read(p.payload) for p in sent)
    assert pid_before is not None and tl0_before is not None
    assert (pid_after, tl0_after) == ((pid_before + 1) % 32768, (tl0_before + 1) % 256)


async def test_nacks_are_answered_from_the_forwarded_layer_with_its_numbering() -> None:
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    consumer = await make_consumer(sub_wire)
    consumer.set_target_layer(0)
    consumer.attach(producer)
    publisher = Publisher(receiver)
    await publisher.frame(key=frozenset({0, 1, 2}))
    consumer.set_target_layer(1)
    await publisher.frame(key=frozenset({1}))
    await publisher.frame()
    _, before_switch, _, last = sub_wire.rtp()  # q's keyframe and delta, h's keyframe and delta
    await consumer.on_nack([last.sequence_number])
    resent = sub_wire.rtp()[-1]
    assert (resent.payload, resent.timestamp) == (last.payload, last.timestamp)
    assert resent.sequence_number == last.sequence_number
    await consumer.on_nack([before_switch.sequence_number])  # of no use after the switch
    assert len(sub_wire.rtp()) == 5


async def test_a_producer_without_simulcast_is_forwarded_as_before() -> None:
    from tests.sfu_support import make_producer

    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    consumer = await make_consumer(sub_wire)
    consumer.set_target_layer(0)  # nothing to choose from: no effect
    consumer.attach(producer)
    key = vp8(pid=5, tl0=1, key=True)
    await publish(receiver, rtp(1, 1, key), rtp(2, 2, vp8(pid=6, tl0=2)))
    sent = sub_wire.rtp()
    assert producer.layer_count == 1 and consumer.layers.selector is None
    assert [p.payload for p in sent] == [key, vp8(pid=6, tl0=2)]


async def test_a_resumed_producer_asks_every_layer_for_a_keyframe() -> None:
    pub_wire = WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    await Publisher(receiver).frame()
    producer.pause()
    await producer.resume()
    assert sorted(_plis(pub_wire)) == [SSRC[0], SSRC[1], SSRC[2]]


def _offered(consumer: Consumer) -> list[int]:
    """The layers of the packets the producer offers `consumer` from now on."""
    offered: list[int] = []
    forward = consumer.forward

    def counting(entry: CachedPacket, now: float) -> Coroutine[Any, Any, None] | None:
        offered.append(entry.layer)
        return forward(entry, now)

    consumer.forward = counting  # type: ignore[method-assign]
    return offered


async def test_a_consumer_settled_on_a_layer_is_offered_only_that_layer() -> None:
    """The producer does not hand a consumer the packets it would only drop: once it
    forwards the layer it wants, only that layer; nothing while paused; every layer
    while it waits for a keyframe of the one it wants."""
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    small, paused = await make_consumer(sub_wire), await make_consumer(WireRecorder())
    small.set_target_layer(0)
    for consumer in (small, paused):
        consumer.attach(producer)
    offered, offered_paused = _offered(small), _offered(paused)
    publisher = Publisher(receiver)
    await publisher.frame(key=frozenset({0, 1, 2}))
    # No layer yet: offered everything, q's keyframe (the first packet) taken at once.
    assert offered == [0] and small.layers.layer == 0
    paused.pause()
    offered.clear(), offered_paused.clear()
    for _ in range(3):
        await publisher.frame()
    assert offered == [0, 0, 0] and offered_paused == []
    assert len(sub_wire.rtp()) == 4

    small.set_target_layer(1)  # waits for h's keyframe: sees every layer meanwhile
    offered.clear()
    await publisher.frame()
    assert sorted(offered) == [0, 1, 2] and small.layers.layer == 0
    await publisher.frame(key=frozenset({1}))
    offered.clear()
    await publisher.frame()
    assert offered == [1] and small.layers.layer == 1

    paused.resume()  # from the next keyframe of its layer: offered all until then
    await publisher.frame()
    assert sorted(offered_paused) == [0, 1, 2]


async def test_a_layer_that_starts_again_is_offered_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consumer settled on h because f was not sent takes f's first keyframe when the
    publisher starts f again (not only after the producer's periodic look)."""
    monkeypatch.setattr(sfu.producer, "ACTIVITY_CHECK_INTERVAL", 3600.0)
    pub_wire, sub_wire = WireRecorder(), WireRecorder()
    producer, receiver = await simulcast_producer(pub_wire)
    consumer = await make_consumer(sub_wire)
    consumer.attach(producer)  # no preference: the highest
    publisher = Publisher(receiver)
    await publisher.frame(key=frozenset({0, 1}), layers=(0, 1))
    await publisher.frame(layers=(0, 1))
    assert consumer.layers.layer == 1
    sent = len(sub_wire.rtp())
    await publisher.frame(key=frozenset({2}))
    assert consumer.layers.layer == 2 and len(sub_wire.rtp()) == sent + 2  # h's delta, f's key
