"""What a producer receives of each of its layers: the SSRC, counts, bitrate, activity.

A publisher without simulcast has one layer (index 0). A simulcast publisher
has one per rid of its offer, index 0 the smallest (sfu/simulcast_sdp.py). A
layer the browser stops sending (too little bandwidth, or paused by the page)
is no longer `active` after LAYER_TIMEOUT; consumers then fall to another one
(sfu/layer_select.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# A layer without a packet for this long has stopped (a browser sends 15-30
# frames a second of every layer it sends at all).
LAYER_TIMEOUT = 1.0
# How often a producer looks for layers that stopped (consumers fall to another one
# within about this long of LAYER_TIMEOUT).
ACTIVITY_CHECK_INTERVAL = 0.1
# Bitrates are measured over windows of about this long.
RATE_WINDOW = 1.0


@dataclass(frozen=True)
class LayerReport:
    index: int
    rid: str | None
    ssrc: int | None
    packets: int
    bytes: int
    bitrate: int  # bit/s over the last window, 0 once the layer stopped
    active: bool


class Layer:
    """One layer's receive counters (updated per packet, so kept small and cheap)."""

    __slots__ = (
        "_window_bytes",
        "_window_start",
        "bitrate",
        "bytes",
        "index",
        "last_packet_at",
        "packets",
        "rid",
        "sender_report",
    )

    def __init__(self, index: int, rid: str | None) -> None:
        self.index = index
        self.rid = rid
        self.packets = 0
        self.bytes = 0
        self.bitrate = 0
        self.last_packet_at = -LAYER_TIMEOUT
        self._window_start: float | None = None
        self._window_bytes = 0
        # (ntp timestamp, rtp timestamp, monotonic time received) of this layer's last SR:
        # each simulcast SSRC has its own RTP timestamps.
        self.sender_report: tuple[int, int, float] | None = None

    def add(self, size: int, now: float) -> None:
        self.packets += 1
        self.bytes += size
        self.last_packet_at = now
        start = self._window_start
        if start is None or now - start > 2 * RATE_WINDOW:  # the first packet, or after a stop
            self._window_start, self._window_bytes = now, size
            return
        self._window_bytes += size
        if now - start >= RATE_WINDOW:
            self.bitrate = int(self._window_bytes * 8 / (now - start))
            self._window_start, self._window_bytes = now, 0

    def active(self, now: float) -> bool:
        return now - self.last_packet_at < LAYER_TIMEOUT

    def report(self, ssrc: int | None, now: float) -> LayerReport:
        active = self.active(now)
        bitrate = self.bitrate if active else 0
        return LayerReport(self.index, self.rid, ssrc, self.packets, self.bytes, bitrate, active)
