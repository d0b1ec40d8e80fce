"""The Python cost of forwarding one packet to one subscriber, with and without abs-send-time.

    python -m bench.forward_cost [--packets 5000] [--passes 200]

A real Consumer behind a real (unpaced) Pacer and ForwardingSender, fed by a
real Producer; only the socket is left out (the consumer's fast path is a stub
that takes the packet). Two consumers, one whose subscriber negotiated
abs-send-time (a 20-byte header, stamped) and one that did not (12 bytes), are
timed in alternating passes; the best pass of each is reported, in µs per
packet. SRTP and the socket, ~25 µs of the ~28 µs per packet of the whole path
(docs/performance.md), are the same for both.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)

from sfu.aiortc_hooks import ForwardingReceiver, ForwardingSender
from sfu.bandwidth import ABS_SEND_TIME_URI
from sfu.consumer import Consumer
from sfu.pacer import Pacer, PacerSettings
from sfu.producer import CachedPacket, Producer

_VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


class _Wire:
    """Stands in for the DTLS transport: registers, sends nothing."""

    state = "connected"
    _stats_id = "bench"

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


def _pass(consumer: Consumer, entries: list[CachedPacket]) -> float:
    started = time.perf_counter()
    for entry in entries:
        consumer.forward(entry, time.monotonic())
    return (time.perf_counter() - started) / len(entries) * 1e6


async def measure(packets: int, passes: int) -> dict[str, float]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", _Wire()))  # type: ignore[arg-type]
    await receiver.receive(RTCRtpReceiveParameters(codecs=[_VP8], muxId="0"))
    producer = Producer("pr", "video", receiver, {})
    plain, stamped = await _consumer(producer, False), await _consumer(producer, True)
    payload = b"\x00\x00" + bytes(1100)
    best = {"12-byte header": float("inf"), "abs-send-time": float("inf")}
    for n in range(passes):
        entries = [
            CachedPacket((n * packets + i) % 65536, i * 3000, i % 5 == 0, payload, _VP8, 0.0)
            for i in range(packets)
        ]
        for name, consumer in (("12-byte header", plain), ("abs-send-time", stamped))[
            :: 1 if n % 2 else -1
        ]:
            best[name] = min(best[name], _pass(consumer, entries))
    assert plain._fast.sent and stamped._fast.sent, "nothing forwarded"  # type: ignore[union-attr]
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


if __name__ == "__main__":
    main()
