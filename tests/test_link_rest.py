"""rooms/calls/link_rest.py: a link at rest is not judged again until something moved.

A real call core, router and transports: a teacher publishes a microphone and a
camera from a real aiortc client; a pupil's subscriber connection carries both
(answered by a real aiortc client). The pupil's RTCP goes in through the senders'
own RTCP handler, as aiortc delivers it; media through the producer's receiver.
Which rounds judge the pupil's link is read off its downlink sampler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

from rooms.calls.core import CallCore
from rooms.calls.link_rest import MediaMoves
from rooms.calls.participant import Participant
from rooms.calls.weak_links import WeakLinks
from rooms.model import ParticipantRecord
from rooms.store import MemoryStore
from rooms.vocabulary import Lesson, LessonState, Person, Role
from sfu.consumer import Consumer
from sfu.router import Router
from tests.sfu_support import (
    SubscribingClient,
    WireRecorder,
    make_producer,
    publish,
    publish_from_client,
    rtp,
    transport_options,
)

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def lesson() -> Lesson:
    return Lesson(
        id="les_rest",
        integration="demo",
        group_id="5a",
        group_title="5А",
        subject="Математика",
        teacher=Person("t-1", "Анна", Role.TEACHER),
        roster=(Person("s-1", "Иван", Role.STUDENT),),
        starts_at=NOW,
        ends_at=NOW + timedelta(minutes=45),
        state=LessonState.OPEN,
    )


def person(user: str, role: Role, host: bool, told: list[dict[str, Any]]) -> Participant:
    async def send(message: dict[str, Any]) -> None:
        told.append(message)

    async def disconnect() -> None:
        pass

    record = ParticipantRecord(id=user, user_id=user, name=user, role=role, host=host)
    return Participant(record=record, send=send, disconnect=disconnect, admitted=True)


@dataclass
class Class:
    call: CallCore
    links: WeakLinks
    pupil: Participant
    consumers: list[Consumer]
    judged: list[float]  # the rounds that took a sample of the pupil's link


@pytest.fixture
async def lesson_of_two() -> AsyncIterator[Class]:
    router = Router(transport_options())
    call = CallCore(lesson(), router, MemoryStore())
    told: list[dict[str, Any]] = []
    teacher = person("t-1", Role.TEACHER, True, told)
    pupil = person("s-1", Role.STUDENT, False, told)
    publisher = router.create_publisher_transport()
    pub_pc, (microphone, camera) = await publish_from_client(
        publisher, ["audio", "video"], {"participant_id": "t-1"}
    )
    teacher.producers = {"microphone": microphone, "camera": camera}
    client = SubscribingClient()
    subscriber = router.create_subscriber_transport(client.send_offer)
    pupil.subscriber = subscriber
    consumers = [subscriber.consume(p) for p in (microphone, camera)]
    await client.answer(subscriber)
    call.participants = {"t-1": teacher, "s-1": pupil}
    links = WeakLinks(call)
    await links.sample_all(0.0)  # the first round: the sampler's baseline
    sampler = links.links["s-1"].sampler
    judged: list[float] = []
    sample = sampler.sample

    def counted(transport: Any, now: float) -> Any:
        judged.append(now)
        return sample(transport, now)

    sampler.sample = counted  # type: ignore[method-assign]
    try:
        yield Class(call, links, pupil, [c for c in consumers if c is not None], judged)
    finally:
        await subscriber.close()
        await publisher.close()
        await client.pc.close()
        await pub_pc.close()


async def report(consumer: Consumer, highest: int, lost: int) -> None:
    block = RtcpReceiverInfo(
        ssrc=consumer.ssrc,
        fraction_lost=0,
        packets_lost=lost,
        highest_sequence=highest,
        jitter=0,
        lsr=0,
        dlsr=0,
    )
    await consumer.sender._handle_rtcp_packet(RtcpRrPacket(ssrc=7, reports=[block]))


async def test_a_quiet_link_is_not_judged_again_until_its_subscriber_reports(
    lesson_of_two: Class,
) -> None:
    lesson, (_, on_camera) = lesson_of_two, lesson_of_two.consumers
    for t in (1.0, 2.0, 3.0):
        await lesson.links.sample_all(t)
    assert lesson.judged == []  # nothing moved: not judged again
    link = lesson.links.links["s-1"]
    assert link.sampler.sampled_at == 3.0  # as if a sample of nothing had been taken
    await report(on_camera, highest=1000, lost=0)
    await lesson.links.sample_all(4.0)
    assert lesson.judged == [4.0]  # its RTCP moved: judged
    await lesson.links.sample_all(5.0)
    assert lesson.judged == [4.0]  # and at rest again


async def test_a_link_judged_weak_is_judged_every_round_with_nothing_moving(
    lesson_of_two: Class,
) -> None:
    lesson, (_, on_camera) = lesson_of_two, lesson_of_two.consumers
    await report(on_camera, highest=1000, lost=0)
    await lesson.links.sample_all(1.0)
    await report(on_camera, highest=1100, lost=50)  # half of 100 packets lost
    await lesson.links.sample_all(2.0)
    link = lesson.links.links["s-1"]
    assert not link.judge.at_rest and link.rest_key is None
    for t in (3.0, 4.0, 5.0, 6.0):
        await lesson.links.sample_all(t)
    # A run of bad samples goes on with time alone: each round judges it, and after
    # `bad_enter_seconds` of it the link is "bad" with no report since the lossy one.
    assert lesson.judged == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert link.judge.quality.value == "bad"


async def test_media_reaching_the_call_has_every_link_judged(lesson_of_two: Class) -> None:
    lesson = lesson_of_two
    await lesson.links.sample_all(1.0)
    assert lesson.judged == []
    microphone = lesson.call.participants["t-1"].producers["microphone"]
    microphone.pause()  # a change of the call's producers
    await lesson.links.sample_all(2.0)
    assert lesson.judged == [2.0]
    await lesson.links.sample_all(3.0)
    assert lesson.judged == [2.0]


async def test_media_moves_counts_packets_pauses_and_producers() -> None:
    producer, receiver = await make_producer(WireRecorder())
    other, other_receiver = await make_producer(WireRecorder(), producer_id="pr_other")
    moves = MediaMoves()
    moves.update([producer])
    first = moves.version
    moves.update([producer])
    assert moves.version == first  # nothing arrived
    await publish(receiver, rtp(1, 0))
    moves.update([producer])
    assert moves.version == first + 1  # a packet arrived
    moves.update([producer, other])
    assert moves.version == first + 2  # a producer came
    other.pause()
    moves.update([producer, other])
    assert moves.version == first + 3  # one paused
    moves.update([producer, other])
    assert moves.version == first + 3
    await receiver.stop()
    await other_receiver.stop()
