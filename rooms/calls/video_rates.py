"""What each video a call forwards weighs: its bitrate as the server receives it.

`EstimateFit` (rooms/hold_back.py) compares the sum of the videos a subscriber
gets with the SFU's estimate of that subscriber's link, and must know a held
video's bitrate too: so it is measured where the video arrives (the
producer's cumulative counts), once per sample, smoothed over a few samples
(a keyframe every few seconds makes one second's figure jump).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.producer import Producer

# Each packet's RTP header on the subscriber's side (12 bytes, 8 of abs-send-time):
# the subscriber's estimate counts whole packets.
HEADER_BYTES = 20
SMOOTHING = 0.6  # the weight of the previous figure


@dataclass
class _Seen:
    at: float
    bytes: int
    packets: int
    bps: float | None = None


@dataclass
class VideoRates:
    """Bitrates of producers (bits per second), by producer id."""

    _seen: dict[str, _Seen] = field(default_factory=dict)

    def update(self, producers: list[Producer], now: float) -> None:
        """Measure these producers (the rest are forgotten)."""
        seen, self._seen = self._seen, {}
        for producer in producers:
            count = _Seen(now, producer.bytes_received, producer.packets_received)
            before = seen.get(producer.id)
            if before is not None and now > before.at:
                packets = count.packets - before.packets
                bps = (count.bytes - before.bytes + HEADER_BYTES * packets) * 8 / (now - before.at)
                if before.bps is not None:
                    bps = SMOOTHING * before.bps + (1 - SMOOTHING) * bps
                count.bps = bps
            elif before is not None:
                count = before
            self._seen[producer.id] = count

    def bps(self, producer_id: str) -> float:
        """The producer's bitrate (0 until measured twice)."""
        seen = self._seen.get(producer_id)
        return seen.bps or 0.0 if seen is not None else 0.0
