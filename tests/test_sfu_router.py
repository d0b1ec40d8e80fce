"""sfu/router.py: which producers and consumers a router has, consuming, moving, closing.

Real peer connections on both sides (clients are plain aiortc ones, on loopback).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

from sfu.router import Router
from tests.sfu_support import SubscribingClient, publish_from_client, transport_options


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    """Client peer connections, closed after the test."""
    opened: list[RTCPeerConnection] = []
    yield opened
    for pc in opened:
        await pc.close()


async def test_router_lists_the_producers_and_consumers_of_its_transports(
    pcs: list[RTCPeerConnection],
) -> None:
    router = Router(transport_options(), {"room": "main"})
    assert router.app_data == {"room": "main"} and router.producers == []
    publisher = router.create_publisher_transport()
    pc, producers = await publish_from_client(publisher, ["audio", "video"])
    pcs.append(pc)
    assert router.producers == producers
    assert all(router.has_producer(p) for p in producers)
    client = SubscribingClient()
    pcs.append(client.pc)
    subscriber = router.create_subscriber_transport(client.send_offer)
    assert set(router.transports) == {publisher.id, subscriber.id}
    consumers = [router.consume(subscriber, p) for p in producers]
    assert router.consumers == consumers
    assert [c.producer for c in consumers] == producers
    producers[0].close()
    assert router.producers == [producers[1]]  # a closed producer is gone
    await router.close()


async def test_a_router_forwards_only_between_its_own_transports(
    pcs: list[RTCPeerConnection],
) -> None:
    options = transport_options()
    here, there = Router(options), Router(options)
    pc, (producer,) = await publish_from_client(here.create_publisher_transport(), ["video"])
    pcs.append(pc)
    elsewhere_pc, (elsewhere,) = await publish_from_client(
        there.create_publisher_transport(), ["video"]
    )
    pcs.append(elsewhere_pc)
    client = SubscribingClient()
    pcs.append(client.pc)
    subscriber = here.create_subscriber_transport(client.send_offer)
    with pytest.raises(ValueError):
        here.consume(subscriber, elsewhere)
    with pytest.raises(ValueError):
        there.consume(subscriber, producer)
    assert here.consumers == [] and there.consumers == []
    await here.close()
    await there.close()


async def test_closing_a_publisher_stops_its_consumers_and_renegotiates(
    pcs: list[RTCPeerConnection],
) -> None:
    router = Router(transport_options())
    publisher = router.create_publisher_transport()
    pc, (producer,) = await publish_from_client(publisher, ["video"])
    pcs.append(pc)
    client = SubscribingClient()
    pcs.append(client.pc)
    subscriber = router.create_subscriber_transport(client.send_offer)
    consumer = router.consume(subscriber, producer)
    await client.answer(subscriber)
    await router.close_transport(publisher)
    assert publisher.closed and producer.closed
    assert consumer.producer is None and router.producers == []
    assert set(router.transports) == {subscriber.id}
    _, tracks = await client.next_offer()  # the subscriber learns the track is gone
    assert tracks == {}
    await router.close()
    assert router.closed and router.transports == {} and subscriber.closed


async def test_a_moved_transport_takes_its_producers_along_and_leaves_its_consumers(
    pcs: list[RTCPeerConnection],
) -> None:
    options = transport_options()
    main, breakout = Router(options), Router(options)
    teacher = main.create_publisher_transport()
    pupil = main.create_publisher_transport()
    pc, (teacher_video,) = await publish_from_client(teacher, ["video"])
    pcs.append(pc)
    pc, (pupil_video,) = await publish_from_client(pupil, ["video"])
    pcs.append(pc)
    teacher_client, pupil_client = SubscribingClient(), SubscribingClient()
    pcs += [teacher_client.pc, pupil_client.pc]
    teacher_sub = main.create_subscriber_transport(teacher_client.send_offer)
    pupil_sub = main.create_subscriber_transport(pupil_client.send_offer)
    sees_pupil = main.consume(teacher_sub, pupil_video)
    sees_teacher = main.consume(pupil_sub, teacher_video)

    main.transfer(pupil, breakout)
    main.transfer(pupil_sub, breakout)

    assert set(main.transports) == {teacher.id, teacher_sub.id}
    assert set(breakout.transports) == {pupil.id, pupil_sub.id}
    assert main.producers == [teacher_video] and breakout.producers == [pupil_video]
    assert sees_pupil.producer is None and sees_teacher.producer is None
    assert not pupil_video.closed and not pupil.closed  # the connection stays up
    breakout.consume(pupil_sub, pupil_video)  # the pupil's own room forwards it
    with pytest.raises(ValueError):
        main.transfer(pupil, breakout)  # not in main any more
    await main.close()
    await breakout.close()
