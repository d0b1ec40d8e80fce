"""The Python cost of a thumbnail's temporal layers (sfu/temporal_layers.py), per packet
that reaches the consumer, with and without the cap.

    python -m bench.temporal_cost [--packets 4000] [--passes 100]

As bench.forward_cost (a real Consumer, Pacer, ForwardingSender and Producer; the
socket left out), fed a VP8 stream in Chromium's temporal pattern (TIDs 0 2 1 2, two
packets a picture). One consumer forwards every layer, one only TIDs 0 and 1 (half
the pictures left out: numbered on without them, picture ids rewritten on the rest).
Passes alternate; the best of each is reported, in µs per packet arriving, and what
each sent.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiortc import RTCRtpReceiver

from bench.forward_cost import _VP8, _consumer, _Socket, _Wire
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.consumer import Consumer
from sfu.producer import CachedPacket, Producer

PATTERN = (0, 2, 1, 2)


def stream(first: int, pictures: int) -> list[CachedPacket]:
    """Two packets a picture: descriptor X S|I L T, 15-bit picture id, TL0PICIDX, TID."""
    out = []
    for n in range(first, first + pictures):
        tid = PATTERN[n % 4]
        for part in range(2):
            head = bytes([0x90 if part == 0 else 0x80, 0xE0, 0x80 | (n >> 8) & 0x7F, n & 0xFF])
            head += bytes([(n // 4) & 0xFF, tid << 6, 0x01])
            seq = (2 * n + part) % 65536
            out.append(CachedPacket(seq, n * 3000, part, head + bytes(1100), _VP8, 0.0))
    return out


def _pass(consumer: Consumer, entries: list[CachedPacket]) -> float:
    started = time.perf_counter()
    for entry in entries:
        consumer.forward(entry, time.monotonic())
    return (time.perf_counter() - started) / len(entries) * 1e6


async def measure(packets: int, passes: int) -> tuple[dict[str, float], dict[str, int]]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", _Wire()))  # type: ignore[arg-type]
    producer = Producer("pr", "video", receiver, {})
    every, thumbnail = await _consumer(producer, False), await _consumer(producer, False)
    thumbnail.set_temporal_cap(1)
    kinds = [("every layer", every), ("TIDs 0-1 (a thumbnail)", thumbnail)]
    best = {name: float("inf") for name, _ in kinds}
    for n in range(passes):
        entries = stream(n * packets // 2, packets // 2)
        for name, consumer in kinds[n % 2 :] + kinds[: n % 2]:
            best[name] = min(best[name], _pass(consumer, entries))
    sent = {name: consumer.packets_sent for name, consumer in kinds}
    assert isinstance(thumbnail._fast, _Socket)
    return best, sent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.temporal_cost", description=__doc__)
    parser.add_argument("--packets", type=int, default=4_000)
    parser.add_argument("--passes", type=int, default=100)
    args = parser.parse_args()
    best, sent = asyncio.run(measure(args.packets, args.passes))
    for name, us in best.items():
        print(f"{name}: {us:.3f} µs per packet arriving, {sent[name]} sent (best of {args.passes})")
    every, thumb = best.values()
    print(f"thumbnail / every layer: {thumb / every:.2f}")


if __name__ == "__main__":
    main()
