"""CPU per forwarded packet on the SFU's Python path, without and with simulcast.

In-process: a real ForwardingReceiver, Producer and Consumers, the network cut
at both ends (packets handed to the receiver as aiortc's transport would; the
consumers' fast send path replaced by a counter), so only our forwarding code
and aiortc's receive-side bookkeeping are timed, not SRTP or sockets.

    python bench/simulcast_cost.py              # this tree: single stream and simulcast
    PYTHONPATH=/path/to/other/tree python bench/simulcast_cost.py --single
                                                # another tree (before simulcast): single only

Best of `--passes` passes of `--frames` frames; prints µs per forwarded packet.
Single: one stream, every consumer forwards every packet. Simulcast: three
layers, the consumers spread over them (each forwards a third of what comes in).
With `--paused N`, N more consumers are paused (tiles not shown: a class of 31 on
grid pages of 16 has 15 of 30 paused); they forward nothing, only cost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import RtpPacket

from sfu.aiortc_hooks import ForwardingReceiver, ForwardingSender
from sfu.consumer import Consumer
from sfu.pacer import Pacer, PacerSettings
from sfu.producer import Producer

VP8_IN = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
VP8_OUT = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
PACKETS_PER_FRAME = 4
PAYLOAD = bytes(1000)


class _Wire:
    """The DTLS transport's place: registrations accepted, nothing sent."""

    state = "connected"

    def __init__(self) -> None:
        self._rtp_router = RtpRouter()  # the receiver registers its RTX SSRCs here

    async def _send_rtp(self, data: bytes) -> None:
        pass

    def _register_rtp_receiver(self, receiver: Any, parameters: Any) -> None:
        pass

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None:
        pass


class _CountingPath:
    """Stands in for FastRtpPath: counts what would go to the socket."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: bytes) -> bool:
        self.sent += 1
        return True


def _vp8(picture_id: int, key: bool, start: bool) -> bytes:
    first = 0x90 if start else 0x80
    descriptor = bytes([first, 0xC0, 0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF, 0])
    return descriptor + (b"\x00" if key else b"\x01") + PAYLOAD


def _packets(layers: int, frames: int) -> list[RtpPacket]:
    out = []
    seq = [1000 * (layer + 1) for layer in range(layers)]
    for frame in range(frames):
        for layer in range(layers):
            for i in range(PACKETS_PER_FRAME):
                packet = RtpPacket(
                    payload_type=96,
                    sequence_number=seq[layer] % 65536,
                    timestamp=frame * 3000,
                    ssrc=100 + layer,
                    marker=int(i == PACKETS_PER_FRAME - 1),
                )
                packet.payload = _vp8(frame, key=frame == 0, start=i == 0)
                if layers > 1 and frame == 0:
                    packet.extensions.rtp_stream_id = "qhf"[layer]
                seq[layer] += 1
                out.append(packet)
    return out


async def _pass(layers: int, consumers: int, frames: int, paused: int = 0) -> float:
    """µs per forwarded packet of one pass."""
    wire = _Wire()
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("video", wire))  # type: ignore[arg-type]
    if layers > 1:
        from sfu.simulcast import RidDemux  # absent from trees before simulcast

        receiver.rids = RidDemux(("q", "h", "f"))
    await receiver.receive(RTCRtpReceiveParameters(codecs=[VP8_IN], muxId="0"))
    producer = Producer("pr_bench", "video", receiver, {})
    paths = []
    for i in range(consumers + paused):
        sender = ForwardingSender.adopt(RTCRtpSender("video", wire))  # type: ignore[arg-type]
        consumer = Consumer(f"co_{i}", "video", sender, Pacer(PacerSettings(enabled=False)))
        await sender.send(RTCRtpSendParameters(codecs=[VP8_OUT], muxId="0"))
        path = _CountingPath()
        consumer._fast = path  # type: ignore[assignment]
        paths.append(path)
        if layers > 1:
            consumer.set_target_layer(i % layers)
        consumer.attach(producer)
        if i >= consumers:
            consumer.pause()
    packets = _packets(layers, frames)
    started = time.process_time()  # CPU time: the machine is shared
    for packet in packets:
        await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
    elapsed = time.process_time() - started
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()
    forwarded = sum(p.sent for p in paths)
    return elapsed / forwarded * 1e6


async def _best(layers: int, consumers: int, frames: int, passes: int, paused: int) -> float:
    return min([await _pass(layers, consumers, frames, paused) for _ in range(passes)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consumers", type=int, default=12)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--paused", type=int, default=0, help="paused consumers besides")
    parser.add_argument("--single", action="store_true", help="single stream only")
    args = parser.parse_args()
    cases = [("single", 1)] + ([] if args.single else [("simulcast", 3)])
    for name, layers in cases:
        figure = asyncio.run(_best(layers, args.consumers, args.frames, args.passes, args.paused))
        print(
            f"{name}: {figure:.2f} µs per forwarded packet ({args.consumers} consumers,"
            f" {args.paused} paused)"
        )


if __name__ == "__main__":
    main()
