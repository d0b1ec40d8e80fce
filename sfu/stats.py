"""Node-wide forwarding totals, read from the counters producers and consumers keep anyway.

Nothing here runs per packet: `node_totals` walks the live transports when
someone asks (a metrics scrape) and adds what closed transports counted
before they went (`ForwardingTotals.retire`, called once per transport as it
closes), so every total only grows, as a Prometheus counter must.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from sfu.latency import LatencyBuckets
from sfu.subscriber_transport import SubscriberTransport
from sfu.transport import PublisherTransport, WebRtcTransport


@dataclass
class ForwardingTotals:
    packets_in: int = 0  # media packets received from publishers
    bytes_in: int = 0  # their payload bytes
    packets_out: int = 0  # media packets sent to subscribers (retransmissions not included)
    bytes_out: int = 0  # their payload bytes
    retransmitted_packets: int = 0
    retransmitted_bytes: int = 0
    nacks_received: int = 0  # NACK messages from subscribers
    nacked_packets: int = 0  # sequence numbers they listed
    plis_received: int = 0  # PLI/FIR from subscribers
    keyframe_requests_sent: int = 0  # PLIs we sent to publishers
    receiver_reported_lost: int = 0  # cumulative loss in subscribers' receiver reports
    paced_drops: int = 0  # video packets the pacer dropped
    # Sampled arrival-to-send times of forwarded packets (sfu/latency.py).
    forward_latency: LatencyBuckets = field(default_factory=LatencyBuckets)

    def add(self, other: ForwardingTotals) -> None:
        """Sum `other` into this one (a new LatencyBuckets, never the live one of a pacer)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def retire(self, transport: WebRtcTransport) -> None:
        """Keep what a closing transport counted (call before its producers and consumers
        are gone from the live walk)."""
        self.add(transport_totals(transport))


def transport_totals(transport: WebRtcTransport) -> ForwardingTotals:
    if isinstance(transport, PublisherTransport):
        totals = ForwardingTotals()
        for producer in transport.producers.values():
            totals.packets_in += producer.packets_received
            totals.bytes_in += producer.bytes_received
            totals.keyframe_requests_sent += producer.keyframe_requests_sent
        return totals
    if not isinstance(transport, SubscriberTransport):
        return ForwardingTotals()
    # Local sums: this loop runs over every consumer of the node at each scrape.
    packets = octets = resent = resent_bytes = nacks = nacked = plis = lost = dropped = 0
    for consumer in transport.consumers:
        packets += consumer.packets_sent
        octets += consumer.bytes_sent
        # The consumer's own record, read directly: building its LinkReport copies more.
        stats = consumer.link_stats
        resent += stats.retransmitted
        resent_bytes += stats.retransmitted_bytes
        nacks += stats.nacks_received
        nacked += stats.nacked_packets
        plis += stats.plis_received
        # A receiver may report less than before (duplicates count negative): never below 0.
        lost += max(0, stats.packets_lost)
        dropped += stats.paced_drops
    return ForwardingTotals(
        packets_out=packets,
        bytes_out=octets,
        retransmitted_packets=resent,
        retransmitted_bytes=resent_bytes,
        nacks_received=nacks,
        nacked_packets=nacked,
        plis_received=plis,
        receiver_reported_lost=lost,
        paced_drops=dropped,
        forward_latency=transport.pacer.latency,
    )


def node_totals(
    transports: Iterable[WebRtcTransport], retired: ForwardingTotals
) -> ForwardingTotals:
    totals = ForwardingTotals()
    totals.add(retired)
    for transport in transports:
        totals.add(transport_totals(transport))
    return totals
