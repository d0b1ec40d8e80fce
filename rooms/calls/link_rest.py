"""Links at rest: what lets the once-a-second judging (rooms/calls/weak_links.py) pass
over a subscriber whose connection did nothing since it was last judged.

Judging walks every stream of every subscriber (the downlink sample, the videos' order
and rates, the layer plan): in a lesson where nothing is sent it was a quarter of
what a connected participant costs (docs/performance.md "full class"). A judgement
is a function of the link's counters, the time and the plans' state; it changes
nothing with time alone when the plans are at rest (`at_rest`: the link "good" with
no weak or bad run going on, nothing held back or capped, not congested, its queue
not growing; `at_rest` in rooms/calls/weak_links.py). So a link left at rest is not
judged again while

- nothing reached the call's producers (`MediaMoves`: no packet arrived, none
  paused or resumed, none came or went): nothing new could be forwarded, and
- the subscriber's connection shows the same counts (`link_moves`): no RTCP from it
  (reports, REMB, NACK, PLI), its pacer sent or dropped nothing, the same streams
  in the same slots, held or not.

Then the sample it would take is one of nothing (an "unknown" verdict, which moves no
judge at rest), and the plans would step nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from sfu.producer import Producer
from sfu.subscriber_transport import SubscriberTransport


class MediaMoves:
    """A version of what the call's producers received, raised whenever any moved."""

    def __init__(self) -> None:
        self.version = 0
        self._key: tuple[tuple[Producer, bool, int], ...] = ()

    def update(self, producers: Iterable[Producer]) -> None:
        key = tuple((p, p.paused, p.packets_received) for p in producers)
        if key != self._key:
            self._key = key
            self.version += 1


def link_moves(subscriber: SubscriberTransport) -> tuple[object, ...]:
    """What changes on `subscriber`'s connection whenever its counters can: the RTCP it
    sent, what its pacer queued, sent from the queue and dropped, and its streams."""
    pacer = subscriber.pacer
    return (
        subscriber.bandwidth.rtcp_packets,
        pacer.queued,
        pacer.queued_bytes,
        pacer.dropped_video,
        pacer.dropped_retransmissions,
        tuple((c.producer, c.paused) for c in subscriber.consumers),
    )
