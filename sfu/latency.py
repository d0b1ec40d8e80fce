"""Forwarding latency: from a packet's arrival (the producer's receive callback) to its
send to one subscriber (after the pacer, when it waited there), sampled.

Timing every packet would add a clock read and a bucket search per packet per
subscriber to the forwarding path. Each consumer times one media packet in
SAMPLE_EVERY instead, picked by its count of packets sent (`packets_sent &
SAMPLE_MASK == 0`: a packet that waited in the pacer is as likely to be timed as
one sent at once), into plain bucket counts (`LatencyBuckets`, one per
subscriber transport, on its pacer). A metrics scrape reads and sums them
(sfu/stats.py); nothing here knows Prometheus. Retransmissions are not timed:
they answer a NACK, they are not forwarding.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds (Prometheus's `le`), 0.1 ms to 1 s: on loopback a packet
# sent at once takes tens of µs; the pacer holds video for up to 0.5 s.
BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SAMPLE_EVERY = 16  # a power of two: the test is one `&`
SAMPLE_MASK = SAMPLE_EVERY - 1


class LatencyBuckets:
    """How many sampled packets fell in each bucket (the last: over 1 s), and their sum."""

    __slots__ = ("counts", "total_seconds")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.total_seconds = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1  # bisect_left: `le` includes the bound
        self.total_seconds += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, packets at or under it) for each bound, then (inf, all)."""
        running, out = 0, []
        for bound, count in zip((*BOUNDS, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def __add__(self, other: LatencyBuckets) -> LatencyBuckets:
        merged = LatencyBuckets()
        merged.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        merged.total_seconds = self.total_seconds + other.total_seconds
        return merged
