"""Consumer: one outgoing track towards one subscriber, fed by a producer.

It owns the outgoing SSRC (its sender's) and a StreamRewriter, so the
subscriber sees one continuous stream even when the producer behind it
changes or pauses. Its packets go through the subscriber transport's Pacer
(sfu/pacer.py); NACKed packets are resent within the limits of
sfu/retransmit.py, as RTX (RFC 4588) when the subscriber negotiated it; what
the subscriber's reports say is in `link` (sfu/link.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpReceiverInfo, RtcpSenderInfo, RtcpSrPacket

from sfu.aiortc_hooks import FastRtpPath, ForwardingSender
from sfu.codec_match import same_codec
from sfu.keyframes import starts_keyframe
from sfu.latency import SAMPLE_MASK
from sfu.layer_select import ASK, FORWARD, SWITCHED, ConsumerLayers, LayerSelector
from sfu.layers import Layer
from sfu.link import LinkCounters, LinkReport, LinkStats
from sfu.pacer import AUDIO, RETRANSMISSION, VIDEO, Pacer
from sfu.producer import CachedPacket, Producer
from sfu.red_forwarding import audio_packet, handles
from sfu.retransmit import BEFORE_KEYFRAME, NOT_CACHED, RetransmitBudget, RetransmitLimiter
from sfu.rtp_header import (
    AST_UNITS,
    RTP_HEADER,
    RTP_HEADER_AST,
    SEQ_TS,
    ast_element,
    header_size,
    rtp_header,
    stamped,
)
from sfu.rtp_rewrite import SEQ_MOD, StreamRewriter
from sfu.rtx_stream import RtxStream

# A subscriber's own keyframe requests reach the publisher at most this often.
SUBSCRIBER_KEYFRAME_INTERVAL = 1.0
# Waiting for a keyframe, ask again after this long without one.
KEYFRAME_RETRY = 0.5
_DEFAULT_CLOCK = {"audio": 48000, "video": 90000}


class Consumer:
    def __init__(
        self,
        consumer_id: str,
        kind: str,
        sender: ForwardingSender,
        pacer: Pacer | None = None,
        budget: RetransmitBudget | None = None,
    ) -> None:
        """`pacer` and `budget` are the subscriber transport's, shared by its consumers
        (a consumer alone gets its own)."""
        self.id = consumer_id
        self.kind = kind
        self.sender = sender
        self.producer: Producer | None = None
        self.rewriter = StreamRewriter(_DEFAULT_CLOCK.get(kind, 90000))
        self.packets_sent = 0  # media packets (retransmissions are in `link`)
        self.bytes_sent = 0
        self.fast_sent = 0  # of all packets sent, those that took the FastRtpPath
        self._fast: FastRtpPath | None = None
        self.pacer = pacer or Pacer()
        self._priority = AUDIO if kind == "audio" else VIDEO
        self._limiter = RetransmitLimiter(budget or RetransmitBudget())
        self._stats = LinkStats(_DEFAULT_CLOCK.get(kind, 90000))
        self.ready = True
        # Held back for this subscriber only (rooms/ decides: a weak link, audio only).
        self.paused = False
        # Producer codec payload type -> the subscriber's (None: no matching codec).
        self._pt_map: dict[int | None, int | None] = {}
        self.rtx = RtxStream()  # retransmissions and probes' padding (RFC 4588)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_subscriber_request = -SUBSCRIBER_KEYFRAME_INTERVAL
        # Video of a new source waits for its keyframe (sfu/keyframes.py); the
        # monotonic time the keyframe was last asked for, while waiting.
        self._awaiting_keyframe = kind == "video"
        self._keyframe_starting = True
        self._keyframe_asked = 0.0
        # When the keyframe the stream last restarted from arrived from the publisher.
        self._keyframe_at = 0.0
        self.held_for_keyframe = 0  # packets not forwarded while waiting
        self.keyframe_requests_dropped = 0
        # The payload type of RED (RFC 2198) in the subscriber's last answer, if it took RED.
        self.red_payload_type: int | None = None
        # Simulcast (sfu/layer_select.py): which of the producer's layers is forwarded.
        self.layers = ConsumerLayers()
        self._temporal = self.layers.temporal  # read for every packet
        # abs-send-time's element header ((id << 28) | (2 << 24)), if negotiated.
        self._ast_element: int | None = None
        self._header_size = 12
        sender.source = self

    @property
    def link(self) -> LinkReport:
        """What the subscriber reports about this stream and what was done about it."""
        return self._stats.report(self.packets_sent, self.bytes_sent, self.held_for_keyframe)

    @property
    def link_stats(self) -> LinkStats:
        """The live record behind `link`, for readers that only sum it (sfu/stats.py)."""
        return self._stats

    @property
    def link_counters(self) -> LinkCounters:
        """The cumulative counts of `link` that a reader every second needs, cheaply."""
        return self._stats.counters(self.packets_sent, NOT_CACHED)

    def _request_keyframe_soon(self, starting: bool = True) -> None:
        """Ask for a keyframe (`starting`: this subscriber has no picture of the source)."""
        if self.producer is None:
            return
        self._keyframe_asked = now = time.monotonic()
        selector = self.layers.selector
        layer = selector.wanted(self.producer.layers, now) if selector is not None else 0
        task = asyncio.ensure_future(self.producer.request_keyframe(starting, layer))
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
        self.layers.attach(producer.layer_count)
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
        self.layers.restart()
        self._reoffer()

    def offered_layers(self, layers: Sequence[Layer], now: float) -> Sequence[int]:
        return () if self.paused else self.layers.offered(layers, now)

    def _reoffer(self) -> None:
        if self.producer is not None:
            self.producer.reoffer()

    def set_target_layer(self, layer: int | None) -> None:
        """Forward this simulcast layer of the producer (0: the smallest; None: the
        highest), or the nearest one being sent; the change waits for its keyframe."""
        self.layers.preferred = layer
        selector, producer = self.layers.selector, self.producer
        if selector is None or producer is None:
            return
        selector.preferred = self.layers.target(producer.layer_count)
        producer.reoffer()
        wanted = selector.wanted(producer.layers, time.monotonic())
        if wanted != selector.current and not self.paused and self.ready:
            self._request_keyframe_soon(starting=False)

    def _layer_admits(self, selector: LayerSelector, entry: CachedPacket, now: float) -> bool:
        """Simulcast: whether this packet is of the layer forwarded (switching to the
        wanted layer at its keyframe, asking for one while it does not come)."""
        layers = self.producer.layers if self.producer is not None else []
        verdict = selector.admit(entry.layer, entry.codec.mimeType, entry.payload, layers, now)
        if verdict == FORWARD:
            return True
        if verdict == SWITCHED:
            self._reoffer()  # settled: the other layers need not come here any more
            self.layers.switched()
            self.rewriter.switch()  # seq and timestamps go on from the last ones sent
            self._keyframe_at = entry.received_at
            return True
        if verdict == ASK:
            current = selector.current
            frozen = current is None or not layers[current].active(now)
            self._request_keyframe_soon(starting=frozen)
        return False

    def set_temporal_cap(self, cap: int | None) -> None:
        """Forward VP8 temporal layers up to this TID (None: all); going up waits for a
        layer-sync picture (sfu/temporal_layers.py)."""
        self.layers.temporal.cap = cap

    def pause(self) -> None:
        """Forward nothing more of the producer to this subscriber (others go on getting it)."""
        self.paused = True
        self._reoffer()

    def resume(self) -> None:
        """Forward again, from the producer's next keyframe (asked for at once)."""
        if not self.paused:
            return
        self.paused = False
        self.source_resumed()  # offered again (`_reoffer`)
        if self.ready and self.sender.started:
            self._request_keyframe_soon()

    def _await_keyframe(self, starting: bool = True) -> None:
        """Forward no video until a keyframe; `starting`: the subscriber has no picture
        of this source at all (a start, a switch, a resume), not a broken one."""
        self._awaiting_keyframe = self.kind == "video"
        self._keyframe_starting = starting

    def _held_back(self, entry: CachedPacket) -> bool:
        """While waiting for a keyframe: hold this packet back unless it starts one
        (asking again if the keyframe is slow to come)."""
        if starts_keyframe(entry.codec.mimeType, entry.payload):
            self._awaiting_keyframe = False
            return False
        self.held_for_keyframe += 1
        if time.monotonic() - self._keyframe_asked > KEYFRAME_RETRY:
            self._request_keyframe_soon(self._keyframe_starting)
        return True

    def forward(self, entry: CachedPacket, now: float) -> Coroutine[Any, Any, None] | None:
        """Send one packet (`now`: when it arrived); a coroutine when it could not go at once.
        Mostly synchronous (FastRtpPath): a fan-out costs no coroutine per subscriber."""
        if self.paused or not (self.ready and self.sender.started):
            return None
        selector = self.layers.selector
        if (
            selector is not None
            and entry.layer != selector.current
            and not self._layer_admits(selector, entry, now)
        ):
            return None
        restarts = self._awaiting_keyframe
        if restarts and self._held_back(entry):
            return None
        if self._temporal.active and self.layers.left_out(entry, self.rewriter):
            return None
        codec = entry.codec
        if self.kind == "audio" and handles(codec, self.red_payload_type):
            out_pt, entry = self._audio_with_red(entry)
        else:
            out_pt = self._pt_map.get(codec.payloadType, -1)
            if out_pt == -1:
                out_pt = self._map_payload_type(codec)
        if out_pt is None:
            return None
        mapped = self.rewriter.rewrite(entry.seq, entry.ts, now)
        if mapped is None:
            return None
        if restarts:
            self._keyframe_at = entry.received_at
        payload = entry.payload
        if (layers := self.layers).renumbers:  # picture ids go on across layers, gaps
            payload = layers.forwarded_payload(codec.mimeType, payload)
        # Each subscriber gets its own header in front of the shared payload:
        # one concatenation, the only copy of the packet before SRTP.
        ast = self._ast_element
        if ast is None:
            header = RTP_HEADER.pack(
                0x80, (entry.marker << 7) | out_pt, mapped[0], mapped[1], self.ssrc
            )
        else:  # stamped now: a packet the pacer queues is stamped again when it goes
            header = RTP_HEADER_AST.pack(
                0x90, (entry.marker << 7) | out_pt, mapped[0], mapped[1], self.ssrc,
                0xBEDE, 1, ast | (int(now * AST_UNITS) & 0xFFFFFF),
            )  # fmt: skip
        data = header + payload
        priority = self._priority
        if not self.pacer.admit(len(data), priority, now):
            self.pacer.enqueue(data, self, priority, now)
            return None
        fast = self._fast  # transmit(), inlined for the common case
        if fast is not None and fast.send(data):
            self.fast_sent += 1
            self.packets_sent += 1
            self.bytes_sent += len(entry.payload)
            if not self.packets_sent & SAMPLE_MASK:  # timed: one in SAMPLE_EVERY (sfu/latency.py)
                self.pacer.latency.observe(time.monotonic() - now)
            return None
        return self.transmit(data, priority, now)

    def _audio_with_red(self, entry: CachedPacket) -> tuple[int | None, CachedPacket]:
        """Audio with RED on either side (sfu/red_forwarding.py)."""
        producer = self.producer
        if producer is None:
            return None, entry
        age = self.rewriter.segment_age(entry.ts)
        codecs = self.sender.negotiated_codecs
        return audio_packet(entry, codecs, self.red_payload_type, age, producer.cached)

    def transmit(
        self, data: bytes, priority: int, arrived: float | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """Send a packet now (the pacer has let it go; `arrived`: when it reached the
        SFU, for the latency samples); a coroutine when aiortc's own path must take it."""
        if self._fast is None:  # the first packet (or a path not fast yet)
            self._fast = self.sender.fast_path()
            self.sender.report_from_now()
        if self._ast_element is not None:  # abs-send-time is the time it goes
            data = stamped(data, self._ast_element, time.monotonic())
        if self._fast is not None and self._fast.send(data):
            self.fast_sent += 1
            self._count(data, priority, arrived)
            return None
        return self._send_slow(data, priority, arrived)

    async def _send_slow(self, data: bytes, priority: int, arrived: float | None) -> None:
        try:
            await self.sender.send_rtp(data)
        except ConnectionError:
            return
        self._count(data, priority, arrived)

    def _count(self, data: bytes, priority: int, arrived: float | None) -> None:
        if priority == RETRANSMISSION:
            self._stats.retransmitted += 1
            self._stats.retransmitted_bytes += len(data)
        else:
            self.packets_sent += 1
            self.bytes_sent += len(data) - self._header_size
            if arrived is not None and not self.packets_sent & SAMPLE_MASK:
                self.pacer.latency.observe(time.monotonic() - arrived)

    def paced_video_dropped(self, count: int, first: bytes) -> None:
        """The pacer dropped `count` of our packets, from `first` on: the picture is broken
        until a keyframe, numbered on from the last packet sent (no loss to the subscriber)."""
        self._stats.paced_drops += count
        seq, ts = SEQ_TS.unpack_from(first, 2)
        self.rewriter.rewind((seq - 1) % SEQ_MOD, ts)
        self._await_keyframe(starting=False)
        # A congested link's loss: the full floor, not the start-up one.
        self._request_keyframe_soon(starting=False)

    def _map_payload_type(self, codec: RTCRtpCodecParameters) -> int | None:
        out = next((c for c in self.sender.negotiated_codecs if same_codec(c, codec)), None)
        out_pt = out.payloadType if out is not None else None
        self._pt_map[codec.payloadType] = out_pt
        if out is not None:
            self.rewriter.clock_rate = out.clockRate
            self._stats.clock_rate = out.clockRate
        return out_pt

    # --- subscriber side (called by ForwardingSender)

    def on_sender_started(self, codecs: list[RTCRtpCodecParameters]) -> None:
        self._pt_map.clear()
        ast_id = self.sender.abs_send_time_id
        self._ast_element = ast_element(ast_id)
        self._header_size = header_size(self._ast_element)
        self.rtx.negotiate(codecs)
        if self.ready:
            self._request_keyframe_soon()

    async def on_nack(self, lost: list[int]) -> None:
        self._stats.nacks_received += 1
        self._stats.nacked_packets += len(lost)
        now = time.monotonic()
        for out_seq in lost:
            pending = self._retransmit(out_seq, now)
            if pending is not None:
                await pending

    def _retransmit(self, out_seq: int, now: float) -> Coroutine[Any, Any, None] | None:
        """Resend packet `out_seq` if the limits allow (sfu/retransmit.py)."""
        producer, stats = self.producer, self._stats
        in_seq = self.rewriter.source_seq(out_seq) if producer is not None else None
        entry = None
        if producer is not None and in_seq is not None:
            entry = producer.cached(in_seq, self.layers.layer)
        out_pt = self._pt_map.get(entry.codec.payloadType) if entry is not None else None
        if entry is None or out_pt is None:
            stats.refuse(NOT_CACHED)
            return None
        if self._awaiting_keyframe or entry.received_at < self._keyframe_at:
            # The stream restarts (or restarted) from a keyframe: what came before
            # it is of no use to the subscriber's decoder.
            stats.refuse(BEFORE_KEYFRAME)
            return None
        rtx_pt = self.rtx.payload_types.get(out_pt)
        size = self._header_size + len(entry.payload) + (2 if rtx_pt is not None else 0)
        delivery_bps = self.pacer.media_bps * (1 - stats.fraction_lost)
        refusal = self._limiter.refusal(
            out_seq, size, entry.received_at, now, stats.rtt, delivery_bps
        )
        if refusal is not None:
            stats.refuse(refusal)
            return None
        data = self._resent_packet(entry, out_seq, out_pt, rtx_pt)
        if self.pacer.admit(size, RETRANSMISSION, now):
            return self.transmit(data, RETRANSMISSION)
        self.pacer.enqueue(data, self, RETRANSMISSION, now)
        return None

    def _resent_packet(
        self, entry: CachedPacket, out_seq: int, out_pt: int, rtx_pt: int | None
    ) -> bytes:
        out_ts = self.rewriter.out_timestamp(entry.ts)
        payload = self.layers.resent_payload(entry.codec.mimeType, entry.payload)
        if rtx_pt is None:  # on the media SSRC: the same packet again
            marker_pt = (entry.marker << 7) | out_pt
            return rtp_header(marker_pt, out_seq, out_ts, self.ssrc, self._ast_element) + payload
        marker_pt = (entry.marker << 7) | rtx_pt  # RTX: its own SSRC and numbering
        rtx_ssrc, element = self.sender.rtx_ssrc, self._ast_element
        return self.rtx.retransmission(marker_pt, out_seq, out_ts, rtx_ssrc, element, payload)

    async def on_keyframe_request(self) -> None:
        """The subscriber asks for a keyframe (PLI/FIR): passed on at most once per
        SUBSCRIBER_KEYFRAME_INTERVAL, so one client cannot set a publisher's
        keyframe rate (and bitrate) for everyone. A paused stream's decoder stalls
        and asks too: that is not passed on."""
        self._stats.plis_received += 1
        if self.paused or self._awaiting_keyframe:
            self._stats.plis_restarting += 1  # (its decoder waits: not the link's loss)
        if self.paused:
            self.keyframe_requests_dropped += 1
            return
        now = time.monotonic()
        if now - self._last_subscriber_request < SUBSCRIBER_KEYFRAME_INTERVAL:
            self.keyframe_requests_dropped += 1
            return
        self._last_subscriber_request = now
        if self.producer is not None:
            await self.producer.request_keyframe(layer=self.layers.layer)

    def on_receiver_reports(self, reports: list[RtcpReceiverInfo]) -> None:
        now = time.monotonic()
        for report in reports:
            if report.ssrc == self.ssrc:
                self._stats.report_received(report, now)

    @property
    def can_pad(self) -> bool:
        """Whether `send_padding` can send: a video stream sending, with RTX negotiated."""
        return self._fast is not None and not self.paused and bool(self.rtx.payload_types)

    def send_padding(self, size: int) -> int:
        """One padding-only packet of about `size` bytes on the RTX stream (sfu/padding.py),
        for a probe (sfu/probe.py), straight to the socket: the probe keeps its own rate.
        The bytes sent (0: it cannot, see `can_pad`)."""
        fast, rtx_ssrc = self._fast, self.sender.rtx_ssrc
        if fast is None or not self.can_pad:
            return 0
        data = self.rtx.padding(self.rewriter.last_out_ts, rtx_ssrc, self._ast_element, size)
        return len(data) if data is not None and fast.send(data) else 0

    def send_probe_report(self) -> Coroutine[Any, Any, None] | None:
        """A sender report now, behind a probe's padding; its echo is the probe's round
        trip (`link_stats.probe_rtt`). None when there is nothing to report."""
        report = self.sender_report(probe=True) if self.sender.started else None
        return None if report is None else self.sender.send_rtp(bytes(report))

    def sender_report(self, probe: bool = False) -> RtcpSrPacket | None:
        if self.packets_sent == 0 or self.producer is None:
            return None  # nothing sent, or an idle slot: nothing to report
        now = time.monotonic()
        if not probe and self._stats.probe_pending(now):
            return None  # the probe's report must be the one the subscriber echoes
        producer_sr = self.producer.sender_report_of(self.layers.layer)
        ntp_time, rtp_time = self.rewriter.report_times(producer_sr, now)
        self._stats.sender_report_sent(ntp_time, now, probe)  # its echo gives the RTT
        return RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp_time,
                rtp_timestamp=rtp_time,
                packet_count=self.packets_sent & 0xFFFFFFFF,
                octet_count=self.bytes_sent & 0xFFFFFFFF,
            ),
        )

    def close(self) -> None:
        self.detach()
        self.sender.source = None
