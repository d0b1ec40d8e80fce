"""Types of the forwarding hooks (sfu/aiortc_hooks.py) that their users pass or implement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpReceiverInfo, RtcpSrPacket, RtpPacket

# A ForwardingReceiver's packets (still encoded) and sender reports go to these.
RtpSink = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]
SrSink = Callable[[RtcpSrPacket], None]
# A transport's own send of one RTP packet (wrap_send_rtp wraps it: the bench).
SendRtp = Callable[[bytes], Coroutine[Any, Any, None]]


class SenderSource(Protocol):
    """What a ForwardingSender needs from whoever feeds it (our Consumer)."""

    packets_sent: int

    def on_sender_started(self, codecs: list[RTCRtpCodecParameters]) -> None: ...

    async def on_nack(self, lost: list[int]) -> None: ...

    async def on_keyframe_request(self) -> None: ...

    def on_receiver_reports(self, reports: list[RtcpReceiverInfo]) -> None: ...

    def sender_report(self) -> RtcpSrPacket | None: ...
