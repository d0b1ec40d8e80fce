"""The Python cost of forwarding one packet to one subscriber, with and without abs-send-time,
and with and without timing the forwarding latency.

    python -m bench.forward_cost [--packets 5000] [--passes 200]

A real Consumer behind a real (unpaced) Pacer and ForwardingSender, fed by a
real Producer; only the socket is left out (the consumer's fast path is a stub
that takes the packet). Two consumers, one whose subscriber negotiated
abs-send-time (a 20-byte header, stamped) and one that did not (12 bytes), are
timed in alternating passes; the best pass of each is reported, in µs per
packet. SRTP and the socket, ~25 µs of the ~28 µs per packet of the whole path
(docs/performance.md), are the same for both.

A third consumer, "12-byte header, not timed", is like the first one but with the
latency sample switched off (sfu/latency.py: `SAMPLE_MASK` -1, so the per-packet
test never picks a packet): the ratio of the two is what timing one packet in
SAMPLE_EVERY costs (the `&` test itself stays in both; it is a few ns).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)

import sfu.consumer
from sfu.aiortc_hooks import ForwardingReceiver, ForwardingSender
from sfu.bandwidth import ABS_SEND_TIME_URI
from sfu.consumer import Consumer
from sfu.latency import SAMPLE_EVERY, SAMPLE_MASK
from sfu.pacer import Pacer, PacerSettings
from sfu.producer import CachedPacket, Producer

_VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


class _Wire:
    """Stands in for the DTLS transport: registers, sends nothing."""

    state = "connected"
    _stats_id = "bench"

    def __init__(self) -> None:
        self._rtp_router = RtpRouter()  # the receiver registers its RTX SSRCs with it

    def _register_rtp_sender(self, *_: object) -> None: ...

    def _register_rtp_receiver(self, *_: object) -> None: ...


class _Socket:
    """The consumer's fast path without SRTP and sendto."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: bytes) -> bool:
        self.sent += len(data)
        return True


async def _consumer(producer: Producer, abs_send_time: bool) -> Consumer:
    sender = ForwardingSender.adopt(RTCRtpSender("video", _Wire()))  # type: ignore[arg-type]
    consumer = Consumer("co", "video", sender, Pacer(PacerSettings(enabled=False)))
    extensions = [RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI)]
    await sender.send(
        RTCRtpSendParameters(
            codecs=[_VP8], headerExtensions=extensions if abs_send_time else [], muxId="0"
        )
    )
    consumer.attach(producer)
    consumer._fast = _Socket()  # type: ignore[assignment]  # the socket left out
    consumer._awaiting_keyframe = False
    return consumer


def _pass(consumer: Consumer, entries: list[CachedPacket], timed: bool = True) -> float:
    sfu.consumer.SAMPLE_MASK = SAMPLE_MASK if timed else -1  # -1: `packets_sent & -1` never 0
    try:
        started = time.perf_counter()
        for entry in entries:
            consumer.forward(entry, time.monotonic())
        return (time.perf_counter() - started) / len(entries) * 1e6
    finally:
        sfu.consumer.SAMPLE_MASK = SAMPLE_MASK


async def measure(packets: int, passes: int) -> dict[str, float]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", _Wire()))  # type: ignore[arg-type]
    await receiver.receive(RTCRtpReceiveParameters(codecs=[_VP8], muxId="0"))
    producer = Producer("pr", "video", receiver, {})
    plain, stamped = await _consumer(producer, False), await _consumer(producer, True)
    untimed = await _consumer(producer, False)  # its own: a consumer drops a repeated seq
    payload = b"\x00\x00" + bytes(1100)
    kinds = [
        ("12-byte header", plain, True),
        ("abs-send-time", stamped, True),
        ("12-byte header, not timed", untimed, False),
    ]
    best = {name: float("inf") for name, _, _ in kinds}
    for n in range(passes):
        entries = [
            CachedPacket((n * packets + i) % 65536, i * 3000, i % 5 == 0, payload, _VP8, 0.0)
            for i in range(packets)
        ]
        for name, consumer, timed in kinds[n % 3 :] + kinds[: n % 3]:  # each goes first in turn
            best[name] = min(best[name], _pass(consumer, entries, timed))
    assert plain._fast.sent and stamped._fast.sent, "nothing forwarded"  # type: ignore[union-attr]
    assert stamped.pacer.latency.count == stamped.packets_sent // SAMPLE_EVERY, "not sampled"
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.forward_cost", description=__doc__)
    parser.add_argument("--packets", type=int, default=5_000)
    parser.add_argument("--passes", type=int, default=200)
    args = parser.parse_args()
    best = asyncio.run(measure(args.packets, args.passes))
    for name, us in best.items():
        print(f"{name}: {us:.3f} µs per packet (best of {args.passes} passes)")
    print(f"difference: {best['abs-send-time'] - best['12-byte header']:+.3f} µs per packet")
    untimed = best["12-byte header, not timed"]
    print(
        f"latency timed (1 in {SAMPLE_EVERY}) / not timed: "
        f"{best['12-byte header'] / untimed:.3f} ({best['12-byte header'] - untimed:+.3f} µs)"
    )


if __name__ == "__main__":
    main()
