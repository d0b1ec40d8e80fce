"""Producer: one incoming track, forwarded as RTP packets to its consumers.

Dependencies go one way: sfu.consumer knows Producer; a producer knows its
consumers only as PacketSinks (the protocol below), so this module imports
nothing of sfu.consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSrPacket, RtpPacket

from sfu.aiortc_hooks import ForwardingReceiver
from sfu.audio_level import AudioLevelMeter
from sfu.layers import ACTIVITY_CHECK_INTERVAL, Layer, LayerReport
from sfu.vp8_descriptor import UNREAD

logger = logging.getLogger(__name__)

# A tap sees every packet a producer forwards (while not paused), on the event loop: it
# must only hand the packet on (a recorder queues it), never decode or wait.
PacketTap = Callable[["Producer", "CachedPacket"], None]

# Packets kept for answering subscribers' NACKs (about 3 s of 720p video).
CACHE_SIZE = 1024
# The default floor: a publisher is asked for a keyframe at most this often, however
# many subscribers lose packets (issue 16: at one per 0.3 s a single congested pupil
# raised every publisher's bitrate by 70-100 %). Configurable per router.
KEYFRAME_INTERVAL = 1.0
# A viewer with no picture at all (a consumer that starts, switches source or
# resumes) waits at most this long after the last request: with the 1 s floor
# for everything, 27-35 of 72 pairs in a call of 9 waited over 0.5 s for their
# first picture (bench.first_frame). Such requests follow joins and moves, which
# the signalling rate bounds; a congested link's PLIs keep the full floor.
STARTUP_KEYFRAME_INTERVAL = 0.3


class CachedPacket:
    """What a consumer needs of a received packet: numbering, marker, payload, codec,
    and when it arrived (monotonic; a retransmission has an age limit).

    The publisher's header extensions are not kept (its mid would be wrong
    on the subscriber side)."""

    __slots__ = ("codec", "layer", "marker", "payload", "received_at", "seq", "temporal", "ts")

    def __init__(
        self,
        seq: int,
        ts: int,
        marker: int,
        payload: bytes,
        codec: RTCRtpCodecParameters,
        received_at: float,
        layer: int = 0,
    ):
        self.layer = layer  # the simulcast layer (sfu/layers.py); 0 without simulcast
        # VP8 temporal layer bits (sfu/temporal_layers.py), read when first needed.
        self.temporal = UNREAD
        self.seq = seq
        self.ts = ts
        self.marker = marker
        self.payload = payload
        self.codec = codec
        self.received_at = received_at


class PacketSink(Protocol):
    """What a producer needs of each consumer it feeds (sfu.consumer.Consumer)."""

    def forward(self, entry: CachedPacket, now: float) -> Coroutine[Any, Any, None] | None:
        """Send one packet; a coroutine to await when it could not go at once."""
        ...

    def source_resumed(self) -> None:
        """The producer resumes after a pause: what follows is a new segment."""
        ...

    def offered_layers(self, layers: Sequence[Layer], now: float) -> Sequence[int]:
        """The layers whose packets `forward` may take until it calls `Producer.reoffer`
        (or a layer starts or stops): the others it would only drop."""
        ...

    def detach(self) -> None:
        """The producer closes: stop forwarding it (and leave its consumers list)."""
        ...


class Producer:
    def __init__(
        self,
        producer_id: str,
        kind: str,
        receiver: ForwardingReceiver,
        app_data: dict[str, Any],
        keyframe_interval: float = KEYFRAME_INTERVAL,
    ) -> None:
        self.id = producer_id
        self.kind = kind
        self.app_data = app_data
        self.transport_id: str | None = None  # the publisher transport it came on
        self.consumers: list[PacketSink] = []
        # Per layer, the consumers its packets are offered to (None: work it out again).
        # With simulcast each consumer takes one layer, and a grid page leaves many
        # tiles unshown (paused): offering every packet to each (a call, a check, a
        # drop) was a quarter of the server's CPU in a class of 31.
        self._offers: list[list[PacketSink]] | None = None
        self._active_layers = 0  # bit i: layer i was active at the last look
        self._active_checked = -ACTIVITY_CHECK_INTERVAL
        self.taps: list[PacketTap] = []
        self.paused = False
        self.closed = False
        self.packets_received = 0
        self.last_seq: int | None = None  # of the last packet received (layer 0 for audio)
        self.bytes_received = 0
        # (ntp timestamp, rtp timestamp, monotonic time received) of the last publisher SR.
        self.last_sender_report: tuple[int, int, float] | None = None
        self._receiver = receiver
        # Simulcast: a cache, counters and keyframe requests per layer (sfu/layers.py).
        self._rids = receiver.rids
        rids = self._rids.rids if self._rids is not None else (None,)
        self.layers = [Layer(index, rid) for index, rid in enumerate(rids)]
        self._caches: list[list[CachedPacket | None]] = [[None] * CACHE_SIZE for _ in rids]
        self._keyframe_layers: set[int] = set()
        self.keyframe_interval = keyframe_interval
        self._last_keyframe_request = -keyframe_interval
        # A request inside the keyframe interval waits here (one for all who asked meanwhile).
        self._deferred_keyframe: asyncio.TimerHandle | None = None
        self._deferred_due = 0.0
        # Counters for metrics: PLIs sent to the publisher, and requests postponed to
        # the end of the interval (all answered by the next one sent; those that found
        # a deferred PLI already waiting are also coalesced).
        self.keyframe_requests_sent = 0
        self.keyframe_requests_deferred = 0
        self.keyframe_requests_coalesced = 0
        self._keyframe_tasks: set[asyncio.Task[None]] = set()
        # Audio: each packet's RFC 6464 level, for the active-speaker detector.
        self.audio_meter = AudioLevelMeter() if kind == "audio" else None
        receiver.sink = self._on_rtp
        receiver.sr_sink = self._on_sender_report

    async def _on_rtp(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        payload = packet.payload
        if not payload:
            return  # padding-only probe: nothing for subscribers
        seq = packet.sequence_number
        now = time.monotonic()
        layer = 0
        if self._rids is not None:
            found = self._rids.layer_of(packet.ssrc)
            if found is None:
                return  # no rid seen for this SSRC yet: its layer is unknown
            layer = found
            if now - self._active_checked > ACTIVITY_CHECK_INTERVAL:
                self._check_activity(now)
            stats = self.layers[layer]
            if not stats.active(now):
                self._offers = None  # a layer starts (again): consumers may want it
            stats.add(len(payload), now)
        entry = CachedPacket(seq, packet.timestamp, packet.marker, payload, codec, now, layer)
        self._caches[layer][seq % CACHE_SIZE] = entry
        self.packets_received += 1
        self.last_seq = seq
        self.bytes_received += len(payload)
        if self.paused:
            return
        level = packet.extensions.audio_level  # (voice, -dBov), parsed by aiortc's RtpPacket
        if level is not None and self.audio_meter is not None:
            self.audio_meter.observe(level[0], level[1], packet.timestamp, codec.clockRate)
        offers = self._offers or self._offer(now)
        for consumer in offers[layer]:
            pending = consumer.forward(entry, now)
            if pending is not None:
                await pending
        for tap in self.taps if layer == 0 else ():  # the recorder takes the smallest layer
            try:
                tap(self, entry)
            except Exception:  # a broken tap must not stop forwarding
                logger.exception("packet tap of producer %s failed; removed", self.id)
                self.remove_tap(tap)

    def reoffer(self) -> None:
        """A consumer's `offered_layers` changed (paused, resumed, switched layer, a new
        target): who is offered which layer is worked out again at the next packet."""
        self._offers = None

    def _offer(self, now: float) -> list[list[PacketSink]]:
        offers: list[list[PacketSink]] = [[] for _ in self.layers]
        for consumer in self.consumers:
            for index in consumer.offered_layers(self.layers, now):
                offers[index].append(consumer)
        self._offers = offers
        return offers

    def _check_activity(self, now: float) -> None:
        """A layer that stopped changes what consumers want (they fall to another)."""
        self._active_checked = now
        active = sum(1 << layer.index for layer in self.layers if layer.active(now))
        if active != self._active_layers:
            self._active_layers = active
            self._offers = None

    def add_consumer(self, consumer: PacketSink) -> None:
        self.consumers.append(consumer)
        self._offers = None

    def remove_consumer(self, consumer: PacketSink) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            self._offers = None

    def add_tap(self, tap: PacketTap) -> None:
        if tap not in self.taps:
            self.taps = [*self.taps, tap]

    def remove_tap(self, tap: PacketTap) -> None:
        self.taps = [t for t in self.taps if t != tap]  # bound methods: equal, not identical

    def _on_sender_report(self, packet: RtcpSrPacket) -> None:
        info = packet.sender_info
        report = (info.ntp_timestamp, info.rtp_timestamp, time.monotonic())
        layer = self._rids.layer_of(packet.ssrc) if self._rids is not None else 0
        if layer is not None:
            self.layers[layer].sender_report = report
        if layer == 0:
            self.last_sender_report = report

    def sender_report_of(self, layer: int) -> tuple[int, int, float] | None:
        """The last sender report of a layer's SSRC (each has its own RTP timestamps)."""
        return (
            self.layers[layer].sender_report if self._rids is not None else self.last_sender_report
        )

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    def layer_reports(self) -> list[LayerReport]:
        """Each layer as received now: SSRC, counts, bitrate, whether it is being sent."""
        now = time.monotonic()
        ssrcs = self._rids.ssrc_by_layer if self._rids is not None else [self._receiver.media_ssrc]
        return [layer.report(ssrc, now) for layer, ssrc in zip(self.layers, ssrcs, strict=True)]

    def cached(self, seq: int, layer: int = 0) -> CachedPacket | None:
        entry = self._caches[layer][seq % CACHE_SIZE]
        if entry is None or entry.seq != seq:
            return None
        return entry

    def cached_packets(self, layer: int = 0) -> list[CachedPacket]:
        """What a layer's cache holds now, in no order (for benches and diagnostics)."""
        return [entry for entry in self._caches[layer] if entry is not None]

    def recent(self, duration: float) -> list[CachedPacket]:
        """The cached packets of the stream's last `duration` seconds (by RTP timestamps),
        oldest first: what a listener just switched to this producer missed (audio)."""
        newest = self.cached(self.last_seq) if self.last_seq is not None else None
        if newest is None:
            return []
        span = int(duration * newest.codec.clockRate)
        found = []
        seq = newest.seq
        for _ in range(64):
            entry = self.cached(seq)
            if entry is None or (newest.ts - entry.ts) % (1 << 32) > span:
                break
            found.append(entry)
            seq = (seq - 1) % (1 << 16)
        return found[::-1]

    async def request_keyframe(self, starting: bool = False, layer: int = 0) -> None:
        """Ask the publisher for a keyframe: at once, or when the floor has passed since
        the last request (`keyframe_interval`; STARTUP_KEYFRAME_INTERVAL when `starting`:
        a consumer that has no picture yet).

        A request inside the interval is postponed, never dropped: consumers that
        become ready a few ms apart all need the keyframe, and one deferred PLI
        answers every one of them. Simulcast: a PLI on the SSRC of each `layer`
        asked for meanwhile (the floor is the publisher's, for all its layers).
        """
        if self.kind != "video" or self.closed:
            return
        self._keyframe_layers.add(layer)
        interval = self.keyframe_interval
        if starting:
            interval = min(interval, STARTUP_KEYFRAME_INTERVAL)
        due = self._last_keyframe_request + interval
        now = time.monotonic()
        if due > now:
            self.keyframe_requests_deferred += 1
            if self._deferred_keyframe is not None and self._deferred_due <= due:
                self.keyframe_requests_coalesced += 1
                return
            if self._deferred_keyframe is not None:  # a later repair, now wanted sooner
                self._deferred_keyframe.cancel()
            loop = asyncio.get_running_loop()
            self._deferred_keyframe = loop.call_later(due - now, self._deferred_request)
            self._deferred_due = due
            return
        await self._send_keyframe_request()

    async def _send_keyframe_request(self) -> None:
        layers = self._mark_keyframe_request()
        if layers is not None:
            await self._ask_for_keyframes(layers)

    def _mark_keyframe_request(self) -> list[int] | None:
        """Book a request as sent, synchronously (a request arriving between a
        deferred one's timer and its task must see the floor as just restarted);
        the layers to ask, or None when nobody can be asked yet."""
        if self._deferred_keyframe is not None:  # this one answers it
            self._deferred_keyframe.cancel()
            self._deferred_keyframe = None
        if self._receiver.media_ssrc is None:
            return None  # before its first packet: nobody to ask (its first frame is a keyframe)
        self._last_keyframe_request = time.monotonic()
        self.keyframe_requests_sent += 1
        layers, self._keyframe_layers = sorted(self._keyframe_layers), set()
        return layers

    async def _ask_for_keyframes(self, layers: list[int]) -> None:
        if self._rids is None:
            await self._receiver.request_keyframe()
            return
        for layer in layers or [0]:
            ssrc = self._rids.ssrc_by_layer[layer]
            if ssrc is not None:  # else not sent yet: its first frame will be a keyframe
                await self._receiver.request_keyframe(ssrc)

    def _deferred_request(self) -> None:
        self._deferred_keyframe = None
        layers = None if self.closed else self._mark_keyframe_request()
        if layers is None:
            return
        task = asyncio.ensure_future(self._ask_for_keyframes(layers))
        self._keyframe_tasks.add(task)
        task.add_done_callback(self._keyframe_tasks.discard)

    def pause(self) -> None:
        """Stop forwarding at once (a muted microphone, a stopped camera)."""
        self.paused = True

    async def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        for consumer in self.consumers:
            consumer.source_resumed()
        self._offers = None
        self._keyframe_layers.update(range(len(self.layers)))  # every layer restarts
        await self.request_keyframe(starting=True)

    def close(self) -> None:
        self.closed = True
        if self._deferred_keyframe is not None:
            self._deferred_keyframe.cancel()
            self._deferred_keyframe = None
        self.taps = []
        self._receiver.sink = None
        self._receiver.sr_sink = None
        for consumer in list(self.consumers):
            consumer.detach()
