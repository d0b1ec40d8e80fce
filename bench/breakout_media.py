"""The breakout bench's media: tracks quiet until the open, tagged so payloads name their sender."""

from __future__ import annotations

import asyncio
import contextlib
import time

import av

from bench.measure import SendLog, rtp_payload
from bench.preencoded import EncodedClip, PreEncodedTrack
from sfu.aiortc_hooks import SendRtp

AMBIGUOUS = ("", 0.0)  # a payload two publishers sent (VP8 fragments can coincide)


class Switch:
    """Flipped once, at the open: silent students start talking."""

    def __init__(self, loud: bool = False) -> None:
        self.loud = asyncio.Event()
        if loud:
            self.loud.set()


class RoomTrack(PreEncodedTrack):
    """A PreEncodedTrack that tags its payloads and sends sparsely until its switch flips."""

    def __init__(
        self, clip: EncodedClip, tag: bytes, switch: Switch, every: int, loud_every: int = 1
    ) -> None:
        super().__init__(clip)
        self.tag = tag
        self.switch = switch
        self.every = max(1, every)
        self.loud_every = max(1, loud_every)

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        if self.switch.loud.is_set() and self.loud_every > 1:
            kept = -(-self._index // self.loud_every) * self.loud_every
            delay = self._start + kept * self._clip.period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._index = kept
        elif not self.switch.loud.is_set() and self.every > 1:
            # Skip to the next kept packet, but wake at once when the switch flips.
            kept = -(-self._index // self.every) * self.every
            delay = self._start + kept * self._clip.period - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.switch.loud.wait(), delay)
            if self.switch.loud.is_set():  # resume in real time, without a burst
                now_index = int((time.monotonic() - self._start) / self._clip.period)
                self._index = max(self._index, now_index)
            else:
                self._index = kept
        packet = await super().recv()
        tagged = av.Packet(bytes(packet) + self.tag)
        tagged.pts = packet.pts
        tagged.time_base = packet.time_base
        return tagged


class RegistryLog(SendLog):
    """SendLog's hook on a publisher's `_send_rtp`, recording payload hash -> (sender, time)."""

    def __init__(self, sender: str, registry: dict[int, tuple[str, float]]) -> None:
        super().__init__()
        self.sender = sender
        self.registry = registry

    def _wrap(self, send: SendRtp, kinds: dict[int, str]) -> SendRtp:
        sender, registry = self.sender, self.registry

        async def send_rtp(data: bytes) -> None:
            payload = rtp_payload(data)
            if payload is not None and int.from_bytes(data[8:12], "big") in kinds:
                key = hash(payload)
                known = registry.get(key)
                if known is None or known[0] == sender:
                    registry[key] = (sender, time.monotonic())
                else:
                    registry[key] = AMBIGUOUS
            await send(data)

        return send_rtp
