"""What one GET /metrics scrape costs on a node with many consumers.

The collector (signalling/metrics.py) walks every transport, producer and
consumer at scrape time instead of counting per packet, so its cost grows
with the number of consumers. This builds real ones in one app's media
engine: `publishers` PublisherTransports, each given an aiortc client's
offer of one audio and one video track (so real Producers), and
`subscribers` SubscriberTransports consuming every producer (real Consumers
on real aiortc senders; no media flows, which changes nothing for the walk:
the counters are read, not computed). It times the scrape of the empty app
first (the baseline), then of the loaded one, both through the registry's
own exposition, as the route serves it.

    python -m bench.metrics_scrape --publishers 30 --subscribers 30
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

from aiortc import RTCPeerConnection
from prometheus_client.exposition import generate_latest

from signalling.app import create_app
from signalling.config import Settings
from signalling.keys import MEDIA
from signalling.metrics import REGISTRY


def _timed(registry: object, rounds: int) -> tuple[float, float, int]:
    """Median CPU seconds and median wall seconds of `rounds` scrapes, and the exposition's
    size. CPU time (the thread's) is what a scrape costs the event loop and stays the same
    on a busy shared machine; wall time also holds what the OS gave other processes."""
    cpu, wall, size = [], [], 0
    for _ in range(rounds):
        start, cpu_start = time.perf_counter(), time.thread_time()
        size = len(generate_latest(registry))  # type: ignore[arg-type]
        cpu.append(time.thread_time() - cpu_start)
        wall.append(time.perf_counter() - start)
    return statistics.median(cpu), statistics.median(wall), size


async def _offer() -> tuple[RTCPeerConnection, str]:
    client = RTCPeerConnection()
    client.addTransceiver("audio", direction="sendonly")
    client.addTransceiver("video", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    return client, client.localDescription.sdp


async def run(publishers: int, subscribers: int, rounds: int) -> None:
    with TemporaryDirectory() as data:
        app = create_app(replace(Settings(), data_dir=Path(data)))
        registry = app[REGISTRY]
        empty = _timed(registry, rounds)
        engine = app[MEDIA]
        router = engine.create_router()
        clients, producers = [], []
        for _ in range(publishers):
            client, sdp = await _offer()
            clients.append(client)
            _, created = await router.create_publisher_transport().handle_offer(sdp, {})
            producers.extend(created)

        async def ignore_offer(sdp: str, tracks: object) -> None:
            return None

        for _ in range(subscribers):
            subscriber = router.create_subscriber_transport(ignore_offer)
            for producer in producers:
                router.consume(subscriber, producer)
        await asyncio.sleep(0.5)  # let the subscribers' offers be built: not what is timed
        consumers = len(router.consumers)
        loaded = _timed(registry, rounds)
        print(f"producers {len(producers)}, consumers {consumers}, {rounds} scrapes each")
        for name, (cpu, wall, size) in (("empty node", empty), ("loaded node", loaded)):
            print(
                f"{name:12} median {cpu * 1000:7.2f} ms CPU ({wall * 1000:7.2f} ms wall)"
                f"  exposition {size} bytes"
            )
        per_consumer = (loaded[0] - empty[0]) / max(consumers, 1)
        print(f"per consumer {per_consumer * 1e6:.2f} µs; ratio {loaded[0] / empty[0]:.1f}x")
        await engine.close()
        for client in clients:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--publishers", type=int, default=30)
    parser.add_argument("--subscribers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.publishers, args.subscribers, args.rounds))


if __name__ == "__main__":
    main()
