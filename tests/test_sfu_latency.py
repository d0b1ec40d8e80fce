"""sfu/latency.py: one forwarded packet in SAMPLE_EVERY per consumer is timed from its
arrival at the producer to its send, after the pacer when it waited there.

Real receivers, producers, consumers and pacers; only the wire is a recorder.
"""

from __future__ import annotations

import asyncio
import time

from sfu.latency import BOUNDS, SAMPLE_EVERY, LatencyBuckets
from sfu.pacer import Pacer, PacerSettings
from tests.sfu_support import WireRecorder, make_consumer, make_producer, publish, rtp


def test_buckets_are_cumulative_and_include_their_bound() -> None:
    buckets = LatencyBuckets()
    for seconds in (0.0001, 0.0004, 0.0004, 0.2, 3.0):
        buckets.observe(seconds)
    cumulative = dict(buckets.cumulative())
    assert list(cumulative) == [*BOUNDS, float("inf")]
    expected = {0.0001: 1, 0.0005: 3, 0.25: 4, 1.0: 4}
    assert {bound: cumulative[bound] for bound in expected} == expected
    assert cumulative[float("inf")] == buckets.count == 5
    merged = buckets + buckets
    assert merged.count == 10 and merged.total_seconds == 2 * buckets.total_seconds
    assert buckets.count == 5  # the sum is a new object


async def test_one_packet_in_sample_every_is_timed_from_its_arrival() -> None:
    producer, receiver = await make_producer(WireRecorder())
    consumers = [await make_consumer(WireRecorder()) for _ in range(2)]
    for consumer in consumers:
        consumer.attach(producer)
    count = 3 * SAMPLE_EVERY + 5
    await publish(receiver, *(rtp(seq, seq * 3000) for seq in range(count)))
    for consumer in consumers:  # aiortc's own send path here (the wire is no socket)
        assert consumer.packets_sent == count
        assert consumer.pacer.latency.count == 3
        assert 0 < consumer.pacer.latency.total_seconds < 3 * 0.05
    # Timed from when it arrived, not from when forward() was called.
    consumer = consumers[0]
    entry = producer.cached(count - 1)
    assert entry is not None
    for _ in range(SAMPLE_EVERY):
        pending = consumer.forward(entry, time.monotonic() - 0.2)  # arrived 0.2 s ago
        if pending is not None:
            await pending
    assert consumer.pacer.latency.count == 4
    assert dict(consumer.pacer.latency.cumulative())[0.1] == 3  # the new one: over 0.1 s
    await receiver.stop()


async def test_a_packet_the_pacer_held_is_timed_when_it_leaves() -> None:
    producer, receiver = await make_producer(WireRecorder())
    # 20 kB/s: of a burst of 16 packets of 214 bytes, the budget (1,500 bytes) lets the
    # first 7 go at once; the 16th leaves about 0.09 s after it arrived.
    pacer = Pacer(PacerSettings(ceiling_bps=160_000))
    consumer = await make_consumer(WireRecorder(), pacer=pacer)
    consumer.attach(producer)
    payload = b"\x10\x00" + bytes(200)
    await publish(receiver, *(rtp(seq, 0, payload) for seq in range(SAMPLE_EVERY)))
    assert pacer.queued > 0 and pacer.latency.count == 0
    deadline = time.monotonic() + 5
    while consumer.packets_sent < SAMPLE_EVERY:
        assert time.monotonic() < deadline, "the pacer did not send its queue"
        await asyncio.sleep(0.01)
    assert pacer.latency.count == 1
    assert pacer.latency.total_seconds >= 0.05  # its wait in the queue is in it
    pacer.close()
    await receiver.stop()
