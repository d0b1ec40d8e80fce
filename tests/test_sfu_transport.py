"""sfu/transport.py: producers from a publisher's offer, slots and renegotiation of subscribers.

Real peer connections on both sides (clients are plain aiortc ones, on loopback).
"""

from __future__ import annotations

import asyncio

import pytest

from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import NegotiationError, PublisherTransport, SdpError
from tests.sfu_support import (
    SubscribingClient,
    client_offer,
    publish_from_client,
    transport_options,
)


async def test_each_sending_section_of_an_offer_becomes_one_producer() -> None:
    transport = PublisherTransport(transport_options())
    pc, producers = await publish_from_client(transport, ["audio", "video"], {"source": "cam"})
    try:
        assert [p.kind for p in producers] == ["audio", "video"]
        assert [p.app_data for p in producers] == [
            {"source": "cam", "n": 0},
            {"source": "cam", "n": 1},
        ]
        assert transport.producers == {"0": producers[0], "1": producers[1]}
        assert len({p.id for p in producers}) == 2
        # A renegotiation that adds nothing makes no new producer.
        await pc.setLocalDescription(await pc.createOffer())
        _, again = await transport.handle_offer(pc.localDescription.sdp, {})
        assert again == [] and len(transport.producers) == 2
    finally:
        await transport.close()
        await pc.close()
    assert all(p.closed for p in producers)


async def test_offers_that_are_not_sdp_or_come_too_late_are_refused() -> None:
    transport = PublisherTransport(transport_options())
    with pytest.raises(SdpError):
        await transport.handle_offer("hello", {})
    pc, offer = await client_offer(["video"])
    await transport.close()
    with pytest.raises(SdpError):
        await transport.handle_offer(offer, {})
    await pc.close()


async def test_a_subscriber_gets_an_offer_and_media_flows_only_after_its_answer() -> None:
    publisher = PublisherTransport(transport_options())
    pub_pc, (producer,) = await publish_from_client(publisher, ["video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        consumer = subscriber.consume(producer)
        assert subscriber.consume(producer) is consumer  # once per producer
        assert consumer.producer is producer and not consumer.ready
        await client.answer(subscriber)
        ((_, tracks),) = client.offers
        assert list(tracks.values()) == [consumer] and subscriber.tracks() == tracks
        assert consumer.ready
        with pytest.raises(NegotiationError):  # no offer outstanding any more
            await subscriber.handle_answer(client.pc.localDescription.sdp)
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


async def test_a_freed_slot_is_reused_for_the_next_producer_of_its_kind() -> None:
    publisher = PublisherTransport(transport_options())
    pub_pc, (audio, first, second) = await publish_from_client(
        publisher, ["audio", "video", "video"]
    )
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        video_consumer = subscriber.consume(first)
        subscriber.consume(audio)
        await client.answer(subscriber)
        assert len(client.offers) == 1  # both consumes went into one offer
        subscriber.stop_consuming(first)
        assert video_consumer.producer is None and first.consumers == []
        await client.answer(subscriber)
        assert set(client.offers[-1][1].values()) == {subscriber.consumers[1]}
        assert subscriber.consume(second) is video_consumer  # same slot, same m-section
        await client.answer(subscriber)
        assert len(subscriber.consumers) == 2
        assert len(subscriber.pc.getTransceivers()) == 2
        assert video_consumer.producer is second and video_consumer.ready
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


async def test_a_bad_answer_ends_the_round_and_a_closed_transport_consumes_nothing() -> None:
    publisher = PublisherTransport(transport_options())
    pub_pc, (producer,) = await publish_from_client(publisher, ["video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        consumer = subscriber.consume(producer)
        await client.next_offer()
        with pytest.raises(SdpError):
            await subscriber.handle_answer("v=0\r\nnonsense")
        assert not consumer.ready
        with pytest.raises(NegotiationError):
            await subscriber.handle_answer("v=0\r\n")
        await subscriber.close()
        with pytest.raises(RuntimeError):
            subscriber.consume(producer)
        assert consumer.producer is None and producer.consumers == []
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


async def test_a_connection_aiortc_closed_by_itself_is_closed_to_new_media() -> None:
    # aiortc closes a peer connection itself when its DTLS ends (ICE consent
    # expired); a later publish then must not add a transceiver to it.
    publisher = PublisherTransport(transport_options())
    pub_pc, (producer,) = await publish_from_client(publisher, ["video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        assert not subscriber.closed
        await subscriber.pc.close()  # what aiortc's own shutdown does
        assert subscriber.closed
        with pytest.raises(RuntimeError):
            subscriber.consume(producer)
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


async def test_a_connection_whose_dtls_ended_is_closed_before_aiortc_closes_it() -> None:
    # Between its DTLS end and aiortc's own close (a task it schedules), aiortc
    # refuses a new m-section with InvalidStateError: a publish in a big call hit
    # that window and failed for the publisher (internal_error).
    publisher = PublisherTransport(transport_options())
    pub_pc, (producer,) = await publish_from_client(publisher, ["video"])
    client = SubscribingClient()
    subscriber = SubscriberTransport(transport_options(), client.send_offer)
    try:
        subscriber.consume(producer)
        await client.answer(subscriber)
        for _ in range(200):  # connected within 10 s
            if subscriber.pc.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        (transceiver,) = subscriber.pc.getTransceivers()
        dtls = transceiver.sender.transport
        assert dtls.state == "connected"
        seen: list[tuple[str, bool, str]] = []

        def at_dtls_end() -> None:  # runs right after aiortc's own listener
            if dtls.state == "closed":
                try:
                    subscriber.consume(producer)
                    refused = "accepted"
                except RuntimeError:
                    refused = "RuntimeError"
                seen.append((subscriber.pc.connectionState, subscriber.closed, refused))

        dtls.on("statechange", at_dtls_end)
        await dtls.stop()
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        ((state, closed, refused),) = seen
        assert state != "closed"  # aiortc has not closed the connection yet
        assert closed and refused == "RuntimeError"
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()
