"""The CPU cost of the audio slot allocator's tick (sfu/audio_slots.py), in-process.

    python -m bench.audio_slots_cost [--people 150] [--slots 6] [--speakers 6] [--seconds 20]

`--people` participants, each with an audio producer and a subscriber transport
(real Producers on forwarding receivers, real SubscriberTransports whose peer
connections never connect), every producer offered to every other subscriber,
as rooms/ does. Levels go straight into the producers' meters (20 ms packets,
`--speakers` loud at a time, a different set every 2 s; the rest silent); the
router's detector is updated every 4th tick, as rooms/calls/speakers.py does.
Reported: the allocator's tick (`update`) in ms, median and worst, and what
share of one core a tick every 100 ms takes; slot switches made.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.idle_producers import idle_producer
from sfu.active_speaker import ActiveSpeakerDetector
from sfu.audio_slots import TICK, AudioSlotAllocator, SlotSettings
from sfu.ice import rtc_configuration
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import TransportOptions


async def _no_offer(sdp: str, tracks: object) -> None:
    return None


async def run(people: int, slots: int, speakers: int, seconds: float) -> dict[str, float]:
    options = TransportOptions(
        configuration_factory=lambda: rtc_configuration([]), listen_addresses=("127.0.0.1",)
    )
    producers = [idle_producer("audio", i) for i in range(people)]
    subscribers = [SubscriberTransport(options, _no_offer) for _ in range(people)]
    detector = ActiveSpeakerDetector()
    allocator = AudioSlotAllocator(
        lambda: producers, lambda: subscribers, detector, SlotSettings(slots=slots)
    )
    for own, transport in enumerate(subscribers):
        for index, producer in enumerate(producers):
            if index != own and allocator.takes(producer):
                allocator.offer(transport, producer)
    timestamps = [0] * people
    ticks: list[float] = []
    switches = 0
    carried: dict[int, str | None] = {}
    now = 0.0
    for tick in range(round(seconds / TICK)):
        first = (tick // 20) * speakers % people  # a new set of speakers every 2 s
        loud = {(first + k) % people for k in range(speakers)}
        for index, producer in enumerate(producers):
            meter = producer.audio_meter
            assert meter is not None
            for _ in range(5):  # 100 ms of 20 ms packets
                timestamps[index] += 960
                meter.observe(index in loud, 20 if index in loud else 127, timestamps[index], 48000)
        now += TICK
        if tick % 4 == 3:
            detector.update(producers, now)
        started = time.perf_counter()
        allocator.update(now)
        if tick:  # the first tick opens every slot (and schedules the offers)
            ticks.append(time.perf_counter() - started)
        for transport in subscribers:
            for consumer in transport.audio_slots:
                key = id(consumer)
                current = consumer.producer.id if consumer.producer is not None else None
                if carried.get(key, current) != current:
                    switches += 1
                carried[key] = current
        await asyncio.sleep(0)  # the offers being built run here, not in the timings
    for transport in subscribers:
        await transport.close()
    for producer in producers:
        producer.close()
    median = statistics.median(ticks) * 1000
    return {
        "tick_median_ms": median,
        "tick_worst_ms": max(ticks) * 1000,
        "core_share_percent": median / (TICK * 1000) * 100,
        "switches": switches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--slots", type=int, default=6)
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.people, args.slots, args.speakers, args.seconds))
    print(
        f"{args.people} people, {args.slots} slots, {args.speakers} speaking: "
        f"tick {result['tick_median_ms']:.2f} ms median, {result['tick_worst_ms']:.2f} ms worst "
        f"({result['core_share_percent']:.1f} % of a core at one tick per {TICK * 1000:.0f} ms); "
        f"{result['switches']:.0f} slot switches"
    )


if __name__ == "__main__":
    main()
