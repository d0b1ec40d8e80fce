"""A subscriber bot in its own process, for a test host behind an emulated link.

    ip netns exec <host> python -m bench.link_subscriber <base_url> <token>

bench/weak_link.py runs it on a test host (bench/links.py), so that everything it
receives crosses that host's link. It joins with the token, publishes nothing,
and decodes everything it receives as a client would: aiortc's own receivers
(jitter buffer, decoder, NACK and PLI on loss), which ask again for what is still
missing and skip a hole they cannot fill to the next keyframe, as a browser does
(bench/receiver_repair.py; aiortc alone asks once and then holds the video
back for 512 packets). It reads commands on stdin,
one a line, and answers each with one JSON line on stdout:

- `stats`: {"audio": {...}, "video": {...}} cumulative since joining: packets
  received and lost per its receivers' RTP sequence accounting (getStats()
  inbound-rtp, summed over streams; a packet that came back as RTX counts as
  received), frames decoded, and streams;
- `tracks`: {mid: {"kind", "frames", "last", "gaps": [[from, to], ...]}} per track:
  frames decoded, when the last one came and every gap of more than
  GAP_SECONDS between two frames (times are CLOCK_MONOTONIC, which every
  process on the machine shares: a test sets them against what the server did);
- `leave` (or end of input): leaves the call and exits.

The first line it writes is {"joined": <participant id>}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError

from bench.bot import Bot
from bench.receiver_repair import repair_losses
from sfu.aiortc_hooks import inbound_streams

# A gap between two frames longer than this is a freeze (as in the test bed).
GAP_SECONDS = 1.0


@dataclass
class TrackFrames:
    kind: str
    frames: int = 0
    last: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def frame(self, now: float) -> None:
        if self.last is not None and now - self.last > GAP_SECONDS:
            self.gaps.append((self.last, now))
        self.frames += 1
        self.last = now


class DecodingSubscriber:
    """A bot that decodes every track it receives and counts the frames."""

    def __init__(self, base_url: str, token: str) -> None:
        self.bot = Bot(base_url, token, decode=True)
        self.frames: Counter[str] = Counter()  # kind -> frames decoded
        self._readers: dict[int, asyncio.Task[None]] = {}
        self.tracks: dict[str, TrackFrames] = {}  # by the mid of the track's m-section
        self._watcher: asyncio.Task[None] | None = None
        self._repairs: list[asyncio.Future[None]] = []

    async def start(self) -> str:
        await self.bot.connect()
        self._watcher = asyncio.ensure_future(self._watch())
        return self.bot.id

    async def _watch(self) -> None:
        """Read every track a (re)negotiation brings (unread frames would pile up)."""
        while True:
            pc = self.bot.subscriber
            if pc is not None:
                for transceiver in pc.getTransceivers():
                    track = transceiver.receiver.track
                    if track is not None and id(track) not in self._readers:
                        counted = self.tracks.setdefault(
                            transceiver.mid or str(id(track)), TrackFrames(track.kind)
                        )
                        self._readers[id(track)] = asyncio.ensure_future(self._read(track, counted))
                        if track.kind == "video":  # asks again, skips to keyframes: a browser's
                            self._repairs.append(
                                asyncio.ensure_future(repair_losses(transceiver.receiver))
                            )
            await asyncio.sleep(0.2)

    async def _read(self, track: MediaStreamTrack, counted: TrackFrames) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1
                counted.frame(time.monotonic())

    async def stats(self) -> dict[str, Any]:
        out: dict[str, dict[str, int]] = {
            kind: {"packets_received": 0, "packets_lost": 0, "streams": 0}
            for kind in ("audio", "video")
        }
        pc = self.bot.subscriber
        if pc is not None:
            for transceiver in pc.getTransceivers():
                await _add_receiver_stats(transceiver.receiver, out)
        for kind in out:
            out[kind]["frames_decoded"] = self.frames[kind]
        return out

    async def close(self) -> None:
        tasks = [
            t for t in (self._watcher, *self._readers.values(), *self._repairs) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.bot.leave()


async def _add_receiver_stats(receiver: RTCRtpReceiver, out: dict[str, dict[str, int]]) -> None:
    kind = receiver.track.kind if receiver.track is not None else None
    if kind not in out:
        return
    # The media stream is the one with the most packets, any other its RTX stream.
    # aiortc counts a stream by the SSRC a packet arrived on, so the media stream's
    # "lost" still counts what came back as RTX: each RTX packet is taken for one
    # hole filled (the server resends a packet at most once per round trip, so a
    # copy arriving after the original is rare; the server's wire count has the
    # copies of each packet).
    streams = sorted(inbound_streams(receiver).values(), reverse=True)
    if not streams:
        return
    (received, lost), recovered = streams[0], sum(r for r, _ in streams[1:])
    out[kind]["streams"] += 1
    out[kind]["packets_received"] += received + recovered
    out[kind]["packets_lost"] += max(0, lost - recovered)


async def serve(base_url: str, token: str) -> None:
    subscriber = DecodingSubscriber(base_url, token)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        print(json.dumps({"joined": await subscriber.start()}), flush=True)
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "stats":
                print(json.dumps(await subscriber.stats()), flush=True)
            elif line == "tracks":
                tracks = {mid: vars(t) for mid, t in subscriber.tracks.items()}
                print(json.dumps(tracks), flush=True)
            elif line in ("leave", ""):
                return
    finally:
        await subscriber.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.link_subscriber BASE_URL TOKEN", file=sys.stderr)
        return 2
    asyncio.run(serve(args[0], args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
