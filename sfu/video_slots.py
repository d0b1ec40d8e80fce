"""Bounded video: a subscriber's video m-sections are bounded by what it shows.

A subscriber is asked to receive every video of its router (`consume`), but
past `limit` of them (pinned ones not counted: the caller pins what every page
shows, e.g. a host's camera or a shared screen) a video gets no m-section: it
is *parked*, remembered but in no offer and sent nothing, as LiveKit subscribes
by what is on screen and mediasoup apps create consumers on demand.

What the subscriber's holds say decides the rest (`SubscriberTransport.hold`:
what its page does not show, what its link cannot carry). A parked video that
is no longer held takes a free video m-section, or that of the video held for
the longest time, which is parked in its place: a page flip of the grid is one
offer, and m-sections are re-used, never added past the bound. A video that is
not held is never evicted, so a page showing more than `limit` videos at once
leaves the excess parked (the call page's grid shows 16 at most).

A re-used m-section starts its new source from a keyframe after the answer that
names it, as any re-used m-section does: a page never sees one person's
picture under another's name. This module only decides; the transport moves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sfu.consumer import Consumer
from sfu.producer import Producer


class VideoBound:
    """One subscriber's bound on video m-sections and its parked videos."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no bound (every video has its m-section)
        self.pinned: set[str] = set()  # producer ids never parked nor counted
        self.parked: dict[str, Producer] = {}  # by producer id, in the order parked
        self._shown_at: dict[str, float] = {}  # producer id -> last time not held

    @property
    def on(self) -> bool:
        return self.limit > 0

    def counts(self, producer: Producer) -> bool:
        """Whether `producer` counts against the bound."""
        return self.on and producer.kind == "video" and producer.id not in self.pinned

    def park(self, producer: Producer) -> None:
        self.parked[producer.id] = producer

    def forget(self, producer_id: str) -> bool:
        """The producer is no longer to be received; True if it was parked."""
        self.pinned.discard(producer_id)
        self._shown_at.pop(producer_id, None)
        return self.parked.pop(producer_id, None) is not None

    def clear(self) -> None:
        self.pinned.clear()
        self.parked.clear()
        self._shown_at.clear()

    def replace(self, old: Producer, new: Producer) -> None:
        """`new` goes on where `old` was (a publisher's replaced connection)."""
        if old.id in self.pinned:
            self.pinned.add(new.id)
        if old.id in self._shown_at:
            self._shown_at[new.id] = self._shown_at[old.id]
        if old.id in self.parked:
            self.parked = {
                (new.id if pid == old.id else pid): (new if pid == old.id else p)
                for pid, p in self.parked.items()
            }

    def note_shown(self, producer_ids: Iterable[str], now: float) -> None:
        """These producers are not held at `now`."""
        for pid in producer_ids:
            self._shown_at[pid] = now

    def wanted(self, held: Collection[str]) -> list[Producer]:
        """Parked producers that are not held, in the order they were parked."""
        return [p for pid, p in self.parked.items() if pid not in held]

    def victim(self, carried: Iterable[Consumer], held: Collection[str]) -> Consumer | None:
        """Of the counted consumers carrying a video, the one held for the longest
        time (None: each of them is shown)."""
        candidates = [c for c in carried if c.producer is not None and c.producer.id in held]
        if not candidates:
            return None
        return min(candidates, key=lambda c: self._shown_at.get(_pid(c), 0.0))


def _pid(consumer: Consumer) -> str:
    return consumer.producer.id if consumer.producer is not None else ""
