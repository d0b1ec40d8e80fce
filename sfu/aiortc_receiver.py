"""aiortc's receiver, made to forward (aiortc private names: the second hooks module
beside sfu/aiortc_hooks.py, which pins every name used here too).

- ForwardingReceiver: keeps aiortc's receive-side RTCP (receiver reports, REMB, NACKs,
  RTX) and hands each RTP packet, still encoded, to a sink; simulcast layers by RID.
- Its receiver reports go out on the event loop's one report clock
  (sfu/report_clock.py), as the forwarding senders' sender reports do: aiortc runs a
  task per receiver that wakes every 0.5-1.5 s, even with nothing received, which
  made every publisher's camera and microphone two more timers a second of a
  connection's upkeep (docs/performance.md "full class"). The report is aiortc's:
  one RR of every stream received, DLSR from the last sender report; a receiver
  joins the clock with its first packet (a camera that never sends costs nothing).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from sfu.forwarding_types import RtpSink, SrSink
from sfu.report_clock import report_clock
from sfu.simulcast import MidRtpRouter, RidDemux


def mangled(obj: object, owner: type, name: str) -> Any:
    """aiortc's private ``self.__name`` of class `owner`, on an object not (yet) ours."""
    return getattr(obj, f"_{owner.__name__}__{name}")


class ForwardingReceiver(RTCRtpReceiver):
    """An RTCRtpReceiver that forwards encoded packets instead of decoding them."""

    sink: RtpSink | None
    sr_sink: SrSink | None
    media_ssrc: int | None
    extra_codecs: list[RTCRtpCodecParameters]  # beyond aiortc's table (RED): routed here too
    extra_header_extensions: list[RTCRtpHeaderExtensionParameters]  # the RID ones
    rids: RidDemux | None  # a simulcast m-section: its layers by SSRC
    layer_nacks: dict[int, NackGenerator]  # simulcast: one sequence space per SSRC
    stopped: bool  # a late packet must not bring it back onto the report clock
    # aiortc's own (name-mangled) receiver state that forwarding reads and sets,
    # declared for the type checker; check_pinned_internals() checks each is there.
    _RTCRtpReceiver__started: bool
    _RTCRtpReceiver__codecs: dict[int, RTCRtpCodecParameters]
    _RTCRtpReceiver__rtx_ssrc: dict[int, int]
    _RTCRtpReceiver__rtcp_ssrc: int | None
    _RTCRtpReceiver__remote_bitrate_estimator: RemoteBitrateEstimator | None
    _RTCRtpReceiver__remote_streams: dict[int, StreamStatistics]
    _RTCRtpReceiver__nack_generator: NackGenerator | None
    _RTCRtpReceiver__lsr: dict[int, int]  # by SSRC: the last sender report's middle NTP bits
    _RTCRtpReceiver__lsr_time: dict[int, float]  # and when it came (time.time())

    @classmethod
    def adopt(cls, receiver: RTCRtpReceiver) -> ForwardingReceiver:
        """Turn aiortc's receiver into a forwarding one, before it starts receiving."""
        if isinstance(receiver, ForwardingReceiver):
            return receiver
        if mangled(receiver, RTCRtpReceiver, "started"):
            raise RuntimeError("receiver already started; adopt it before negotiation completes")
        receiver.__class__ = cls
        assert isinstance(receiver, ForwardingReceiver)
        receiver.sink = None
        receiver.sr_sink = None
        receiver.media_ssrc = None
        receiver.extra_codecs = []
        receiver.extra_header_extensions = []
        receiver.rids = None
        receiver.layer_nacks = {}
        receiver.stopped = False
        transport = receiver.transport
        if isinstance(transport, RTCDtlsTransport) and type(transport._rtp_router) is RtpRouter:
            transport._rtp_router.__class__ = MidRtpRouter
        return receiver

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # aiortc's receive() with the decoder thread left out.
        if self._RTCRtpReceiver__started:
            return
        parameters.codecs = [*parameters.codecs, *self.extra_codecs]  # a fresh object each call
        parameters.headerExtensions = [*parameters.headerExtensions, *self.extra_header_extensions]
        codecs = self._RTCRtpReceiver__codecs
        for codec in parameters.codecs:
            if codec.payloadType is not None:  # always set on negotiated codecs
                codecs[codec.payloadType] = codec
        rtx_ssrc = self._RTCRtpReceiver__rtx_ssrc
        rtx_ssrc.update({e.rtx.ssrc: e.ssrc for e in parameters.encodings if e.rtx})
        self.transport._register_rtp_receiver(self, parameters)
        # RTX by SSRC: aiortc routes it by payload type, lost when two m-sections share one.
        self.transport._rtp_router.register_receiver(self, ssrcs=list(rtx_ssrc), payload_types=[])
        self._RTCRtpReceiver__started = True

    async def stop(self) -> None:
        # aiortc's stop() with its RTCP task (and the decoder we never start) left out.
        self.stopped = True
        if self._RTCRtpReceiver__started:
            self.transport._unregister_rtp_receiver(self)
        report_clock().remove(self)

    def send_report(self) -> Awaitable[None] | None:
        """aiortc's periodic receiver report (its `_run_rtcp` loop body): a block for
        every stream received, nothing before the first packet (sfu/report_clock.py)."""
        rtcp_ssrc = self._RTCRtpReceiver__rtcp_ssrc
        streams = self._RTCRtpReceiver__remote_streams
        if rtcp_ssrc is None or not streams:
            return None
        lsrs, lsr_times = self._RTCRtpReceiver__lsr, self._RTCRtpReceiver__lsr_time
        now = time.time()
        reports = []
        for ssrc, stream in streams.items():
            lsr = lsrs.get(ssrc, 0)
            delay = now - lsr_times[ssrc] if ssrc in lsrs else 0.0
            reports.append(
                RtcpReceiverInfo(
                    ssrc=ssrc,
                    fraction_lost=stream.fraction_lost,
                    packets_lost=stream.packets_lost,
                    highest_sequence=stream.max_seq or 0,  # set by the first packet
                    jitter=stream.jitter,
                    lsr=lsr,
                    dlsr=int(delay * 65536) if 0 < delay < 65536 else 0,
                )
            )
        return self._send_rtcp(RtcpRrPacket(ssrc=rtcp_ssrc, reports=reports))

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if not isinstance(packet, RtcpSrPacket):
            await super()._handle_rtcp_packet(packet)
            return
        # aiortc's handling of a sender report without its getStats() entry (two
        # datetimes a report; nobody asks a forwarding receiver for its stats): the
        # LSR that our receiver reports echo, and when it came, for their DLSR.
        ntp = packet.sender_info.ntp_timestamp
        self._RTCRtpReceiver__lsr[packet.ssrc] = (ntp >> 16) & 0xFFFFFFFF
        self._RTCRtpReceiver__lsr_time[packet.ssrc] = time.time()
        if self.sr_sink is not None:
            self.sr_sink(packet)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if not self._enabled:
            return
        await self._send_remb(packet, arrival_time_ms)
        codecs = self._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        # Statistics behind our receiver reports to the publisher.
        streams = self._RTCRtpReceiver__remote_streams
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
            # Receiver reports (instead of aiortc's RTCP task) from the first packet on:
            # before it there is nothing to report (sfu/report_clock.py).
            if not self.stopped:
                report_clock().add(self)
        stats.add(packet)
        rids, ext = self.rids, packet.extensions
        if rids is not None and (ext.rtp_stream_id or ext.repaired_rtp_stream_id):
            rids.learn(packet.ssrc, ext.rtp_stream_id, ext.repaired_rtp_stream_id)

        if is_rtx(codec):
            original_ssrc = self._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None and rids is not None:
                original_ssrc = rids.repaired_ssrc(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int):
                return
            if apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        else:
            self.media_ssrc = packet.ssrc

        nack = self._RTCRtpReceiver__nack_generator
        if nack is not None and rids is not None:
            nack = self.layer_nacks.setdefault(packet.ssrc, NackGenerator())
        if nack is not None and nack.add(packet):
            await self._send_rtcp_nack(packet.ssrc, sorted(nack.missing))

        if self.sink is not None:
            await self.sink(packet, codec)

    async def _send_remb(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        # Bandwidth feedback (REMB) so the publisher's encoder ramps up.
        estimator = self._RTCRtpReceiver__remote_bitrate_estimator
        if estimator is None or packet.extensions.abs_send_time is None:
            return
        remb = estimator.add(
            abs_send_time=packet.extensions.abs_send_time,
            arrival_time_ms=arrival_time_ms,
            payload_size=len(packet.payload) + packet.padding_size,
            ssrc=packet.ssrc,
        )
        rtcp_ssrc = self._RTCRtpReceiver__rtcp_ssrc
        if rtcp_ssrc is not None and remb is not None:
            await self._send_rtcp(
                RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
                )
            )

    async def request_keyframe(self, ssrc: int | None = None) -> None:
        """Send a PLI to the publisher (for `ssrc`, a simulcast layer; else the last seen)."""
        if (ssrc := ssrc or self.media_ssrc) is not None:
            await self._send_rtcp_pli(ssrc)
