"""What judging everyone's link once a second costs: `python -m bench.link_watch_cost`.

The call's watch (rooms/calls/weak_links.py) reads every consumer's counters
each second and feeds each person's judge and plan. This times that work
alone, with real consumers and senders (no network: they never send), for a
lesson of N subscribers with S streams each, as CPU time per round.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters

from rooms.calls.downlink import DownlinkSampler
from rooms.hold_back import HoldPlanner
from rooms.link_quality import LinkJudge
from sfu.aiortc_hooks import ForwardingReceiver, ForwardingSender
from sfu.consumer import Consumer
from sfu.producer import Producer

_CODECS = {
    "audio": RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111),
    "video": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
}


class _NoWire:
    """Stands in for a DTLS transport: the senders are registered, nothing is sent."""

    state = "connected"
    _stats_id = "bench"

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None:
        pass


class _Subscriber:
    """What the sampler reads of a subscriber connection: its consumers."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self.consumers = consumers


def _kind(index: int) -> str:
    return "video" if index % 2 else "audio"


def _producers(streams: int) -> list[Producer]:
    """One producer per stream, shared by every subscriber (they never receive a packet)."""
    producers = []
    for index in range(streams):
        receiver = RTCRtpReceiver(_kind(index), _NoWire())  # type: ignore[arg-type]
        producers.append(
            Producer(f"pr_{index}", _kind(index), ForwardingReceiver.adopt(receiver), {})
        )
    return producers


async def _subscriber(producers: list[Producer]) -> _Subscriber:
    consumers = []
    for index, producer in enumerate(producers):
        kind = _kind(index)
        sender = ForwardingSender.adopt(RTCRtpSender(kind, _NoWire()))  # type: ignore[arg-type]
        await sender.send(RTCRtpSendParameters(codecs=[_CODECS[kind]]))
        consumer = Consumer(f"co_{index}", kind, sender)
        consumer.attach(producer, ready=False)
        consumers.append(consumer)
    return _Subscriber(consumers)


async def measure(subscribers: int, streams: int, rounds: int) -> float:
    """CPU seconds per round of judging everyone."""
    producers = _producers(streams)
    people = [
        (await _subscriber(producers), DownlinkSampler(), LinkJudge(), HoldPlanner())
        for _ in range(subscribers)
    ]
    videos = [p.id for p in producers if p.kind == "video"]
    for subscriber, sampler, _, _ in people:
        sampler.sample(subscriber, 0.0)  # type: ignore[arg-type]
    started = time.process_time()
    for now in range(1, rounds + 1):
        for subscriber, sampler, judge, planner in people:
            sample = sampler.sample(subscriber, float(now))  # type: ignore[arg-type]
            assert sample is not None
            judge.observe(sample, float(now))
            planner.step(now, judge.weak_for(now), judge.clean_for(now), videos)
    return (time.process_time() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=31)
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    seconds = asyncio.run(measure(args.subscribers, args.streams, args.rounds))
    print(
        f"{args.subscribers} subscribers x {args.streams} streams: "
        f"{seconds * 1000:.1f} ms of CPU per round (once a second)"
    )


if __name__ == "__main__":
    main()
