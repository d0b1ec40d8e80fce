"""Audio with RED through real producers and consumers (sfu/red_forwarding.py): RED passed
on to subscribers that took it, cut to its primary for those that did not, and built at the
server from plain Opus. Only the wire is a recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sfu.aiortc_hooks import ForwardingReceiver
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.red import RedBlock, encode_red, parse_red
from sfu.red_forwarding import REDUNDANCY
from tests.sfu_support import OPUS, WireRecorder, make_consumer, make_producer, publish, rtp

RED_IN = RTCRtpCodecParameters(
    mimeType="audio/red", clockRate=48000, channels=2, payloadType=63, parameters={"111/111": None}
)
OPUS_OUT = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
SUBSCRIBER_RED = 121  # the RED payload type of the subscriber's answer


def opus(seq: int, payload: bytes) -> RtpPacket:
    return rtp(seq, 960 * seq, payload, payload_type=111)


def red(seq: int, payload: bytes, earlier: list[tuple[int, bytes]]) -> RtpPacket:
    """A publisher's RED packet: `earlier` as (packets back, payload)."""
    blocks = [(960 * back, data) for back, data in earlier]
    return rtp(seq, 960 * seq, encode_red(111, payload, blocks), payload_type=63)


_receivers: list[ForwardingReceiver] = []


@pytest.fixture(autouse=True)
async def stop_receivers() -> AsyncIterator[None]:
    yield
    while _receivers:
        await _receivers.pop().stop()


async def setup(red_taken: bool) -> tuple[Producer, ForwardingReceiver, Consumer, WireRecorder]:
    producer, receiver = await make_producer(WireRecorder(), "audio", codecs=[OPUS, RED_IN])
    _receivers.append(receiver)
    wire = WireRecorder()
    consumer = await make_consumer(wire, "audio", codecs=[OPUS_OUT])
    consumer.red_payload_type = SUBSCRIBER_RED if red_taken else None
    consumer.attach(producer)
    return producer, receiver, consumer, wire


def blocks(packet: RtpPacket) -> list[tuple[int, int, bytes]]:
    parsed = parse_red(packet.payload)
    assert parsed is not None
    return [(b.payload_type, b.timestamp_offset, b.data) for b in parsed]


async def test_red_goes_to_a_red_subscriber_renumbered_and_two_packets_deep() -> None:
    _, receiver, _, wire = await setup(red_taken=True)
    await publish(
        receiver,
        red(10, b"p10", []),
        red(11, b"p11", [(1, b"p10")]),
        red(12, b"p12", [(1, b"p11")]),  # Chromium's RED: one packet back
    )
    sent = wire.rtp()
    assert {p.payload_type for p in sent} == {SUBSCRIBER_RED}
    assert [blocks(p) for p in sent] == [
        [(96, 0, b"p10")],
        [(96, 960, b"p10"), (96, 0, b"p11")],
        [(96, 1920, b"p10"), (96, 960, b"p11"), (96, 0, b"p12")],  # completed from the cache
    ]
    assert [p.timestamp - sent[0].timestamp for p in sent] == [0, 960, 1920]


async def test_the_publishers_blocks_stand_in_for_packets_the_server_missed() -> None:
    _, receiver, _, wire = await setup(red_taken=True)
    # 11 was lost on the publisher's uplink: 12's own block carries it on.
    await publish(receiver, red(10, b"p10", []), red(12, b"p12", [(1, b"p11")]))
    assert blocks(wire.rtp()[1]) == [(96, 1920, b"p10"), (96, 960, b"p11"), (96, 0, b"p12")]


async def test_other_codecs_pass_a_red_subscriber_unchanged() -> None:
    g722_in = RTCRtpCodecParameters(mimeType="audio/G722", clockRate=8000, payloadType=9)
    producer, receiver = await make_producer(WireRecorder(), "audio", codecs=[g722_in])
    _receivers.append(receiver)
    wire = WireRecorder()
    consumer = await make_consumer(wire, "audio", codecs=[OPUS_OUT, g722_in])
    consumer.red_payload_type = SUBSCRIBER_RED
    consumer.attach(producer)
    await publish(receiver, rtp(1, 160, b"g722", payload_type=9))
    assert [(p.payload_type, p.payload) for p in wire.rtp()] == [(9, b"g722")]


async def test_a_subscriber_without_red_gets_the_primary_as_opus() -> None:
    _, receiver, _, wire = await setup(red_taken=False)
    await publish(receiver, red(10, b"ten", []), red(11, b"eleven", [(1, b"ten")]))
    assert [(p.payload_type, p.payload) for p in wire.rtp()] == [(96, b"ten"), (96, b"eleven")]


async def test_red_is_built_from_plain_opus_for_a_red_subscriber() -> None:
    _, receiver, _, wire = await setup(red_taken=True)
    # 13 never reached the server: 14 carries 12 only, 15 carries 14 only.
    await publish(receiver, *(opus(seq, f"p{seq}".encode()) for seq in (10, 11, 12, 14, 15)))
    sent = wire.rtp()
    assert {p.payload_type for p in sent} == {SUBSCRIBER_RED}
    assert REDUNDANCY == 2
    assert [blocks(p) for p in sent] == [
        [(96, 0, b"p10")],  # the first packet: nothing before it
        [(96, 960, b"p10"), (96, 0, b"p11")],
        [(96, 1920, b"p10"), (96, 960, b"p11"), (96, 0, b"p12")],
        [(96, 1920, b"p12"), (96, 0, b"p14")],
        [(96, 960, b"p14"), (96, 0, b"p15")],
    ]


async def test_plain_opus_to_a_subscriber_without_red_is_untouched() -> None:
    _, receiver, _, wire = await setup(red_taken=False)
    await publish(receiver, opus(10, b"p10"), opus(11, b"p11"))
    assert [(p.payload_type, p.payload) for p in wire.rtp()] == [(96, b"p10"), (96, b"p11")]


async def test_nothing_from_before_a_mute_reaches_the_subscriber() -> None:
    producer, receiver, _, wire = await setup(red_taken=True)
    await publish(receiver, opus(10, b"p10"))
    producer.pause()  # a host mutes: what comes now must not be heard, not even as redundancy
    await publish(receiver, opus(11, b"muted11"), opus(12, b"muted12"))
    await producer.resume()
    await publish(receiver, opus(13, b"p13"), opus(14, b"p14"))
    # The publisher's own RED reaching back into the mute: that block is left out too.
    await publish(receiver, red(15, b"p15", [(3, b"muted12"), (2, b"p13"), (1, b"p14")]))
    sent = wire.rtp()
    assert all(b"muted" not in p.payload for p in sent)
    assert [blocks(p) for p in sent[1:]] == [
        [(96, 0, b"p13")],
        [(96, 960, b"p13"), (96, 0, b"p14")],
        [(96, 1920, b"p13"), (96, 960, b"p14"), (96, 0, b"p15")],
    ]


async def test_publisher_red_right_after_a_resume_loses_its_older_blocks() -> None:
    producer, receiver, _, wire = await setup(red_taken=True)
    await publish(receiver, red(10, b"p10", []))
    producer.pause()
    await publish(receiver, red(11, b"muted", [(1, b"p10")]))
    await producer.resume()
    await publish(receiver, red(12, b"p12", [(1, b"muted")]), red(13, b"p13", [(1, b"p12")]))
    sent = wire.rtp()
    assert [blocks(p) for p in sent[1:]] == [
        [(96, 0, b"p12")],
        [(96, 960, b"p12"), (96, 0, b"p13")],
    ]


async def test_malformed_red_or_foreign_blocks_are_not_sent() -> None:
    for red_taken in (True, False):
        _, receiver, _, wire = await setup(red_taken=red_taken)
        foreign = rtp(10, 9600, encode_red(109, b"x", [(960, b"y")]), payload_type=63)
        await publish(receiver, rtp(11, 10560, b"\x80", payload_type=63), foreign)
        await publish(receiver, red(12, b"ok", []))
        assert len(wire.rtp()) == 1, red_taken


async def test_a_red_subscriber_numbers_stay_continuous_across_the_switch_to_red() -> None:
    # The subscriber's answer changes from plain Opus to RED mid-stream: one stream goes on.
    _, receiver, consumer, wire = await setup(red_taken=False)
    await publish(receiver, opus(10, b"p10"), opus(11, b"p11"))
    consumer.red_payload_type = SUBSCRIBER_RED
    await publish(receiver, opus(12, b"p12"))
    sent = wire.rtp()
    assert [p.payload_type for p in sent] == [96, 96, SUBSCRIBER_RED]
    assert [(p.sequence_number - sent[0].sequence_number) % 65536 for p in sent] == [0, 1, 2]
    assert blocks(sent[2])[-1] == (96, 0, b"p12")
    assert RedBlock(96, 960, b"p11") == parse_red(sent[2].payload)[-2]  # type: ignore[index]
