"""What reading audio levels costs per packet: `python -m bench.audio_level_cost`.

Chromium's audio packets carry the RFC 6464 level in a one-byte header
extension (with mid, abs-send-time and transport-wide sequence numbers).
aiortc's RTP parser reads it when its id is negotiated; the producer hands it
to its meter (sfu/audio_level.py); the detector (sfu/active_speaker.py) takes
each producer's meter once per 0.4 s. This times, in one run, on real
producers (no network):

- parse: aiortc's `RtpPacket.parse` of such a packet with the level's id known
  (what the server does now) against the same packet with it unknown (before);
- producer: one packet through the producer's receive path with a level
  against the same packet without one (no consumers: only the producer's work);
- detector: one update per audio producer.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu.active_speaker import ActiveSpeakerDetector
from sfu.aiortc_hooks import ForwardingReceiver
from sfu.audio_level import AUDIO_LEVEL_URI
from sfu.producer import Producer

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
# Chromium's audio extmap (tests/test_sfu_audio_sdp.py has its whole offer).
CHROMIUM_EXTENSIONS = {
    1: AUDIO_LEVEL_URI,
    2: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    3: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    4: "urn:ietf:params:rtp-hdrext:sdes:mid",
}


class _NoWire:
    """Stands in for a DTLS transport: the receiver registers, nothing is sent."""

    state = "connected"
    _stats_id = "bench"

    def _register_rtp_receiver(self, receiver: Any, parameters: Any) -> None:
        pass


def extension_map(with_level: bool) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uri)
                for i, uri in CHROMIUM_EXTENSIONS.items()
                if with_level or uri != AUDIO_LEVEL_URI
            ]
        )
    )
    return extensions


def chromium_packet(seq: int, level: int | None) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960, ssrc=4242)
    packet.payload = bytes(60)  # a typical Opus frame of speech at 24 kbit/s
    packet.extensions.mid = "0"
    packet.extensions.abs_send_time = 0x123456
    packet.extensions.transport_sequence_number = seq
    if level is not None:
        packet.extensions.audio_level = (True, level)
    return packet


def per_call_ns(seconds: float, count: int) -> float:
    return seconds * 1e9 / count


def time_parse(packets: int) -> tuple[float, float]:
    wire = chromium_packet(1, 25).serialize(extension_map(True))
    known, unknown = extension_map(True), extension_map(False)
    results = []
    for extensions in (unknown, known):
        start = time.process_time()
        for _ in range(packets):
            RtpPacket.parse(wire, extensions)
        results.append(per_call_ns(time.process_time() - start, packets))
    assert RtpPacket.parse(wire, known).extensions.audio_level == (True, 25)
    return results[0], results[1]


async def _producer(name: str) -> tuple[Producer, ForwardingReceiver]:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver("audio", _NoWire()))  # type: ignore[arg-type]
    return Producer(name, "audio", receiver, {}), receiver


async def time_producer(packets: int) -> tuple[float, float]:
    results = []
    for level in (None, 25):
        producer, receiver = await _producer("pr_bench")
        sink = receiver.sink
        assert sink is not None
        batch = [chromium_packet(seq, level) for seq in range(1000)]
        start = time.process_time()
        for index in range(packets):
            await sink(batch[index % 1000], OPUS)
        results.append(per_call_ns(time.process_time() - start, packets))
        meter = producer.audio_meter
        assert meter is not None and meter.packets_with_level == (packets if level else 0)
    return results[0], results[1]


async def time_detector(producer_count: int, rounds: int) -> float:
    producers = [(await _producer(f"pr_{i}"))[0] for i in range(producer_count)]
    for producer in producers:
        meter = producer.audio_meter
        assert meter is not None
        for seq in range(20):  # one interval of packets: what update() then takes
            meter.observe(True, 20 if seq % 2 else 127, seq * 960, 48000)
    detector = ActiveSpeakerDetector()
    start = time.process_time()
    for index in range(rounds):
        detector.update(producers, index * 0.4)
    return per_call_ns(time.process_time() - start, rounds * producer_count)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=31)
    parser.add_argument("--rounds", type=int, default=2_000)
    args = parser.parse_args()
    before, after = time_parse(args.packets)
    print(f"parse, level id unknown (before): {before:7.0f} ns/packet")
    print(f"parse, level id known (now):      {after:7.0f} ns/packet  (+{after - before:.0f} ns)")
    without, with_level = await time_producer(args.packets)
    print(f"producer, packet without level:   {without:7.0f} ns/packet")
    print(
        f"producer, packet with level:      {with_level:7.0f} ns/packet"
        f"  (+{with_level - without:.0f} ns)"
    )
    added = (after - before) + (with_level - without)
    print(f"added per audio packet: {added:.0f} ns, {added / (before + without):.1%} of the rest")
    detector = await time_detector(args.producers, args.rounds)
    print(f"detector: {detector:.0f} ns per audio producer per 0.4 s update")


if __name__ == "__main__":
    asyncio.run(main())
