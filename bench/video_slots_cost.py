"""What a subscriber's offers cost in a call of many cameras, with the video bound
(sfu/video_slots.py) and without it, in-process.

    python -m bench.video_slots_cost [--cameras 150] [--bound 30] [--page 16] [--flips 6]

One subscriber (a real SubscriberTransport, answered by a real aiortc client;
neither ever connects) is asked to receive `--cameras` video producers (real
Producers on forwarding receivers that never start), as rooms/ does when someone
joins a large call. Then its page shows `--page` cameras at a time (`hold` with
all the others, as the page's `track_view`s make it), flipping to the next page
`--flips` times. Both variants in one run, the bound first: the join's offer
(m-sections, KB, the server's SDP work: from the request to the offer sent, and
applying the answer; wall time and the process's CPU time, which a busy machine
disturbs less), the answer's size, and per page flip the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import replace
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.idle_producers import idle_producer
from sfu.ice import rtc_configuration
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import TransportOptions


class _Client:
    """The subscriber's other side: answers each offer; the server's part is timed."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.offers: asyncio.Queue[tuple[str, float, float]] = asyncio.Queue()
        self.rounds: list[dict[str, float]] = []

    async def send_offer(self, sdp: str, tracks: object) -> None:
        self.offers.put_nowait((sdp, time.perf_counter(), time.process_time()))

    async def answer(
        self, transport: SubscriberTransport, asked: tuple[float, float], within: float = 60.0
    ) -> bool:
        """Answer the next offer; False: none came `within` seconds. `asked`: the wall
        and CPU clocks when the offer was asked for."""
        try:
            sdp, sent_at, sent_cpu = await asyncio.wait_for(self.offers.get(), within)
        except TimeoutError:
            return False
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = self.pc.localDescription.sdp
        started, started_cpu = time.perf_counter(), time.process_time()
        await transport.handle_answer(answer)
        answer_cpu = time.process_time() - started_cpu
        self.rounds.append(
            {
                "sections": sdp.count("\r\nm="),
                "offer_kb": len(sdp) / 1000,
                "answer_kb": len(answer) / 1000,
                "offer_ms": (sent_at - asked[0]) * 1000,
                "offer_cpu_ms": (sent_cpu - asked[1]) * 1000,
                "answer_ms": (time.perf_counter() - started) * 1000,
                "answer_cpu_ms": answer_cpu * 1000,
            }
        )
        return True


async def run(cameras: int, bound: int, page: int, flips: int) -> dict[str, Any]:
    options = replace(
        TransportOptions(
            configuration_factory=lambda: rtc_configuration([]),
            listen_addresses=("127.0.0.1",),
        ),
        video_slots=bound,
    )
    producers = [idle_producer("video", i, {"source": "camera"}) for i in range(cameras)]
    client = _Client()
    transport = SubscriberTransport(options, client.send_offer)
    try:
        asked = (time.perf_counter(), time.process_time())
        for producer in producers:
            transport.consume(producer)
        await client.answer(transport, asked)
        flip_offers = 0
        for flip in range(1, flips + 1):
            first = flip * page % cameras
            shown = {producers[(first + k) % cameras].id for k in range(page)}
            asked = (time.perf_counter(), time.process_time())
            transport.hold(p.id for p in producers if p.id not in shown)
            if await client.answer(transport, asked, within=1.0):
                flip_offers += 1
        sections = sum(t.kind == "video" for t in transport.pc.getTransceivers())
        join, flipped = client.rounds[0], client.rounds[1:]
        return {
            "bound": bound,
            "join": join,
            "flip_offers": flip_offers,
            "flip_median": {key: statistics.median(r[key] for r in flipped) for key in join}
            if flipped
            else None,
            "video_sections_at_end": sections,
        }
    finally:
        await transport.close()
        await client.pc.close()
        for producer in producers:
            producer.close()


def _line(label: str, r: dict[str, float]) -> str:
    return (
        f"{label}: {r['sections']:.0f} m-sections, offer {r['offer_kb']:.1f} KB in "
        f"{r['offer_ms']:.0f} ms (CPU {r['offer_cpu_ms']:.0f} ms), answer {r['answer_kb']:.1f} KB "
        f"applied in {r['answer_ms']:.0f} ms (CPU {r['answer_cpu_ms']:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=150)
    parser.add_argument("--bound", type=int, default=30)
    parser.add_argument("--page", type=int, default=16)
    parser.add_argument("--flips", type=int, default=6)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = [
        asyncio.run(run(args.cameras, bound, args.page, args.flips)) for bound in (args.bound, 0)
    ]
    for result in results:
        name = f"bound {result['bound']}" if result["bound"] else "no bound"
        print(f"{args.cameras} cameras, {name}:")
        print("  " + _line("join", result["join"]))
        if result["flip_median"] is not None:
            print(f"  {result['flip_offers']} of {args.flips} page flips needed an offer")
            print("  " + _line("page flip (median)", result["flip_median"]))
        else:
            print(f"  no page flip needed an offer ({args.flips} flips)")
        print(f"  video m-sections at the end: {result['video_sections_at_end']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
