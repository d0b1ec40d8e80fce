"""sfu/video_slots.py through the subscriber transport: video m-sections bounded by
what the subscriber shows (issue 17).

Real peer connections on both sides (plain aiortc clients on loopback): what is
counted is what the offers carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from aiortc import RTCPeerConnection

from sfu.producer import Producer
from sfu.router import Router
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport, TransportOptions
from tests.sfu_support import SubscribingClient, publish_from_client, transport_options


@dataclass
class Bed:
    cameras: list[Producer]
    subscriber: SubscriberTransport
    client: SubscribingClient


def bounded(limit: int) -> TransportOptions:
    return replace(transport_options(), video_slots=limit)


@asynccontextmanager
async def bed(limit: int, cameras: int) -> AsyncIterator[Bed]:
    """`cameras` video producers of one publisher, a subscriber bounded at `limit`."""
    publisher = PublisherTransport(transport_options())
    pub_pc, producers = await publish_from_client(publisher, ["video"] * cameras)
    client = SubscribingClient()
    subscriber = SubscriberTransport(bounded(limit), client.send_offer)
    try:
        yield Bed(producers, subscriber, client)
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


async def consume_all(b: Bed) -> None:
    """The subscriber is asked for every camera (as rooms/ does at a join); answered."""
    for camera in b.cameras:
        b.subscriber.consume(camera)
    await b.client.answer(b.subscriber)


def video_sections(pc: RTCPeerConnection) -> int:
    return sum(t.kind == "video" for t in pc.getTransceivers())


def carried(subscriber: SubscriberTransport) -> set[str]:
    return {c.producer.id for c in subscriber.consumers if c.producer is not None}


def offered(client: SubscribingClient) -> set[str]:
    _, tracks = client.offers[-1]
    return {c.producer.id for c in tracks.values() if c.producer is not None}


async def test_past_the_bound_a_video_is_parked_and_the_offer_stays_small() -> None:
    async with bed(limit=2, cameras=5) as b:
        first, second, third, fourth, pinned = b.cameras
        assert b.subscriber.consume(first) is not None
        assert b.subscriber.consume(second) is not None
        assert b.subscriber.consume(third) is None and b.subscriber.consume(fourth) is None
        assert b.subscriber.consume(third) is None  # asked again: still parked, no m-section
        # A pinned video (a host's camera, a shared screen) always has its m-section.
        assert b.subscriber.consume(pinned, pinned=True) is not None
        await b.client.answer(b.subscriber)
        assert offered(b.client) == {first.id, second.id, pinned.id}
        assert video_sections(b.client.pc) == 3
        assert [p.id for p in b.subscriber.parked] == [third.id, fourth.id]
        assert third.consumers == [] and fourth.consumers == []  # nothing of them is sent


async def test_a_shown_parked_video_takes_the_m_section_of_a_hidden_one_in_one_offer() -> None:
    async with bed(limit=2, cameras=4) as b:
        first, second, third, fourth = b.cameras
        await consume_all(b)
        was = b.client.offers[-1][1]
        # The page shows the other two: the first two are hidden (held).
        b.subscriber.hold([first.id, second.id])
        await b.client.answer(b.subscriber)
        assert offered(b.client) == {third.id, fourth.id}
        assert video_sections(b.client.pc) == 2  # the m-sections were re-used, none added
        now = b.client.offers[-1][1]
        assert set(now) == set(was)  # the same mids, other sources
        assert {p.id for p in b.subscriber.parked} == {first.id, second.id}
        assert all(c.ready for c in now.values())  # media from the answer on
        # Shown again: they come back, each in place of one now hidden.
        b.subscriber.hold([third.id, fourth.id])
        await b.client.answer(b.subscriber)
        assert offered(b.client) == {first.id, second.id}
        assert video_sections(b.client.pc) == 2


async def test_a_shown_video_is_never_evicted_and_a_hidden_one_evicts_nobody() -> None:
    async with bed(limit=2, cameras=4) as b:
        first, second, third, fourth = b.cameras
        await consume_all(b)
        # Only the first is hidden: one of the parked (the first parked) takes its place,
        # the other stays parked: the second is shown and keeps its m-section.
        b.subscriber.hold([first.id])
        await b.client.answer(b.subscriber)
        assert carried(b.subscriber) == {second.id, third.id}
        assert [p.id for p in b.subscriber.parked] == [fourth.id, first.id]
        # The page hides the fourth too: a hidden parked video takes nothing.
        offers = len(b.client.offers)
        b.subscriber.hold([first.id, fourth.id])
        await asyncio.sleep(0.1)
        assert len(b.client.offers) == offers and carried(b.subscriber) == {second.id, third.id}


async def test_the_video_hidden_longest_is_evicted_first() -> None:
    async with bed(limit=3, cameras=4) as b:
        first, second, third, fourth = b.cameras
        await consume_all(b)
        b.subscriber.hold([first.id, fourth.id])  # first hidden (fourth stays parked)
        await asyncio.sleep(0.02)
        b.subscriber.hold([first.id, second.id, fourth.id])  # second hidden later
        assert carried(b.subscriber) == {first.id, second.id, third.id}
        b.subscriber.hold([first.id, second.id])  # the fourth is shown
        await b.client.answer(b.subscriber)
        assert carried(b.subscriber) == {second.id, third.id, fourth.id}
        assert [p.id for p in b.subscriber.parked] == [first.id]


async def test_a_freed_m_section_goes_to_a_shown_parked_video_and_a_parked_one_can_go() -> None:
    async with bed(limit=2, cameras=4) as b:
        first, second, third, fourth = b.cameras
        await consume_all(b)
        b.subscriber.stop_consuming(fourth)  # parked: forgotten, nothing to renegotiate
        assert [p.id for p in b.subscriber.parked] == [third.id]
        b.subscriber.stop_consuming(first)  # its publisher left: the third takes its place
        await b.client.answer(b.subscriber)
        assert offered(b.client) == {second.id, third.id}
        assert b.subscriber.parked == [] and video_sections(b.client.pc) == 2


async def test_a_replaced_publisher_stays_parked_and_pinning_unparks() -> None:
    async with bed(limit=1, cameras=3) as b:
        first, second, third = b.cameras
        await consume_all(b)
        assert [p.id for p in b.subscriber.parked] == [second.id, third.id]
        replacing = PublisherTransport(transport_options())
        pc, (new_second,) = await publish_from_client(replacing, ["video"])
        try:
            b.subscriber.switch_source(second, new_second)
            assert [p.id for p in b.subscriber.parked] == [new_second.id, third.id]
            # The third's publisher becomes a host: pinned, it gets an m-section now.
            assert b.subscriber.consume(third, pinned=True) is not None
            await b.client.answer(b.subscriber)
            assert offered(b.client) == {first.id, third.id}
            assert [p.id for p in b.subscriber.parked] == [new_second.id]
        finally:
            await replacing.close()
            await pc.close()


async def test_a_subscriber_moving_to_another_router_leaves_its_parked_videos_behind() -> None:
    options = bounded(1)
    main, room = Router(options), Router(options)
    publisher = main.create_publisher_transport()
    pub_pc, (first, second) = await publish_from_client(publisher, ["video", "video"])
    client = SubscribingClient()
    subscriber = main.create_subscriber_transport(client.send_offer)
    try:
        main.consume(subscriber, first)
        assert main.consume(subscriber, second) is None
        await client.answer(subscriber)
        main.transfer(subscriber, room)
        await client.answer(subscriber)
        assert subscriber.parked == [] and carried(subscriber) == set()
        subscriber.hold([])  # nothing of the old room comes back
        await asyncio.sleep(0.1)
        assert carried(subscriber) == set() and second.consumers == []
    finally:
        await main.close()
        await room.close()
        await client.pc.close()
        await pub_pc.close()
