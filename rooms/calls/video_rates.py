"""What each video a call forwards weighs: its bitrate as the server receives it.

`EstimateFit` (rooms/hold_back.py) compares the sum of the videos a subscriber
gets with the SFU's estimate of that subscriber's link, and must know a held
video's bitrate too: so it is measured where the video arrives (the
producer's cumulative counts), once per sample, smoothed over a few samples
(a keyframe every few seconds makes one second's figure jump). The figure is
never below the mean of the last `WINDOW` seconds: the smoothed one dips in the
second after a keyframe (to ~0.85 of the mean with a keyframe every 2 s), and a cut
taken on that dip may keep one video too many on a link that is already too short.

A simulcast producer's layers are measured each on its own (what the
publisher sends of each, sfu/layers.py counters), for `LayerFit`
(rooms/layer_fit.py): what stepping a subscriber down or up a layer changes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sfu.layer_select import best_layer
from sfu.producer import Producer

# Each packet's RTP header on the subscriber's side (12 bytes, 8 of abs-send-time):
# the subscriber's estimate counts whole packets.
HEADER_BYTES = 20
SMOOTHING = 0.6  # the weight of the previous figure
# Two keyframe intervals of the bench clip; a browser's keyframes come on request.
WINDOW = 4.0


@dataclass
class _Seen:
    at: float
    bytes: int
    packets: int
    smoothed: float | None = None
    bps: float | None = None  # the smoothed figure, or the window's mean when higher
    # (at, bytes with headers) of the samples of the last WINDOW seconds, oldest first
    history: deque[tuple[float, int]] = field(default_factory=deque)


@dataclass
class VideoRates:
    """Bitrates of producers (bits per second), by producer id."""

    _seen: dict[str, _Seen] = field(default_factory=dict)

    def update(self, producers: list[Producer], now: float) -> None:
        """Measure these producers (the rest are forgotten)."""
        seen, self._seen = self._seen, {}
        for producer in producers:
            total, packets = producer.bytes_received, producer.packets_received
            self._measure(seen, producer.id, total, packets, now)
            if producer.layer_count > 1:
                for layer in producer.layers:
                    key = _layer_key(producer.id, layer.index)
                    self._measure(seen, key, layer.bytes, layer.packets, now)

    def _measure(
        self, seen: dict[str, _Seen], key: str, total: int, packets: int, now: float
    ) -> None:
        count = _Seen(now, total, packets)
        before = seen.get(key)
        if before is not None and now > before.at:
            sent = count.packets - before.packets
            bps = (count.bytes - before.bytes + HEADER_BYTES * sent) * 8 / (now - before.at)
            if before.smoothed is not None:
                bps = SMOOTHING * before.smoothed + (1 - SMOOTHING) * bps
            count.smoothed, count.history = bps, before.history
            count.bps = max(bps, _window_mean(count.history, now, total + HEADER_BYTES * packets))
        elif before is not None:
            count = before
        else:
            count.history.append((now, total + HEADER_BYTES * packets))
        self._seen[key] = count

    def bps(self, producer_id: str) -> float:
        """The producer's bitrate (0 until measured twice)."""
        seen = self._seen.get(producer_id)
        return seen.bps or 0.0 if seen is not None else 0.0

    def layer_bps(self, producer: Producer, now: float) -> tuple[float, ...]:
        """What forwarding each layer of the producer costs, smallest first (one
        figure without simulcast): a layer the publisher does not send now costs
        what the SFU forwards instead (sfu/layer_select.py `best_layer`)."""
        if producer.layer_count <= 1:
            return (self.bps(producer.id),)
        return tuple(
            self.bps(_layer_key(producer.id, best_layer(producer.layers, layer.index, now)))
            for layer in producer.layers
        )


def _window_mean(history: deque[tuple[float, int]], now: float, wire_bytes: int) -> float:
    """Add this sample to `history`, drop those older than WINDOW (one is kept at
    or past it), and return the mean bit/s from the oldest kept to this one."""
    history.append((now, wire_bytes))
    while len(history) > 2 and now - history[1][0] >= WINDOW:
        history.popleft()
    first_at, first_bytes = history[0]
    return (wire_bytes - first_bytes) * 8 / (now - first_at)


def _layer_key(producer_id: str, layer: int) -> str:
    return f"{producer_id}#{layer}"
