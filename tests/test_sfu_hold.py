"""What the SFU gives rooms/ for weak links: the reports' numbers, videos held back per subscriber.

Consumer.link's highest sequence number (sfu/link.py), Consumer.pause/resume
and SubscriberTransport.hold. Real receivers, senders, producers and consumers;
the wire is a recorder, or real peer connections on loopback for the transport.
"""

from __future__ import annotations

import asyncio

from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
)

from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport
from tests.sfu_support import (
    SubscribingClient,
    WireRecorder,
    make_consumer,
    make_producer,
    publish,
    publish_from_client,
    rtp,
    transport_options,
)

KEY = b"\x10\x00key"  # VP8: start of partition 0, P bit 0
DELTA = b"\x10\x01delta"


def block(ssrc: int, lost: int, highest: int, fraction: int = 0) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=fraction,
        packets_lost=lost,
        highest_sequence=highest,
        jitter=90,
        lsr=0,
        dlsr=0,
    )


async def test_the_consumers_link_has_the_reported_highest_sequence_number() -> None:
    producer, receiver = await make_producer(WireRecorder())
    consumer = await make_consumer(WireRecorder())
    consumer.attach(producer)
    await publish(receiver, rtp(1, 0, KEY), rtp(2, 0, DELTA))
    other = consumer.ssrc ^ 0xFFFF
    await consumer.sender._handle_rtcp_packet(
        RtcpRrPacket(ssrc=5, reports=[block(other, 99, 9999), block(consumer.ssrc, 3, 70100, 64)])
    )
    link = consumer.link
    assert (link.reports_received, link.packets_lost, link.highest_sequence) == (1, 3, 70100)
    assert link.fraction_lost == 0.25
    await receiver.stop()


async def test_a_paused_consumer_sends_nothing_and_resumes_from_a_keyframe() -> None:
    pub_wire, wire = WireRecorder(), WireRecorder()
    producer, receiver = await make_producer(pub_wire)
    other_wire = WireRecorder()
    other = await make_consumer(other_wire)
    consumer = await make_consumer(wire)
    for c in (consumer, other):
        c.attach(producer)
    await publish(receiver, rtp(1, 0, KEY), rtp(2, 3000, DELTA))
    await asyncio.sleep(0.7)  # the deferred request of the second consumer, and its interval
    plis_before = len(pub_wire.plis())
    consumer.pause()
    await publish(receiver, rtp(3, 6000, DELTA), rtp(4, 9000, KEY), rtp(5, 12000, DELTA))
    # The stalled decoder asks for a keyframe: not passed on to the publisher.
    await consumer.sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=5, media_ssrc=consumer.ssrc)
    )
    await asyncio.sleep(0.01)
    assert len(wire.rtp()) == 2 and len(other_wire.rtp()) == 5  # only this subscriber held
    assert len(pub_wire.plis()) == plis_before
    consumer.resume()
    await asyncio.sleep(0.01)
    assert len(pub_wire.plis()) == plis_before + 1  # resuming asks for a keyframe
    await publish(receiver, rtp(6, 15000, DELTA), rtp(7, 18000, KEY), rtp(8, 21000, DELTA))
    sent = wire.rtp()
    assert [p.payload for p in sent] == [KEY, DELTA, KEY, DELTA]
    seqs = [p.sequence_number for p in sent]
    # No gap in the numbering: the subscriber has nothing to NACK for the pause.
    assert seqs == [(seqs[0] + i) % 65536 for i in range(4)]
    await receiver.stop()


async def test_held_producers_are_held_for_one_subscriber_also_when_consumed_later() -> None:
    publisher = PublisherTransport(transport_options())
    pub_pc, (audio, camera, screen) = await publish_from_client(
        publisher, ["audio", "video", "video"]
    )
    second = PublisherTransport(transport_options())
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    second_pc = None
    try:
        subscriber.hold([screen.id])
        on_audio, on_camera, on_screen = (subscriber.consume(p) for p in (audio, camera, screen))
        await client.answer(subscriber)
        assert [c.paused for c in (on_audio, on_camera, on_screen)] == [False, False, True]
        subscriber.hold([camera.id, screen.id])
        assert subscriber.held == {camera.id, screen.id}
        assert [c.paused for c in (on_audio, on_camera, on_screen)] == [False, True, True]
        # The held screen share leaves; the next video in its slot is not held.
        subscriber.stop_consuming(screen)
        await client.answer(subscriber)
        second_pc, (new_video,) = await publish_from_client(second, ["video"])
        assert subscriber.consume(new_video) is on_screen and not on_screen.paused
        subscriber.hold([])
        assert not any(c.paused for c in subscriber.consumers)
    finally:
        await subscriber.close()
        await publisher.close()
        await second.close()
        await client.pc.close()
        await pub_pc.close()
        if second_pc is not None:
            await second_pc.close()


async def test_a_switched_source_keeps_its_slot_its_hold_and_needs_no_offer() -> None:
    # A publisher's connection replaced (rooms/calls/ice_restart.py): the subscriber's
    # consumers move to the new producers in place.
    old_publisher = PublisherTransport(transport_options())
    old_pc, (old_audio, old_camera) = await publish_from_client(old_publisher, ["audio", "video"])
    new_publisher = PublisherTransport(transport_options())
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    new_pc = None
    try:
        on_audio, on_camera = (subscriber.consume(p) for p in (old_audio, old_camera))
        await client.answer(subscriber)
        subscriber.hold([old_camera.id])
        offers = len(client.offers)
        new_pc, (new_audio, new_camera) = await publish_from_client(
            new_publisher, ["audio", "video"]
        )
        subscriber.switch_source(old_audio, new_audio)
        subscriber.switch_source(old_camera, new_camera)
        assert subscriber.consume(new_audio) is on_audio
        assert subscriber.consume(new_camera) is on_camera
        assert (on_audio.producer, on_camera.producer) == (new_audio, new_camera)
        assert on_audio.ready and on_camera.ready  # media at once, no new offer needed
        assert new_camera.id in subscriber.held and on_camera.paused and not on_audio.paused
        await asyncio.sleep(0.2)
        assert len(client.offers) == offers
        assert old_audio.consumers == [] and old_camera.consumers == []
    finally:
        await subscriber.close()
        for closing in (old_publisher, new_publisher):
            await closing.close()
        await client.pc.close()
        await old_pc.close()
        if new_pc is not None:
            await new_pc.close()


async def test_a_video_given_back_tells_the_estimate_where_its_numbers_went_on() -> None:
    """Loss the receiver reports of numbers sent before the pause is not counted against
    the link (sfu/bandwidth.py `on_resumed`)."""
    publisher = PublisherTransport(transport_options())
    pub_pc, (camera,) = await publish_from_client(publisher, ["video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        on_camera = subscriber.consume(camera)
        await client.answer(subscriber)
        subscriber.bandwidth.on_report(on_camera.ssrc, 0, 1000, 0.0)
        subscriber.hold([camera.id])
        assert on_camera.paused
        stream = subscriber.bandwidth._streams[on_camera.ssrc]
        assert stream.rebase_until is None  # held back: nothing to tell yet
        subscriber.hold([])
        assert not on_camera.paused
        assert stream.rebase_until == on_camera.rewriter.last_out_seq
        stream.rebase_until = None  # (as once the next report is past it)
        subscriber.hold([])  # not held back, not given back: nothing new
        assert stream.rebase_until is None
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()
