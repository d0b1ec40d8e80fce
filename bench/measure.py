"""What the bench measures on the bot side: packets sent, packets received, when.

The SFU forwards RTP payloads byte-identical (it rewrites only the header),
so a payload identifies a packet end to end. Publishers log (time, payload
hash, marker) for every RTP packet as it leaves the bot, from a wrapper
around their DTLS transport's `_send_rtp`; receivers log the first time they
see each payload hash per publisher. Both run in the bench process and use
the same monotonic clock, so receive time minus send time is the latency a
packet picked up on its way (bot SRTP + loopback + server + bot SRTP + bot
event loop).

A server that re-encodes (the MediaRelay baseline) changes every payload:
there, only frames (RTP packets with the marker bit: one per video frame,
one per Opus packet) are counted, and latency cannot be matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from sfu.aiortc_hooks import SendRtp, sender_ssrc, wrap_send_rtp

KINDS = ("audio", "video")


def rtp_payload(data: bytes) -> bytes | None:
    """The payload of a serialized RTP packet (None for RTCP or a malformed packet)."""
    if len(data) < 12 or 192 <= data[1] <= 223:  # RTCP packet types 192..223
        return None
    first = data[0]
    pos = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < pos + 4:
            return None
        pos += 4 + 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
    end = len(data) - (data[-1] if first & 0x20 else 0)
    if end < pos:
        return None
    return data[pos:end]


@dataclass
class SendLog:
    """Every RTP packet one publisher sent: kind -> [(monotonic time, payload hash, marker)]."""

    sent: dict[str, list[tuple[float, int, bool]]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    # The kinds this publisher publishes (a muted pupil: video only); install() sets it.
    kinds: frozenset[str] = frozenset(KINDS)

    def install(self, pc: RTCPeerConnection) -> None:
        """Log what `pc`'s senders send from now on (their primary SSRC only, not RTX)."""
        kinds: dict[int, str] = {}
        transports = []
        for sender in pc.getSenders():
            if sender.track is None:
                continue
            kinds[sender_ssrc(sender)] = sender.track.kind
            if sender.transport not in transports:
                transports.append(sender.transport)
        self.kinds = frozenset(kinds.values())
        for transport in transports:
            wrap_send_rtp(transport, lambda send: self._wrap(send, kinds))

    def _wrap(self, send: SendRtp, kinds: dict[int, str]) -> SendRtp:
        sent = self.sent

        async def send_rtp(data: bytes) -> None:
            payload = rtp_payload(data)
            if payload is not None:
                kind = kinds.get(int.from_bytes(data[8:12], "big"))
                if kind is not None:
                    sent[kind].append((time.monotonic(), hash(payload), bool(data[1] & 0x80)))
            await send(data)

        return send_rtp


_M_LINE = re.compile(r"^m=(audio|video) \d+ \S+ (.*)$", re.MULTILINE)


class ReceiveLog:
    """What one bot received, per publisher: first receive time of each payload, frame times."""

    def __init__(self) -> None:
        # publisher participant id -> payload hash -> first time received
        self.first: defaultdict[str, dict[int, float]] = defaultdict(dict)
        # (publisher participant id, kind) -> receive times of packets with the marker bit
        self.frames: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        # The bot's subscriber connection, once it has one (it is made on the first offer).
        self.connection: Callable[[], RTCPeerConnection | None] = lambda: None
        self._kinds: dict[int, str] = {}

    def on_packet(self, participant_id: str, packet: RtpPacket, now: float) -> None:
        first = self.first[participant_id]
        key = hash(packet.payload)
        if key not in first:
            first[key] = now
        if packet.marker:
            kind = self._kinds.get(packet.payload_type) or self._kind(packet.payload_type)
            self.frames[(participant_id, kind)].append(now)

    def _kind(self, payload_type: int) -> str:
        # Payload types come from the subscriber connection's remote offer.
        pc = self.connection()
        description = pc.remoteDescription if pc is not None else None
        if description is not None:
            for kind, formats in _M_LINE.findall(description.sdp):
                for fmt in formats.split():
                    if fmt.isdigit():
                        self._kinds[int(fmt)] = kind
        return self._kinds.get(payload_type, "unknown")


class LoopLag:
    """How late the bench's event loop wakes up: a busy bench inflates latency figures."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.samples.append((now, now - before - self.interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, t0: float, t1: float) -> list[float]:
        return [lag for t, lag in self.samples if t0 <= t <= t1]


def percentile(values: Iterable[float], q: float) -> float | None:
    data = np.fromiter(values, dtype=np.float64)
    if data.size == 0:
        return None
    return float(np.percentile(data, q))


@dataclass
class StreamTally:
    """Totals over every forwarded stream of one kind (publisher track -> receiver)."""

    streams: int = 0
    packets_expected: int = 0
    packets_received: int = 0
    frames_expected: int = 0
    frames_received: int = 0

    @property
    def loss(self) -> float | None:
        if self.packets_expected == 0:
            return None
        return 1 - self.packets_received / self.packets_expected

    @property
    def frames_delivered(self) -> float | None:
        if self.frames_expected == 0:
            return None
        return self.frames_received / self.frames_expected


@dataclass
class Tally:
    kinds: dict[str, StreamTally]
    # kind -> seconds, one per packet received (its first copy)
    latencies_by_kind: dict[str, list[float]]

    @property
    def latencies(self) -> list[float]:
        return [v for kind in KINDS for v in self.latencies_by_kind[kind]]

    @property
    def total(self) -> StreamTally:
        out = StreamTally()
        for tally in self.kinds.values():
            out.streams += tally.streams
            out.packets_expected += tally.packets_expected
            out.packets_received += tally.packets_received
            out.frames_expected += tally.frames_expected
            out.frames_received += tally.frames_received
        return out


def tally(
    publishers: dict[str, SendLog],
    receivers: dict[str, ReceiveLog],
    t0: float,
    t1: float,
    match_payloads: bool,
) -> Tally:
    """Count what was sent in [t0, t1] and what of it arrived, over every (track, receiver).

    Every receiver gets every publisher's tracks (of the kinds it publishes) except
    its own. Packets count as received whenever they arrived (also after t1);
    frames count by arrival time within [t0, t1], which works for re-encoded
    media too.
    """
    kinds = {kind: StreamTally() for kind in KINDS}
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for publisher_id, send_log in publishers.items():
        for kind in KINDS:
            if kind not in send_log.kinds:
                continue  # nothing of this kind published: no stream
            # First sends only: a retransmission on the same SSRC repeats a payload.
            window: dict[int, tuple[float, bool]] = {}
            for sent_at, key, marker in send_log.sent[kind]:
                if t0 <= sent_at <= t1 and key not in window:
                    window[key] = (sent_at, marker)
            frames_sent = sum(1 for _, marker in window.values() if marker)
            for receiver_id, receive_log in receivers.items():
                if receiver_id == publisher_id:
                    continue
                stream = kinds[kind]
                stream.streams += 1
                stream.frames_expected += frames_sent
                stream.frames_received += sum(
                    1 for t in receive_log.frames.get((publisher_id, kind), ()) if t0 <= t <= t1
                )
                if not match_payloads:
                    continue
                first = receive_log.first.get(publisher_id, {})
                stream.packets_expected += len(window)
                for key, (sent_at, _) in window.items():
                    received_at = first.get(key)
                    if received_at is not None:
                        stream.packets_received += 1
                        latencies[kind].append(received_at - sent_at)
    return Tally(kinds, latencies)
