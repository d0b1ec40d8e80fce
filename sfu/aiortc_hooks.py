"""aiortc cannot forward RTP without decoding it. This module swaps the class of the
receivers and senders of *our* peer connections (never anyone else's) for:
- ForwardingReceiver (sfu/aiortc_receiver.py, the one other module with aiortc private
  names): keeps aiortc's receive-side RTCP (reports, REMB, NACKs, RTX) and hands each
  RTP packet, still encoded, to a sink; simulcast layers by RID.
- ForwardingSender: no track, no encoder; our Consumer sends through it and gets the
  subscriber's NACK, PLI/FIR, reports and REMB.
Also: the recorder's jitter buffer hook, the bench bots' keyframe requests, a fix of
aiortc's bandwidth estimator, ICE host sockets in a port range. Every private name
used is in PINNED_INTERNALS (tests/test_aiortc_hooks.py checks). ICE is in sfu/ice.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aioice
import aioice.ice
import aiortc
from aiortc import (
    RTCCertificate,
    RTCIceGatherer,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rate import AimdRateControl
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
)

from sfu.aiortc_receiver import ForwardingReceiver as ForwardingReceiver  # re-exported
from sfu.aiortc_receiver import mangled
from sfu.bandwidth import SenderFeedback, abs_send_time_id
from sfu.forwarding_types import SenderSource, SendRtp
from sfu.ice import restrict_host_addresses as restrict_host_addresses  # re-exported
from sfu.ice import rtc_configuration as rtc_configuration  # re-exported: bench/bot.py
from sfu.media_ports import HostGathering
from sfu.report_clock import report_clock

logger = logging.getLogger(__name__)

PINNED_AIORTC = "1.16.0"
PINNED_AIOICE = "0.13.0"


def _estimates_never_from_zero() -> None:
    # aiortc's estimator divides by its estimate, 0 once a stream it measured paused (we
    # stamp abs-send-time): every later packet raised, never reaching the receiver.
    near_max = AimdRateControl._near_max_rate_increase
    AimdRateControl._near_max_rate_increase = lambda self: (  # type: ignore[method-assign]
        near_max(self) if self.current_bitrate > 0 else 4000
    )


_estimates_never_from_zero()
# --------------------------------------------------------------------------- sender


class ForwardingSender(RTCRtpSender):
    """An RTCRtpSender without a track or encoder; its source sends RTP through it."""

    source: SenderSource | None
    feedback: SenderFeedback | None  # REMB and receiver reports, for the estimate
    started: bool
    negotiated_codecs: list[RTCRtpCodecParameters]
    abs_send_time_id: int | None  # the extension's id in the subscriber's answer, if any

    @classmethod
    def adopt(cls, sender: RTCRtpSender) -> ForwardingSender:
        if isinstance(sender, ForwardingSender):
            return sender
        if mangled(sender, RTCRtpSender, "started"):
            raise RuntimeError("sender already started; adopt it before negotiation completes")
        sender.__class__ = cls
        assert isinstance(sender, ForwardingSender)
        sender.source = None
        sender.feedback = sender.abs_send_time_id = None
        sender.started = False
        sender.negotiated_codecs = []
        return sender

    @property
    def ssrc(self) -> int:
        """The SSRC this sender announces in SDP and sends under."""
        return self._ssrc

    @property
    def rtx_ssrc(self) -> int:
        """The SSRC of retransmissions (RFC 4588) that aiortc's offer announces with it."""
        return self._rtx_ssrc

    def fast_path(self) -> FastRtpPath | None:
        """A FastRtpPath to this sender's subscriber (None for an unusual transport)."""
        return FastRtpPath.for_transport(self.transport)

    async def send_rtp(self, data: bytes) -> None:
        """Protect and send one RTP (or RTCP) packet by aiortc's own path (ConnectionError
        when the transport is not, or no longer, connected)."""
        await self.transport._send_rtp(data)

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self.started:
            return
        self.started = True
        self.negotiated_codecs = list(parameters.codecs)
        self.abs_send_time_id = abs_send_time_id(parameters.headerExtensions)
        self.transport._register_rtp_sender(self, parameters)
        if self.source is not None:
            if self.source.packets_sent:
                self.report_from_now()
            self.source.on_sender_started(self.negotiated_codecs)

    def report_from_now(self) -> None:
        """Its source sends (the first packet, from Consumer.transmit): sender reports
        from now on. Not before: in a quiet lesson most of a thousand senders have sent
        nothing, and a clock that asked each of them every second touched them all."""
        if self.started:
            report_clock().add(self)

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.transport._unregister_rtp_sender(self)
        report_clock().remove(self)

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        source, feedback = self.source, self.feedback
        if feedback is not None:
            feedback.on_rtcp_packet()
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if source is not None:
                await source.on_nack(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if source is not None:
                await source.on_keyframe_request()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            if feedback is not None:  # REMB: the subscriber's estimate of its link
                feedback.on_application_feedback(packet.fci)
        elif isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            if source is not None:  # aiortc's own RTT needs its own sender reports
                source.on_receiver_reports(packet.reports)
            if feedback is not None:
                feedback.on_reports(self.kind, self._ssrc, packet.reports)
        else:
            await super()._handle_rtcp_packet(packet)

    def send_report(self) -> Awaitable[None] | None:
        # Sender reports let the subscriber line up audio and video (sfu/report_clock.py).
        report = self.source.sender_report() if self.started and self.source else None
        return None if report is None else self.send_rtp(bytes(report))


# --------------------------------------------------------------------------- fast send


class FastRtpPath:
    """Send RTP to a subscriber without aiortc's and aioice's coroutine chain.

    aiortc's `RTCDtlsTransport._send_rtp` protects the packet, then awaits
    `RTCIceTransport._send` -> `Connection.sendto` -> `StunProtocol.send_data`,
    which only calls `transport.sendto`. On the forwarding path that chain is a
    large share of the CPU per packet, so when the nominated ICE pair is a plain
    UDP socket this does the same two steps directly. Anything else (not yet
    connected, a TURN relay, a changed pair) makes `send` return False and the
    caller takes aiortc's own path.
    """

    __slots__ = ("_addr", "_dtls", "_pair", "_sendto")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._pair: object | None = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None
        self._addr: tuple[str, int] | None = None

    @classmethod
    def for_transport(cls, transport: object) -> FastRtpPath | None:
        return cls(transport) if isinstance(transport, RTCDtlsTransport) else None

    def send(self, data: bytes) -> bool:
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        if pair is not self._pair:
            protocol = pair.protocol
            if type(protocol) is not aioice.ice.StunProtocol or protocol.transport is None:
                self._pair = None
                return False
            self._pair = pair
            self._sendto = protocol.transport.sendto
            self._addr = pair.remote_addr
        assert self._sendto is not None and self._addr is not None
        self._sendto(dtls._tx_srtp.protect(data), self._addr)
        return True


def ice_connections(pc: RTCPeerConnection) -> list[aioice.Connection]:
    """The aioice connections under `pc`'s transports (one when bundled)."""
    transports = {t.sender.transport for t in pc.getTransceivers()} - {None}
    return [dtls.transport._connection for dtls in transports]


def gather_hosts_with(pc: RTCPeerConnection, gather_hosts: HostGathering) -> None:
    """Before each setLocalDescription: `pc`'s ICE host sockets made by `gather_hosts`
    (a port range, sfu/media_ports.py), not by aioice; relayed candidates still are."""
    for ice in ice_connections(pc):
        if not isinstance(ice.get_component_candidates, functools.partial):
            ice.get_component_candidates = functools.partial(_hosts_first, ice, gather_hosts)  # type: ignore[method-assign]


async def _hosts_first(
    connection: Any, gather: HostGathering, component: int, addresses: list[str], timeout: int = 5
) -> list[Any]:
    protocols, others = await gather(connection, component, addresses)
    connection._protocols += protocols
    relayed = await aioice.Connection.get_component_candidates(connection, component, [], timeout)
    return [p.local_candidate for p in protocols] + others + relayed


# --------------------------------------------------------------------------- jitter buffer


def jitter_buffer_add(
    buffer: JitterBuffer, packet: RtpPacket, depayloaded: bytes
) -> tuple[bool, JitterFrame | None]:
    """Add a packet to aiortc's JitterBuffer: (keyframe wanted, a complete frame or None).
    Frames join the packets' ``_data`` (aiortc's receiver sets it to the depayloaded bytes)."""
    packet._data = depayloaded  # type: ignore[attr-defined]  # aiortc's own ignore, too
    return buffer.add(packet)


def _jitter_buffer_joins_packet_data() -> bool:
    buffer = JitterBuffer(capacity=4)
    frame = None
    for seq, ts, data in ((0, 0, b"a"), (1, 0, b"b"), (2, 1, b"c")):
        try:
            _, frame = jitter_buffer_add(buffer, RtpPacket(sequence_number=seq, timestamp=ts), data)
        except AttributeError:
            return False
    return frame is not None and frame.data == b"ab"


# --------------------------------------------------------------------------- pinned


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The primary SSRC of any aiortc sender (aiortc keeps it private)."""
    return int(sender._ssrc)


def inbound_streams(receiver: RTCRtpReceiver) -> dict[int, tuple[int, int]]:
    """(packets received, lost) per SSRC of any aiortc receiver: its getStats() names them
    all alike, so shows one (its RTX stream, once it has one)."""
    streams = mangled(receiver, RTCRtpReceiver, "remote_streams")
    return {ssrc: (s.packets_received, s.packets_lost) for ssrc, s in streams.items()}


def wrap_send_rtp(transport: RTCDtlsTransport, wrap: Callable[[SendRtp], SendRtp]) -> None:
    """Send every RTP packet of `transport` through wrap(original): the bench logs them."""
    # Replacing a method on the instance: what the hook is for.
    transport._send_rtp = wrap(transport._send_rtp)  # type: ignore[method-assign,assignment]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` too whenever `sender`'s receiver asks for a keyframe (PLI or FIR):
    a bench bot replaying pre-encoded video answers it as a browser's encoder would."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        callback()

    # Replacing a method on the instance: what the hook is for.
    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


# Every private name used here, with the class (or fresh instance) that has it.
PINNED_INTERNALS: tuple[tuple[type, str], ...] = (
    (RTCDtlsTransport, "_register_rtp_receiver"),
    (RTCDtlsTransport, "_register_rtp_sender"),
    (RTCDtlsTransport, "_unregister_rtp_sender"),
    (RTCDtlsTransport, "_unregister_rtp_receiver"),
    (RTCDtlsTransport, "_send_rtp"),
    (RTCDtlsTransport, "_rtp_router"),
    (RTCDtlsTransport, "_state"),
    (RTCDtlsTransport, "_tx_srtp"),
    (RTCIceTransport, "_connection"),
    (aioice.ice.Connection, "_nominated"),
    (aioice.ice.Connection, "_protocols"),
    (RTCRtpReceiver, "_enabled"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpReceiver, "_send_rtcp_nack"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    *(
        (RTCRtpReceiver, name)
        for name in ForwardingReceiver.__annotations__
        if name.startswith("_RTCRtpReceiver__")
    ),
    (RTCRtpSender, "_RTCRtpSender__started"),
    (RTCRtpSender, "_ssrc"),
    (RTCRtpSender, "_rtx_ssrc"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_send_keyframe"),
    (AimdRateControl, "_near_max_rate_increase"),
)


def _fresh_instances() -> dict[type, object]:
    """One new, unconnected object of each class in PINNED_INTERNALS (no I/O); on the
    event loop (aiortc's RTCRtpSender looks the loop up when made)."""
    ice = RTCIceTransport(RTCIceGatherer())
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    return {
        RTCDtlsTransport: dtls,
        RTCIceTransport: ice,
        aioice.ice.Connection: ice._connection,
        RTCRtpReceiver: RTCRtpReceiver("video", dtls),
        RTCRtpSender: RTCRtpSender("video", dtls),
    }


async def check_pinned_internals() -> list[str]:
    """Names this module relies on that the installed aiortc lacks (empty when all is
    well); a coroutine only because aiortc's objects are made on the event loop."""
    missing = []
    try:
        instances = _fresh_instances()
    except AttributeError as exc:  # an internal that building the objects uses
        where = type(exc.obj).__name__ if exc.obj is not None else "aiortc"
        return [f"{where}.{exc.name}"]
    for owner, name in PINNED_INTERNALS:
        if not hasattr(owner, name) and not hasattr(instances.get(owner), name):
            missing.append(f"{owner.__name__}.{name}")
    if not _jitter_buffer_joins_packet_data():
        missing.append("JitterBuffer frames from RtpPacket._data")
    if not hasattr(aioice.ice, "get_host_addresses"):
        missing.append("aioice.ice.get_host_addresses")
    if not hasattr(aioice.ice.StunProtocol, "send_data") or not hasattr(
        aioice.ice.CandidatePair, "remote_addr"
    ):
        missing.append("aioice.ice.StunProtocol.send_data / CandidatePair.remote_addr")
    if not all(hasattr(RtpRouter(), name) for name in ("mid_table", "ssrc_table")):
        missing.append("RtpRouter.mid_table / ssrc_table")
    if aiortc.__version__ != PINNED_AIORTC:
        missing.append(f"aiortc version {aiortc.__version__} != {PINNED_AIORTC}")
    if aioice.__version__ != PINNED_AIOICE:
        missing.append(f"aioice version {aioice.__version__} != {PINNED_AIOICE}")
    return missing
