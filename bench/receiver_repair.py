"""A decoding aiortc receiver that repairs losses as a browser's does (test clients).

aiortc's video receiver asks for a lost packet once, when it notices the gap,
and its jitter buffer (512 packets) holds every later frame back until the
hole is filled or the buffer overflows: one retransmission lost on a
congested link freezes that video for 512 packets (12 s at 40 packets a
second), with no keyframe request, long after the link has recovered.
libwebrtc's receiver asks again every round trip (NackRequester, up to 10
times) and, when a frame cannot be completed, waits for the next keyframe and
asks for one (PLI). `repair_losses` gives an aiortc receiver that behaviour:

- every `interval`, the sequence numbers still missing for at least that long
  are asked again (NACK), each at most `max_retries` times;
- a hole at the head of the jitter buffer older than `give_up` is skipped to
  the first packet of a keyframe the buffer holds (the frames between cannot be
  decoded); while none is there, a keyframe is asked for (PLI), at most once
  per `pli_every`.

Used by the bench's decoding subscriber (bench/link_subscriber.py), so that a
freeze it measures is one a browser would show: a test client's patch, so it lives
in bench/, not in the server's one aiortc hooks module. aiortc's private names it
reads (the receiver's NACK generator, jitter buffer and SSRC tables: `INTERNALS`,
and the jitter buffer's own fields) are checked by tests/test_receiver_repair.py,
which drives aiortc's own receiver, JitterBuffer and NackGenerator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from sfu.keyframes import starts_keyframe

# The receiver's own state this module reads (name-mangled by aiortc).
NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
INTERNALS = (NACK_GENERATOR, JITTER_BUFFER, REMOTE_STREAMS, RTX_SSRC)


class LossRepair:
    """One video receiver's repairs (`step` once an interval)."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        interval: float = 0.1,
        give_up: float = 0.4,
        pli_every: float = 1.0,
        max_retries: int = 10,
        mime_type: str = "video/VP8",
    ) -> None:
        self.receiver = receiver
        self.mime_type = mime_type  # of the keyframes skipped to (VP8: the bots' codec)
        self.interval = interval
        self.give_up = give_up
        self.pli_every = pli_every
        self.max_retries = max_retries
        self._asked: dict[int, tuple[float, int]] = {}  # seq: (first missed, times asked)
        self._stuck: tuple[int, float] | None = None  # (the origin at a hole, since)
        self._pli_at = float("-inf")
        self.renacked = 0
        self.skipped = 0

    def _media_ssrc(self) -> int | None:
        streams: dict[int, object] = getattr(self.receiver, REMOTE_STREAMS)
        rtx: dict[int, int] = getattr(self.receiver, RTX_SSRC)
        media = [ssrc for ssrc in streams if ssrc not in rtx]
        return media[-1] if media else None

    async def step(self, now: float) -> None:
        nack: NackGenerator | None = getattr(self.receiver, NACK_GENERATOR)
        buffer: JitterBuffer = getattr(self.receiver, JITTER_BUFFER)
        ssrc = self._media_ssrc()
        if nack is None or ssrc is None:
            return
        again = self._due(nack.missing, now)
        if again:
            self.renacked += len(again)
            await self.receiver._send_rtcp_nack(ssrc, again)
        if self._skip_hole(buffer, now) is False and now - self._pli_at >= self.pli_every:
            self._pli_at = now
            await self.receiver._send_rtcp_pli(ssrc)

    def _due(self, missing: set[int], now: float) -> list[int]:
        asked = {seq: self._asked.get(seq, (now, 0)) for seq in missing}
        due = [
            seq
            for seq, (since, times) in asked.items()
            if now - since >= self.interval and times < self.max_retries
        ]
        for seq in due:
            asked[seq] = (asked[seq][0], asked[seq][1] + 1)
        self._asked = asked
        return sorted(due)

    def _skip_hole(self, buffer: JitterBuffer, now: float) -> bool | None:
        """None: no hole holds frames back; True: skipped to a keyframe; False: stuck
        at a hole with no keyframe behind it yet."""
        origin = buffer._origin
        slots: list[RtpPacket | None] = buffer._packets
        capacity = buffer.capacity
        hole = _first_hole(slots, origin, capacity)
        if origin is None or hole is None:
            self._stuck = None
            return None
        key = (origin + hole) & 0xFFFF
        if self._stuck is None or self._stuck[0] != key:
            self._stuck = (key, now)
        if now - self._stuck[1] < self.give_up:
            return None
        for count in range(hole + 1, capacity):
            packet = slots[(origin + count) % capacity]
            if packet is not None and starts_keyframe(self.mime_type, packet.payload):
                buffer.remove(count)
                self._stuck = None
                self.skipped += 1
                return True
        return False


def _first_hole(slots: list[RtpPacket | None], origin: int | None, capacity: int) -> int | None:
    """How far past the jitter buffer's origin its first missing packet is, when packets
    after it wait (None: nothing waits behind a hole)."""
    if origin is None:
        return None
    hole = None
    for count in range(capacity):
        present = slots[(origin + count) % capacity] is not None
        if hole is None and not present:
            hole = count
        elif hole is not None and present:
            return hole
    return None


async def repair_losses(receiver: RTCRtpReceiver, interval: float = 0.1) -> None:
    """Run `LossRepair` on a video receiver until cancelled (or the receiver stops)."""
    repair = LossRepair(receiver, interval)
    with contextlib.suppress(ConnectionError):
        while True:
            await asyncio.sleep(interval)
            await repair.step(time.monotonic())
