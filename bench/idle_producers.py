"""Producers for in-process benches of the media plane's bookkeeping: real Producers
on forwarding receivers that never start (no connection, no packets), as
bench.audio_slots_cost and bench.video_slots_cost need."""

from __future__ import annotations

from typing import Any

from aiortc import RTCRtpReceiver

from sfu.aiortc_hooks import ForwardingReceiver
from sfu.producer import Producer


class _Wire:
    """Stands in for the DTLS transport: registers, sends nothing."""

    state = "connected"
    _stats_id = "bench"

    def _register_rtp_receiver(self, *_: object) -> None: ...


def idle_producer(kind: str, index: int, app_data: dict[str, Any] | None = None) -> Producer:
    receiver = ForwardingReceiver.adopt(RTCRtpReceiver(kind, _Wire()))  # type: ignore[arg-type]
    return Producer(f"pr_{index}", kind, receiver, app_data or {})
