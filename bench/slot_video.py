"""What a subscriber's video slots show: VP8 reassembled and decoded per m-section.

A client decodes each m-section (a slot) with one decoder for as long as the
slot lives, whoever the server puts behind it. That is how a re-used slot
could show the previous person's picture under the new person's name: the
new person's first frames were deltas, and the decoder applied them to the
previous person's picture (issue 15). `SlotBot` is a counting bot that hands
every video packet, with its mid and arrival time, to a `SlotVideo`, which
decodes it as such a client would (libvpx, as aiortc and browsers use) and
keeps what each slot showed; and it records when it answered each offer and
whose media that offer put in each slot.

Frames are cut by RTP timestamp and marker bit (nothing waits for the next
frame, unlike aiortc's jitter buffer). A frame is dated by when its first
packet was handled (on a busy machine that can be well after the kernel got
it), and carries the hash of its first payload: the SFU forwards payloads
byte-identical, so who sent it is known for sure from the publishers'
`bench.measure.SendLog`s, not from the labels of the offers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from bench.bot import Bot
from bench.measure import SendLog

RGB = tuple[float, float, float]


# How long a missing packet is waited for (the receiver NACKs it) before the frame
# it belongs to is given up.
REORDER_WAIT = 0.5
REORDER_PACKETS = 256


@dataclass(frozen=True)
class ShownFrame:
    """One frame a slot received: decoded, or not (damaged, or nothing to apply it to)."""

    first_packet_at: float  # monotonic time its first packet was handled
    payload: int  # hash of its first packet's payload: who sent it (bench/measure.py)
    keyframe: bool
    # False: a packet of it, or of a frame since the last keyframe, never came; a
    # client does not decode it (it waits for a keyframe), nor does this.
    intact: bool
    rgb: RGB | None  # median colour; None: nothing shown
    decoded_at: float


@dataclass
class _Slot:
    decoder: Any  # av.CodecContext (libvpx)
    timestamp: int | None = None
    parts: list[bytes] = field(default_factory=list)
    started_at: float = 0.0
    payload: int = 0
    keyframe: bool = False
    broken: bool = False  # a packet of this frame is missing: it is not decoded
    damaged: bool = False  # a packet was given up: nothing is decoded until a keyframe
    next_seq: int | None = None
    pending: dict[int, tuple[RtpPacket, float]] = field(default_factory=dict)
    gap_since: float | None = None
    frames: list[ShownFrame] = field(default_factory=list)
    pictures: int = 0
    done: bool = False  # shown pictures_per_slot pictures: nothing more is decoded


def _plane_median(plane: Any) -> float:
    samples = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return float(np.median(samples[::4, : plane.width : 4]))


def median_rgb(frame: av.VideoFrame) -> RGB:
    """The median colour of a decoded frame, from its planes (every 4th sample;
    converting the whole picture to RGB would cost ten times the decoding)."""
    y, u, v = (_plane_median(plane) for plane in frame.planes[:3])
    # BT.601, limited range, as libvpx decodes.
    luma = 1.164 * (y - 16)
    return (
        luma + 1.596 * (v - 128),
        luma - 0.392 * (u - 128) - 0.813 * (v - 128),
        luma + 2.017 * (u - 128),
    )


def _nearest(pending: dict[int, Any], start: int) -> int:
    """The sequence number in `pending` that comes first from `start` on."""
    return min(pending, key=lambda seq: (seq - start) & 0xFFFF)


class SlotVideo:
    """Per mid, one libvpx decoder fed every VP8 frame the subscriber received, in
    sequence order (a retransmitted packet is waited for, as a client's jitter
    buffer does)."""

    def __init__(self, colours: bool = True, pictures_per_slot: int | None = None) -> None:
        self.colours = colours
        # A bench that only wants the first pictures stops decoding a slot after these.
        self.pictures_per_slot = pictures_per_slot
        self.slots: dict[str, _Slot] = {}

    def frames(self, mid: str) -> list[ShownFrame]:
        slot = self.slots.get(mid)
        return slot.frames if slot is not None else []

    def on_packet(self, mid: str, packet: RtpPacket, at: float) -> None:
        slot = self.slots.get(mid)
        if slot is None:
            slot = self.slots[mid] = _Slot(av.CodecContext.create("libvpx", "r"))
        if slot.done:
            return
        seq = packet.sequence_number
        if slot.next_seq is None:
            slot.next_seq = seq
        if (seq - slot.next_seq) & 0xFFFF >= 0x8000:
            return  # already handled, or given up
        slot.pending[seq] = (packet, at)
        while slot.pending:
            item = slot.pending.pop(slot.next_seq, None)
            if item is None:
                slot.gap_since = slot.gap_since or at
                if at - slot.gap_since < REORDER_WAIT and len(slot.pending) < REORDER_PACKETS:
                    return
                # Give the missing packet up: its frame is broken, and what follows
                # refers to it.
                slot.broken = slot.damaged = True
                slot.next_seq = _nearest(slot.pending, slot.next_seq)
                slot.gap_since = at
                continue
            slot.gap_since = None
            slot.next_seq = (slot.next_seq + 1) & 0xFFFF
            self._assemble(slot, *item)

    def _assemble(self, slot: _Slot, packet: RtpPacket, at: float) -> None:
        try:
            descriptor, data = VpxPayloadDescriptor.parse(packet.payload)
        except ValueError:
            slot.broken = True
            return
        if packet.timestamp != slot.timestamp:
            if slot.timestamp is not None:  # the previous frame never got its marker
                slot.damaged = True
                self._record(slot, None, intact=False)
            slot.timestamp, slot.parts, slot.started_at = packet.timestamp, [], at
            slot.payload = hash(packet.payload)
            slot.broken = not (descriptor.partition_start and descriptor.partition_id == 0)
            # The VP8 payload header's P bit is 0 for a keyframe (RFC 7741).
            slot.keyframe = not slot.broken and bool(data) and not data[0] & 0x01
        slot.parts.append(data)
        if packet.marker:
            if slot.broken:
                slot.damaged = True
            elif slot.keyframe:
                slot.damaged = False
            if slot.damaged:
                self._record(slot, None, intact=False)
            else:
                self._decode(slot, b"".join(slot.parts))
            slot.timestamp, slot.parts = None, []

    def _decode(self, slot: _Slot, data: bytes) -> None:
        try:
            decoded = slot.decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            decoded = []  # a delta frame with no picture to apply it to
        if not decoded:
            self._record(slot, None, intact=True)
        for frame in decoded:
            self._record(slot, median_rgb(frame) if self.colours else (0.0, 0.0, 0.0), True)

    def _record(self, slot: _Slot, rgb: RGB | None, intact: bool) -> None:
        shown = ShownFrame(
            slot.started_at, slot.payload, slot.keyframe, intact, rgb, time.monotonic()
        )
        slot.frames.append(shown)
        if rgb is not None:
            slot.pictures += 1
            if self.pictures_per_slot is not None and slot.pictures >= self.pictures_per_slot:
                slot.done = True
                slot.pending.clear()


@dataclass(frozen=True)
class Answer:
    """An offer the bot answered: when the answer went out, and whose video each mid
    carries from then on (None: the slot is idle)."""

    answered_at: float
    video: dict[str, str | None]


class SlotBot(Bot):
    """A counting bot whose video m-sections are decoded by a SlotVideo."""

    def __init__(
        self,
        *args: Any,
        colours: bool = True,
        pictures_per_slot: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, decode=False, **kwargs)
        self.video = SlotVideo(colours, pictures_per_slot)
        self.answers: list[Answer] = []
        self._video_mids: set[str] = set()
        self._answer_sent_at = 0.0
        self.subscriber_connected_at: float | None = None  # its subscriber connection's

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe_answer":
            self._answer_sent_at = time.monotonic()
        await super().send(message)

    def _make_counter(self, mid: str) -> Callable[[RtpPacket, RTCRtpCodecParameters], Any]:
        count = super()._make_counter(mid)

        async def observe(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            if codec.mimeType.lower() == "video/vp8":
                self.video.on_packet(mid, packet, time.monotonic())
            await count(packet, codec)

        return observe

    async def _answer(self, message: dict[str, Any]) -> None:
        first = self.subscriber is None
        await super()._answer(message)
        tracks = message["tracks"]
        assert self.subscriber is not None
        if first:
            self._watch_connection(self.subscriber)
        for transceiver in self.subscriber.getTransceivers():
            if transceiver.kind == "video" and transceiver.mid is not None:
                self._video_mids.add(transceiver.mid)
        video = {
            mid: (tracks[mid]["participant_id"] if mid in tracks else None)
            for mid in sorted(self._video_mids)
        }
        self.answers.append(Answer(self._answer_sent_at, video))

    def _watch_connection(self, pc: RTCPeerConnection) -> None:
        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected" and self.subscriber_connected_at is None:
                self.subscriber_connected_at = time.monotonic()

    def frames_after(self, mid: str, since: float) -> list[ShownFrame]:
        """The frames of slot `mid` whose first packet was handled after `since`."""
        return [f for f in self.video.frames(mid) if f.first_packet_at > since]


def senders(logs: dict[str, SendLog]) -> dict[int, str]:
    """Payload hash -> who sent it, from the publishers' send logs (by participant id);
    a payload two of them sent is left out."""
    origin: dict[int, str] = {}
    twice: set[int] = set()
    for sender, log in logs.items():
        for _, payload, _ in log.sent["video"]:
            if origin.setdefault(payload, sender) != sender:
                twice.add(payload)
    for payload in twice:
        del origin[payload]
    return origin
