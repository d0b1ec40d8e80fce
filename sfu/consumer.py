"""Consumer: one outgoing track towards one subscriber, fed by a producer.

It owns the outgoing SSRC (its sender's) and a StreamRewriter, so the
subscriber sees one continuous stream even when the producer behind it
changes or pauses.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Coroutine
from typing import Any

from aiortc import clock
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from sfu.aiortc_hooks import FastRtpPath, ForwardingSender
from sfu.keyframes import starts_keyframe
from sfu.producer import CachedPacket, Producer
from sfu.red_forwarding import handles, opus_payload_type, outgoing_audio
from sfu.rtp_rewrite import TS_MOD, StreamRewriter

_NTP_SECOND = 1 << 32
# Version 2, no padding, no extension, no CSRC; marker + payload type; seq; ts; SSRC.
# A subscriber's own keyframe requests reach the publisher at most this often.
SUBSCRIBER_KEYFRAME_INTERVAL = 1.0
# Waiting for a keyframe, ask again after this long without one.
KEYFRAME_RETRY = 0.5
_RTP_HEADER = struct.Struct("!BBHII")
_DEFAULT_CLOCK = {"audio": 48000, "video": 90000}


def _same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        # Both ends must agree on packetization mode and profile.
        for key in ("packetization-mode", "profile-level-id"):
            va, vb = a.parameters.get(key), b.parameters.get(key)
            if key == "profile-level-id" and isinstance(va, str) and isinstance(vb, str):
                va, vb = va[:4].lower(), vb[:4].lower()
            if str(va or "0") != str(vb or "0"):
                return False
    return True


class Consumer:
    def __init__(self, consumer_id: str, kind: str, sender: ForwardingSender) -> None:
        self.id = consumer_id
        self.kind = kind
        self.sender = sender
        self.producer: Producer | None = None
        self.rewriter = StreamRewriter(_DEFAULT_CLOCK.get(kind, 90000))
        self.packets_sent = 0
        self.bytes_sent = 0
        self.retransmitted = 0
        self.fast_sent = 0  # of packets_sent, those that took the FastRtpPath
        self._fast: FastRtpPath | None = None
        self.ready = True
        # Producer codec payload type -> the subscriber's (None: no matching codec).
        self._pt_map: dict[int | None, int | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_subscriber_request = -SUBSCRIBER_KEYFRAME_INTERVAL
        # Video of a new source waits for its keyframe (sfu/keyframes.py); the
        # monotonic time the keyframe was last asked for, while waiting.
        self._awaiting_keyframe = kind == "video"
        self._keyframe_asked = 0.0
        self.held_for_keyframe = 0  # packets not forwarded while waiting
        self.keyframe_requests_dropped = 0
        # The payload type of RED (RFC 2198) in the subscriber's last answer, if it took RED.
        self.red_payload_type: int | None = None
        sender.source = self

    def _request_keyframe_soon(self) -> None:
        if self.producer is None:
            return
        self._keyframe_asked = time.monotonic()
        task = asyncio.ensure_future(self.producer.request_keyframe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def ssrc(self) -> int:
        return self.sender.ssrc

    # --- producer side

    def attach(self, producer: Producer, ready: bool = True) -> None:
        """Forward `producer` (replacing any previous one).

        With ready=False nothing is sent until `mark_ready()`: the subscriber
        learns whose media a reused m-section carries only from the next
        offer, and must not see the new source under the old label.
        """
        if self.producer is producer:
            return
        self.detach()
        self.producer = producer
        producer.add_consumer(self)
        self.rewriter.switch()
        self._await_keyframe()
        self.ready = ready
        if ready and self.sender.started:
            self._request_keyframe_soon()

    def mark_ready(self) -> None:
        if self.ready:
            return
        self.ready = True
        if self.sender.started:
            self._request_keyframe_soon()

    def detach(self) -> None:
        if self.producer is not None:
            self.producer.remove_consumer(self)
            self.producer = None

    def source_resumed(self) -> None:
        self.rewriter.switch()
        self._await_keyframe()

    def _await_keyframe(self) -> None:
        self._awaiting_keyframe = self.kind == "video"

    def _held_back(self, entry: CachedPacket) -> bool:
        """While waiting for a keyframe: hold this packet back unless it starts one
        (asking again if the keyframe is slow to come)."""
        if starts_keyframe(entry.codec.mimeType, entry.payload):
            self._awaiting_keyframe = False
            return False
        self.held_for_keyframe += 1
        if time.monotonic() - self._keyframe_asked > KEYFRAME_RETRY:
            self._request_keyframe_soon()
        return True

    def forward(self, entry: CachedPacket, now: float) -> Coroutine[Any, Any, None] | None:
        """Send one packet of the producer; a coroutine to await when it could not go at once.

        The common case sends synchronously (FastRtpPath), so fanning a packet
        out to many subscribers costs no coroutine per subscriber.
        """
        if not (self.ready and self.sender.started):
            return None
        if self._awaiting_keyframe and self._held_back(entry):
            return None
        codec = entry.codec
        if self.kind == "audio" and handles(codec, self.red_payload_type):
            return self._forward_audio_red(entry, now)
        out_pt = self._pt_map.get(codec.payloadType, -1)
        if out_pt == -1:
            out_pt = self._map_payload_type(codec)
        if out_pt is None:
            return None
        mapped = self.rewriter.rewrite(entry.seq, entry.ts, now)
        if mapped is None:
            return None
        return self._send(entry, out_pt, mapped[0], mapped[1])

    def _forward_audio_red(
        self, entry: CachedPacket, now: float
    ) -> Coroutine[Any, Any, None] | None:
        """Audio with RED on either side (sfu/red_forwarding.py)."""
        opus_pt = opus_payload_type(self.sender.negotiated_codecs)
        producer = self.producer
        if opus_pt is None or producer is None:
            return None
        mapped = self.rewriter.rewrite(entry.seq, entry.ts, now)
        if mapped is None:
            return None
        age = self.rewriter.segment_age(entry.ts)
        out = outgoing_audio(entry, opus_pt, self.red_payload_type, age, producer.cached)
        if out is None:
            return None
        out_pt, payload = out
        if payload is not entry.payload:
            entry = CachedPacket(entry.seq, entry.ts, entry.marker, payload, entry.codec)
        return self._send(entry, out_pt, mapped[0], mapped[1])

    def _send(
        self, entry: CachedPacket, out_pt: int, out_seq: int, out_ts: int
    ) -> Coroutine[Any, Any, None] | None:
        # Each subscriber gets its own header in front of the shared payload:
        # one concatenation, the only copy of the packet before SRTP.
        data = (
            _RTP_HEADER.pack(0x80, (entry.marker << 7) | out_pt, out_seq, out_ts, self.ssrc)
            + entry.payload
        )
        if self._fast is None:
            self._fast = self.sender.fast_path()
        if self._fast is not None and self._fast.send(data):
            self.fast_sent += 1
            self._count(data)
            return None
        return self._send_slow(data)

    async def _send_slow(self, data: bytes) -> None:
        try:
            await self.sender.send_rtp(data)
        except ConnectionError:
            return
        self._count(data)

    def _count(self, data: bytes) -> None:
        self.packets_sent += 1
        self.bytes_sent += len(data) - 12

    def _map_payload_type(self, codec: RTCRtpCodecParameters) -> int | None:
        out = next((c for c in self.sender.negotiated_codecs if _same_codec(c, codec)), None)
        out_pt = out.payloadType if out is not None else None
        self._pt_map[codec.payloadType] = out_pt
        if out is not None:
            self.rewriter.clock_rate = out.clockRate
        return out_pt

    # --- subscriber side (called by ForwardingSender)

    def on_sender_started(self, codecs: list[RTCRtpCodecParameters]) -> None:
        self._pt_map.clear()
        if self.ready:
            self._request_keyframe_soon()

    async def on_nack(self, lost: list[int]) -> None:
        producer = self.producer
        if producer is None:
            return
        for out_seq in lost:
            in_seq = self.rewriter.source_seq(out_seq)
            entry = producer.cached(in_seq) if in_seq is not None else None
            if entry is None:
                continue
            out_pt = self._pt_map.get(entry.codec.payloadType)
            if out_pt is None:
                continue
            self.retransmitted += 1
            pending = self._send(entry, out_pt, out_seq, self.rewriter.out_timestamp(entry.ts))
            if pending is not None:
                await pending

    async def on_keyframe_request(self) -> None:
        """The subscriber asks for a keyframe (PLI/FIR): passed on at most once per
        SUBSCRIBER_KEYFRAME_INTERVAL, so one client cannot set a publisher's
        keyframe rate (and bitrate) for everyone."""
        now = time.monotonic()
        if now - self._last_subscriber_request < SUBSCRIBER_KEYFRAME_INTERVAL:
            self.keyframe_requests_dropped += 1
            return
        self._last_subscriber_request = now
        if self.producer is not None:
            await self.producer.request_keyframe()

    def sender_report(self) -> RtcpSrPacket | None:
        if self.packets_sent == 0 or self.producer is None:
            return None  # nothing sent, or an idle slot: nothing to report
        now = time.monotonic()
        rate = self.rewriter.clock_rate
        producer_sr = self.producer.last_sender_report if self.producer else None
        if producer_sr is not None:
            # Map the publisher's own NTP/RTP pair: audio and video from one
            # publisher then share its clock, which is what lip sync needs.
            ntp, rtp_ts, received = producer_sr
            age = now - received
            ntp_time = ntp + int(age * _NTP_SECOND)
            rtp_time = (self.rewriter.out_timestamp(rtp_ts) + int(age * rate)) % TS_MOD
        else:
            last_time = self.rewriter.last_out_time or now
            ntp_time = clock.current_ntp_time()
            rtp_time = (self.rewriter.last_out_ts + int((now - last_time) * rate)) % TS_MOD
        return RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp_time & 0xFFFFFFFFFFFFFFFF,
                rtp_timestamp=rtp_time,
                packet_count=self.packets_sent & 0xFFFFFFFF,
                octet_count=self.bytes_sent & 0xFFFFFFFF,
            ),
        )

    def close(self) -> None:
        self.detach()
        self.sender.source = None
