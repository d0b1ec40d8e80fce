"""The CPU of receiving one SRTP packet: aiortc's queue and receive task, or FastReceive.

    python -m bench.receive_cost [--packets 20000] [--passes 6] [--burst 16]

(in a network namespace with loopback up, like the other benches.) One process, two
pairs on loopback, each a server PublisherTransport with one video producer and an
aiortc client whose ForwardingSender sends numbered 1,100-byte VP8 packets on the
FastRtpPath (SRTP, then the socket). One pair's server transport receives by
sfu/aiortc_fast_receive.py's FastReceive, the other's by aiortc's own path (the module's
MISSING set while it is made). Passes alternate between them: `--burst` packets
sent, then the loop runs until the producer has them all (a tap counts), and so on; the process's
CPU time over a pass, per packet. Sending costs both the same, so the difference is
what the receive path saves a packet (the median pass of each is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

import sfu.aiortc_fast_receive
from sfu.aiortc_fast_receive import fast_receive_of
from sfu.aiortc_hooks import FastRtpPath, ForwardingSender, restrict_host_addresses
from sfu.ice import rtc_configuration
from sfu.producer import CachedPacket, Producer
from sfu.transport import PublisherTransport, TransportOptions

PAYLOAD = b"\x10\x00" + bytes(1098)


class Pair:
    """A client sending to a server transport, with or without FastReceive."""

    def __init__(self, fast: bool) -> None:
        self.fast = fast
        self.seq = 0
        self.arrived = self.wanted = 0  # packets at the producer, packets sent
        self.all_in: asyncio.Future[None] = asyncio.Future()

    async def open(self) -> None:
        options = TransportOptions(
            configuration_factory=lambda: rtc_configuration([]), listen_addresses=("127.0.0.1",)
        )
        self.server = PublisherTransport(options)
        self.client = RTCPeerConnection(rtc_configuration([]))
        self.sender = ForwardingSender.adopt(
            self.client.addTransceiver("video", direction="sendonly").sender
        )
        await self.client.setLocalDescription(await self.client.createOffer())
        missing = sfu.aiortc_fast_receive.MISSING
        sfu.aiortc_fast_receive.MISSING = missing if self.fast else ["off for the baseline"]
        try:
            answer, (producer,) = await self.server.handle_offer(
                self.client.localDescription.sdp, {"0": {}}
            )
        finally:
            sfu.aiortc_fast_receive.MISSING = missing
        self.producer: Producer = producer
        await self.client.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for _ in range(1000):  # 10 s at most
            if self.sender.started and self.server.connection_state == "connected":
                break
            await asyncio.sleep(0.01)
        producer.add_tap(self._arrive)
        dtls = self.server.pc.getTransceivers()[0].receiver.transport
        assert (fast_receive_of(dtls) is not None) == self.fast
        path = FastRtpPath.for_transport(self.sender.transport)
        assert path is not None
        self.path = path

    def _arrive(self, producer: Producer, entry: CachedPacket) -> None:
        self.arrived += 1
        if self.arrived >= self.wanted and not self.all_in.done():
            self.all_in.set_result(None)

    async def close(self) -> None:
        await self.server.close()
        await self.client.close()

    async def run(self, packets: int, burst: int) -> float:
        """CPU seconds per packet over `packets`, sent `burst` at a time."""
        payload_type = self.sender.negotiated_codecs[0].payloadType
        assert payload_type is not None
        ssrc, loop = self.sender.ssrc, asyncio.get_running_loop()
        start = time.process_time()
        async with asyncio.timeout(60):  # a packet lost on loopback: no figure
            for _ in range(packets // burst):
                self.wanted += burst
                self.all_in = loop.create_future()
                for _ in range(burst):
                    self.seq = (self.seq + 1) % 65536
                    packet = RtpPacket(
                        payload_type=payload_type,
                        sequence_number=self.seq,
                        timestamp=self.seq * 3000,
                        ssrc=ssrc,
                    )
                    packet.payload = PAYLOAD
                    assert self.path.send(packet.serialize())
                await self.all_in
        return (time.process_time() - start) / (packets // burst * burst)


async def measure(packets: int, passes: int, burst: int) -> dict[str, list[float]]:
    restrict_host_addresses(["127.0.0.1"])
    pairs = {"aiortc's queue and task": Pair(False), "FastReceive": Pair(True)}
    for pair in pairs.values():
        await pair.open()
    try:
        for pair in pairs.values():  # warm up
            await pair.run(min(packets, 2000), burst)
        results: dict[str, list[float]] = {name: [] for name in pairs}
        for _ in range(passes):
            for name, pair in pairs.items():
                results[name].append(await pair.run(packets, burst))
        return results
    finally:
        for pair in pairs.values():
            await pair.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--passes", type=int, default=6)
    parser.add_argument("--burst", type=int, default=16)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.packets, args.passes, args.burst))
    medians = {name: statistics.median(r) * 1e6 for name, r in results.items()}
    for name, r in results.items():
        passes = " ".join(f"{x * 1e6:.1f}" for x in r)
        print(f"{name:>24}: median {medians[name]:.1f} µs/packet (passes {passes})")
    base, fast = medians.values()
    print(f"saved {base - fast:.1f} µs a packet (send + receive ×{fast / base:.2f})")


if __name__ == "__main__":
    main()
