"""sfu/audio_slots.py: each subscriber hears the loudest few audio producers.

Real producers on real (forwarding) receivers fed synthetic Opus packets with
RFC 6464 levels; real subscriber transports (peer connections that are never
connected, except where a slot's packets are read off a recorded wire); the
router's own active-speaker detector. Time is driven by the test: 100 ms ticks
of 20 ms packets, the detector updated every 400 ms as rooms/ does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from sfu.active_speaker import ActiveSpeakerDetector
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.audio_slots import AudioSlotAllocator, SlotSettings
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.router import Router
from sfu.subscriber_transport import SubscriberTransport
from tests.sfu_support import (
    OPUS,
    SubscribingClient,
    WireRecorder,
    make_producer,
    publish,
    publish_from_client,
    rtp,
    transport_options,
)

FRAME = 960  # 20 ms at 48 kHz
SILENT = 127


class Voice:
    """One audio producer; each tick it sends five 20 ms packets at its level (or none)."""

    def __init__(self, producer: Producer, receiver: ForwardingReceiver, index: int) -> None:
        self.producer, self.receiver = producer, receiver
        self.index = index
        # Each publisher numbers its stream its own way.
        self.seq = itertools.count(1000 + 7919 * index)
        self.ts = 50_000 + 100_003_001 * index
        self.level: int | None = SILENT  # None: sends nothing (DTX, muted client)
        self.loud_seqs: list[int] = []

    async def tick(self) -> None:
        if self.level is None:
            return
        for _ in range(5):
            self.ts += FRAME
            seq = next(self.seq) % 65536
            # An Opus TOC byte, then who sent it and its number: a receiver can tell.
            payload = b"\xfc" + bytes([self.index]) + seq.to_bytes(2, "big")
            packet = rtp(seq, self.ts, payload, payload_type=OPUS.payloadType)
            packet.extensions.audio_level = (self.level < 40, self.level)
            if self.level < SILENT:
                self.loud_seqs.append(seq)
            await publish(self.receiver, packet)


class Call:
    """Voices, subscribers and an allocator, ticking in test time."""

    def __init__(self, voices: list[Voice], settings: SlotSettings) -> None:
        self.voices = voices
        self.detector = ActiveSpeakerDetector()
        self.subscribers: list[SubscriberTransport] = []
        self.clients: list[SubscribingClient] = []
        self.slots = AudioSlotAllocator(
            lambda: [v.producer for v in self.voices], lambda: self.subscribers,
            self.detector, settings,
        )  # fmt: skip
        self.now = 0.0
        self.ticks = 0

    def subscriber(self, own: Voice | None = None) -> SubscriberTransport:
        """A subscriber offered every voice but its own."""
        client = SubscribingClient()
        transport = SubscriberTransport(transport_options(), client.send_offer)
        self.clients.append(client)
        self.subscribers.append(transport)
        for voice in self.voices:
            if voice is not own and self.slots.takes(voice.producer):
                self.slots.offer(transport, voice.producer)
        return transport

    async def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            for voice in self.voices:
                await voice.tick()
            self.now += 0.1
            self.ticks += 1
            if self.ticks % 4 == 0:
                self.detector.update([v.producer for v in self.voices], self.now)
            self.slots.update(self.now)

    def heard(self, transport: SubscriberTransport) -> set[str]:
        """The producers in the transport's audio consumers now."""
        return {c.producer.id for c in transport.consumers if c.producer is not None}

    async def close(self) -> None:
        for transport in self.subscribers:
            await transport.close()
        for client in self.clients:
            await client.pc.close()
        for voice in self.voices:
            await voice.receiver.stop()


async def voices(count: int, first: int = 0) -> list[Voice]:
    made = []
    for i in range(first, first + count):
        producer, receiver = await make_producer(
            WireRecorder(), kind="audio", producer_id=f"pr_{i}"
        )
        made.append(Voice(producer, receiver, i))
    return made


@pytest.fixture
async def calls() -> AsyncIterator[list[Call]]:
    made: list[Call] = []
    yield made
    for call in made:
        await call.close()


async def new_call(calls: list[Call], count: int, **settings: float) -> Call:
    call = Call(await voices(count), SlotSettings(**settings))  # type: ignore[arg-type]
    calls.append(call)
    return call


def ids(*voices: Voice) -> set[str]:
    return {v.producer.id for v in voices}


async def test_the_loudest_take_the_slots_and_a_pinned_one_is_always_there(
    calls: list[Call],
) -> None:
    call = await new_call(calls, 8, slots=3)
    v = call.voices
    listener = call.subscriber()
    v[0].level, v[1].level, v[2].level = 20, 25, 30
    await call.run(1.0)
    assert call.heard(listener) == ids(v[0], v[1], v[2])
    assert len([c for c in listener.consumers if c.kind == "audio"]) == 3
    # The host is pinned: a consumer of its own, silent or not, beside the 3 slots.
    call.slots.set_pinned({v[7].producer.id})
    await call.run(0.3)
    assert call.heard(listener) == ids(v[0], v[1], v[2], v[7])
    # Two others start and the first two stop: the slots follow within the hold time.
    v[0].level = v[1].level = SILENT
    v[3].level, v[4].level = 18, 22
    await call.run(2.5)
    assert call.heard(listener) == ids(v[2], v[3], v[4], v[7])
    assert len(listener.consumers) == 4  # no m-section added for the switches


async def test_two_similar_speakers_do_not_take_turns_in_a_slot(calls: list[Call]) -> None:
    call = await new_call(calls, 4, slots=1)
    v = call.voices
    listener = call.subscriber()
    v[0].level = 24
    await call.run(0.5)
    slot = next(c for c in listener.consumers if c.producer is not None)
    assert slot.producer is v[0].producer
    v[1].level = 23  # alike: 1 dB louder, under the 3 dB margin
    await call.run(3.0)
    assert slot.producer is v[0].producer
    switches = 0
    holder = slot.producer
    for i in range(40):  # 4 s, each voice's level wobbling by 2 dB
        v[0].level, v[1].level = (22, 25) if i % 2 else (26, 23)
        await call.run(0.1)
        if slot.producer is not holder:
            switches, holder = switches + 1, slot.producer
    assert switches == 0
    # A clearly louder speaker takes the slot, after the hold time, not at once.
    v[2].level = 5
    await call.run(0.5)
    assert slot.producer is not v[2].producer
    await call.run(1.5)
    assert slot.producer is v[2].producer
    assert [c for c in listener.consumers] == [slot]


async def test_own_and_paused_producers_are_never_mapped(calls: list[Call]) -> None:
    call = await new_call(calls, 5, slots=2)
    v = call.voices
    speaker = call.subscriber(own=v[0])
    listener = call.subscriber()
    v[0].level, v[1].level, v[2].level = 5, 20, 25
    v[3].producer.pause()  # muted by a host; its client still sends (levels ignored)
    v[3].level = 3
    await call.run(2.5)
    assert call.heard(speaker) == ids(v[1], v[2])  # the loudest is itself: never
    assert call.heard(listener) == ids(v[0], v[1])
    # Muting a mapped speaker frees its slot at the next tick; a waiting one takes it.
    v[1].producer.pause()
    await call.run(0.2)
    assert v[1].producer.id not in call.heard(listener)
    assert call.heard(listener) == ids(v[0], v[2])
    assert v[3].producer.id not in call.heard(listener) | call.heard(speaker)


async def test_a_new_speaker_reaches_a_free_or_silent_slot_before_the_ranking_updates(
    calls: list[Call],
) -> None:
    call = await new_call(calls, 6, slots=2)
    v = call.voices
    listener = call.subscriber()
    v[0].level = 20
    await call.run(2.0)
    v[0].level = SILENT
    await call.run(3.0)  # v[0] is silent by now, still in its slot
    assert call.heard(listener) == ids(v[0])
    call.ticks = 1  # the next detector update is 3 ticks away
    v[4].level, v[5].level = 30, 28
    await call.run(0.1)  # one tick of speech: mapped from the meters alone
    assert call.heard(listener) == ids(v[4], v[5])
    assert call.detector.speakers == []


async def connected_slot(call: Call, listener: SubscriberTransport) -> tuple[Consumer, list]:
    """The listener's one slot over a real loopback connection, and the RTP packets its
    client receives in it."""
    await call.run(0.1)
    (slot,) = listener.consumers
    client = call.clients[call.subscribers.index(listener)]
    await client.answer(listener)
    received: list[RtpPacket] = []
    client_receiver = client.pc.getTransceivers()[0].receiver
    deliver = client_receiver._handle_rtp_packet

    async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
        received.append(packet)
        await deliver(packet, arrival_time_ms)

    client_receiver._handle_rtp_packet = record
    for _ in range(100):
        if slot.sender.started:
            break
        await asyncio.sleep(0.1)
    assert slot.sender.started, "the subscriber's connection did not come up"
    return slot, received


async def test_a_slot_stream_stays_continuous_across_speakers(calls: list[Call]) -> None:
    """What the subscriber's client receives in the slot's m-section: one SSRC,
    sequence numbers and timestamps going on across three speakers."""
    call = await new_call(calls, 4, slots=1)
    v = call.voices
    listener = call.subscriber()
    slot, received = await connected_slot(call, listener)
    for speaker in (v[0], v[1], v[2]):
        speaker.level = 20
        await call.run(2.0)
        speaker.level = SILENT
        await call.run(2.5)
        assert slot.producer is speaker.producer
        await asyncio.sleep(0.3)  # real time for the pacer and the loopback
    await asyncio.sleep(0.5)
    assert len(received) > 3 * 100
    assert {p.ssrc for p in received} == {slot.ssrc}
    assert all((b.sequence_number - a.sequence_number) % 65536 == 1 for a, b in pairs(received))
    assert all(0 < (b.timestamp - a.timestamp) % 2**32 < 2**31 for a, b in pairs(received))


async def test_a_new_speakers_first_words_reach_the_slot(calls: list[Call]) -> None:
    """The packets a speaker sent before the tick that mapped it are sent from the
    producer's cache: the listener gets its speech from the first loud packet."""
    call = await new_call(calls, 4, slots=1)
    v = call.voices
    listener = call.subscriber()
    slot, received = await connected_slot(call, listener)
    await call.run(0.5)  # silence all round: the slot stays empty
    assert slot.producer is None
    v[2].level = 20
    await call.run(1.0)
    await asyncio.sleep(0.5)
    assert slot.producer is v[2].producer
    heard = [int.from_bytes(p.payload[2:4], "big") for p in received if p.payload[1] == 2]
    # Every loud packet, from the first (and a few of the silence before it), in order.
    assert heard[0] <= v[2].loud_seqs[0] <= heard[0] + 3
    assert heard == list(range(heard[0], v[2].loud_seqs[-1] + 1))
    steps = {(b.sequence_number - a.sequence_number) % 65536 for a, b in pairs(received)}
    assert steps == {1}


def pairs(packets: list[RtpPacket]) -> list[tuple[RtpPacket, RtpPacket]]:
    return list(itertools.pairwise(packets))


async def microphones(
    router: Router, count: int, pcs: list[RTCPeerConnection]
) -> tuple[list[Producer], SubscriberTransport]:
    """`count` publishers of a microphone each in `router`, and a subscriber (their
    clients' peer connections go to `pcs`)."""
    producers = []
    for _ in range(count):
        pc, (producer,) = await publish_from_client(router.create_publisher_transport(), ["audio"])
        pcs.append(pc)
        producers.append(producer)
    client = SubscribingClient()
    pcs.append(client.pc)
    return producers, router.create_subscriber_transport(client.send_offer)


async def test_a_call_no_larger_than_the_slots_gets_a_consumer_per_producer() -> None:
    router = Router(transport_options())
    slots = router.bound_audio(SlotSettings(slots=3))
    pcs: list[RTCPeerConnection] = []
    producers, listener = await microphones(router, 3, pcs)
    consumers = [router.consume(listener, p) for p in producers]
    assert all(isinstance(c, Consumer) for c in consumers) and not slots.active
    assert [c.producer for c in listener.consumers] == producers  # as without slots
    # A fourth microphone: the call is larger than the slots; the three consumers
    # become the slots, and the fourth producer is a candidate for them.
    pc, (fourth,) = await publish_from_client(router.create_publisher_transport(), ["audio"])
    pcs.append(pc)
    assert router.consume(listener, fourth) is None and slots.active
    slots.update(1.0)
    assert len(listener.consumers) == 3
    await router.close()
    for pc in pcs:
        await pc.close()


async def test_pinning_moves_a_speaker_out_of_its_slot_and_unpinning_back(
    calls: list[Call],
) -> None:
    call = await new_call(calls, 5, slots=2)
    v = call.voices
    listener = call.subscriber()
    v[0].level, v[1].level = 20, 22
    await call.run(1.0)
    (held,) = [c for c in listener.consumers if c.producer is v[0].producer]
    call.slots.set_pinned({v[0].producer.id})  # a pupil becomes a co-host
    await call.run(0.2)
    own = [c for c in listener.consumers if c.producer is v[0].producer]
    assert len(own) == 1 and own[0] is not held  # its own consumer, not a slot
    assert call.heard(listener) == ids(v[0], v[1])
    v[2].level = 25
    await call.run(0.2)
    assert held.producer is v[2].producer  # the freed slot goes to the next speaker
    call.slots.set_pinned(set())
    await call.run(0.2)
    assert own[0].producer is None  # back among the candidates: both slots are taken
    assert call.heard(listener) == ids(v[1], v[2])


class Rooms:
    """A main room of three microphones bounded to one slot, a pupil offered them all,
    and an empty breakout room (real routers and peer connections)."""

    def __init__(self) -> None:
        options = transport_options()
        self.main, self.breakout = Router(options), Router(options)
        self.slots = self.main.bound_audio(SlotSettings(slots=1))
        self.pcs: list[RTCPeerConnection] = []
        self.producers: list[Producer] = []

    async def start(self) -> SubscriberTransport:
        self.producers, pupil = await microphones(self.main, 3, self.pcs)
        assert [self.main.consume(pupil, p) for p in self.producers] == [None, None, None]
        return pupil

    async def close(self) -> None:
        await self.main.close()
        await self.breakout.close()
        for pc in self.pcs:
            await pc.close()


async def test_a_subscriber_moved_to_a_small_room_gets_its_slots_back_as_consumers() -> None:
    rooms = Rooms()
    pupil = await rooms.start()
    main, breakout, producers, pcs = rooms.main, rooms.breakout, rooms.producers, rooms.pcs
    main.speakers.update(producers, 0.4)
    assert main.audio_slots is not None
    main.audio_slots.update(0.5)
    (slot,) = pupil.consumers
    pc, (roommate,) = await publish_from_client(breakout.create_publisher_transport(), ["audio"])
    pcs.append(pc)
    main.transfer(pupil, breakout)
    assert breakout.consume(pupil, roommate) is slot  # the same m-section, a plain consumer
    assert pupil.consumers == [slot] and slot.producer is roommate
    await rooms.close()


async def test_a_speaker_withdrawn_from_the_room_leaves_the_slots_at_once(
    calls: list[Call],
) -> None:
    call = await new_call(calls, 5, slots=2)
    v = call.voices
    listener = call.subscriber()
    v[0].level, v[1].level = 10, 20
    await call.run(1.0)
    assert call.heard(listener) == ids(v[0], v[1])
    # Its publisher connection moves to a breakout room (Router.transfer): not closed,
    # still speaking loudest, but nobody here may hear it any more.
    call.slots.withdraw(v[0].producer)
    await call.run(0.1)
    assert v[0].producer.id not in call.heard(listener)
    v[2].level = 25
    await call.run(2.0)
    assert call.heard(listener) == ids(v[1], v[2])


async def test_a_publisher_moved_to_another_room_is_withdrawn_from_the_slots() -> None:
    rooms = Rooms()
    pupil = await rooms.start()
    main, slots = rooms.main, rooms.slots
    slots.update(0.5)
    (slot,) = pupil.consumers
    moved = rooms.producers[0]
    pupil.fill_audio_slot(slot, moved)  # as the tick does for a speaker
    slots.update(0.6)
    assert slot.producer is moved  # a mapping the tick keeps while nothing changes
    main.transfer(main.transports[moved.transport_id or ""], rooms.breakout)
    slots.update(0.7)
    assert slot.producer is None
    # Speaking in its new room: loud audio (levels straight into its meter, 20 ms
    # packets) is not a speaker here.
    meter = moved.audio_meter
    assert meter is not None
    for n in range(10):
        meter.observe(True, 10, 960 * n, 48000)
    slots.update(0.8)
    assert slot.producer is None
    await rooms.close()


async def test_a_replaced_publisher_connection_keeps_its_slot(calls: list[Call]) -> None:
    call = await new_call(calls, 5, slots=2)
    v = call.voices
    listener = call.subscriber()
    v[0].level = 20
    await call.run(1.0)
    (slot,) = [c for c in listener.consumers if c.producer is v[0].producer]
    # Its ICE restart: a new producer goes on where the old one was (Router.switch_producer).
    (replacement,) = await voices(1, first=10)
    replacement.level = 20
    old = v[0].producer
    call.voices[0] = replacement
    call.slots.replace(old, replacement.producer)
    listener.switch_source(old, replacement.producer)
    old.close()
    await call.run(1.0)
    assert slot.producer is replacement.producer


async def test_quiet_ticks_walk_no_subscriber_until_something_changes(calls: list[Call]) -> None:
    call = await new_call(calls, 5, slots=2)
    v = call.voices
    listener = call.subscriber()
    v[0].level, v[1].level = 20, 25
    await call.run(1.0)
    call.slots.set_pinned({v[4].producer.id})  # the teacher: a consumer of its own
    await call.run(0.1)
    assert call.heard(listener) == ids(v[0], v[1], v[4])
    walked: list[str] = []
    assign = call.slots._assign

    def counting(state, *args):  # type: ignore[no-untyped-def]
        walked.append(state.transport.id)
        assign(state, *args)

    call.slots._assign = counting  # type: ignore[method-assign]
    # Silence, but for the pinned teacher talking: after one full pass, nothing to do.
    v[0].level = v[1].level = SILENT
    v[4].level = 10
    await call.run(2.0)  # the detector's ranking lets the silent go
    quiet = len(walked)
    await call.run(1.0)
    assert len(walked) == quiet
    assert call.heard(listener) == ids(v[0], v[1], v[4])  # the silent keep their slots
    # A change while quiet is still applied: a muted speaker leaves its slot at once.
    v[0].producer.pause()
    await call.run(0.1)
    assert call.heard(listener) == ids(v[1], v[4]) and len(walked) == quiet + 1
    # And a newcomer speaking is mapped, walking the subscriber again.
    v[2].level = 15
    await call.run(0.3)
    assert v[2].producer.id in call.heard(listener)
