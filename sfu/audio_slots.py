"""Bounded audio slots: each subscriber receives the loudest few audio producers.

In a large call a subscriber does not get one audio consumer per producer: it
gets `slots` audio consumers (m-sections) and the allocator maps the loudest
producers onto them, as Jitsi's `num-loudest` does, plus one consumer for each
*pinned* producer (the caller says which: rooms/ pins the hosts). It knows
producers, not people: what a subscriber may hear is what its router was asked
to forward to it (`Router.consume`), so its own producer is never a candidate.

- Loudness is the router's active-speaker ranking (sfu/active_speaker.py, updated
  by whoever runs it, every 0.4 s) and, between its updates, each producer's
  loud audio since the last tick (`AudioLevelMeter.take_recent_active_ms`): an
  unmapped producer with `onset_ms` of loud audio in a tick takes a free slot
  or one whose speaker is silent at that tick, without waiting for the next
  ranking; its last `replay` seconds go first from the producer's cache, so what
  it said before that tick (its first syllable) is not lost.
- Hysteresis: a slot held by a speaker goes to a louder one only after that one
  has been louder by `margin_db` for `hold_time`, and a speaker keeps a slot for
  at least `min_time`; two people speaking alike do not take turns in a slot.
- A paused (muted) or gone producer leaves its slot at once; a paused one is
  never mapped.
- A slot is one consumer: its producer changes with no renegotiation and its
  StreamRewriter keeps sequence numbers and timestamps continuous.
- Small calls are as before: the slots start only when the router has more audio
  producers than `slots` plus the pinned ones; then each subscriber's existing
  audio consumers become its slots (up to `slots`), the rest are stopped.
- A tick reads only what it was offered (the producers and the subscribers of its
  offers), not the router: walking a quiet class's 62 transports ten times a second
  cost more than everything else the tick does (docs/performance.md "upkeep").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sfu.active_speaker import ActiveSpeakerDetector
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.subscriber_transport import SubscriberTransport

TICK = 0.1


@dataclass(frozen=True)
class SlotSettings:
    slots: int = 6
    hold_time: float = 0.8  # s a challenger must have been louder before it takes a slot
    min_time: float = 1.5  # s a speaker keeps its slot at least
    margin_db: float = 3.0  # how much louder a challenger must be
    onset_ms: float = 40.0  # loud audio within one tick that makes a speaker at once
    # A newly mapped speaker's last this many seconds are sent from the producer's
    # cache first: what it said since its onset, before the tick that mapped it.
    replay: float = 0.15


@dataclass
class _Subscriber:
    transport: SubscriberTransport
    slots: list[Consumer] = field(default_factory=list)
    since: dict[Consumer, float] = field(default_factory=dict)  # when its producer was mapped
    offered: set[str] = field(default_factory=set)  # producer ids it may hear
    challengers: dict[str, float] = field(default_factory=dict)  # id -> louder since


@dataclass
class _Loudness:
    levels: dict[str, float]
    active: set[str]  # speaking (ranking) or loud at this tick


class AudioSlotAllocator:
    """One router's audio slots; `update` once a tick (TICK)."""

    def __init__(
        self,
        producers: Callable[[], list[Producer]],
        subscribers: Callable[[], list[SubscriberTransport]],
        detector: ActiveSpeakerDetector,
        settings: SlotSettings | None = None,
    ) -> None:
        self.settings = settings or SlotSettings()
        self._producers = producers
        self._subscribers = subscribers
        self._detector = detector
        self.pinned: frozenset[str] = frozenset()
        self.active = False
        self._state: dict[str, _Subscriber] = {}  # by transport id
        # The producers offered to somebody (closed ones leave at the next tick), and
        # the subscribers they were offered to (`_state`): what a tick reads.
        self._offered: dict[str, Producer] = {}
        # A quiet tick (nobody it maps speaking) after a full pass with the same producers,
        # pins, subscribers and offers has nothing to do: it is skipped (`update`).
        self._changes = 0
        self._quiet: tuple[frozenset[str], frozenset[str], frozenset[str], int] | None = None
        self._margin = 10.0 ** (self.settings.margin_db / 20.0)

    # --- what the router asks

    def takes(self, producer: Producer) -> bool:
        """Whether this producer reaches subscribers through slots, not its own consumer."""
        if producer.kind != "audio" or producer.id in self.pinned:
            return False
        if not self.active:
            self._start_if_large()
        return self.active

    def offer(self, transport: SubscriberTransport, producer: Producer) -> None:
        """`transport` may hear `producer`: a candidate for its slots."""
        self._subscriber(transport).offered.add(producer.id)
        self._offered[producer.id] = producer
        self._changes += 1

    def replace(self, old: Producer, new: Producer) -> None:
        """`new` goes on where `old` was (a publisher's replaced connection): whoever
        could hear `old` can hear `new`; the slots that carried it switch with it."""
        self._changes += 1
        if self._offered.pop(old.id, None) is not None:
            self._offered[new.id] = new
        for state in self._state.values():
            if old.id in state.offered:
                state.offered.discard(old.id)
                state.offered.add(new.id)

    def withdraw(self, producer: Producer) -> None:
        """`producer` leaves the router without closing (its transport moved to another
        room's): nobody here may hear it from now on (its slots are emptied at the next
        tick, which this change makes a full one)."""
        if self._offered.pop(producer.id, None) is None:
            return
        self._changes += 1
        for state in self._state.values():
            state.offered.discard(producer.id)

    def forget(self, transport: SubscriberTransport) -> None:
        """The transport leaves the router: its slots become ordinary consumers."""
        self._changes += 1
        self._state.pop(transport.id, None)
        transport.release_audio_slots()

    def set_pinned(self, producer_ids: Iterable[str]) -> None:
        """These producers always reach whoever may hear them, in consumers of their own."""
        pinned = frozenset(producer_ids)
        if pinned == self.pinned:
            return
        was, self.pinned = self.pinned, pinned
        self._changes += 1
        if not self.active:
            return
        by_id = {p.id: p for p in self._producers()}
        for state in self._state.values():
            transport = state.transport
            for consumer in state.slots:
                if consumer.producer is not None and consumer.producer.id in pinned - was:
                    transport.fill_audio_slot(consumer, None)
            for pid in state.offered & (pinned ^ was):
                producer = by_id.get(pid)
                if producer is None or transport.closed:
                    continue
                if pid in pinned:
                    transport.consume(producer)
                else:
                    transport.stop_consuming(producer)

    # --- starting

    def _start_if_large(self) -> None:
        audio = [p for p in self._producers() if p.kind == "audio"]
        if len(audio) <= self.settings.slots + len(self.pinned & {p.id for p in audio}):
            return
        self.active = True
        for transport in self._subscribers():
            self._adopt(transport)

    def _adopt(self, transport: SubscriberTransport) -> None:
        """Existing audio consumers become the slots (speakers first); the rest stop."""
        state = self._subscriber(transport)
        speaking = {s.producer_id for s in self._detector.speakers}
        audio = [
            c
            for c in transport.consumers
            if c.kind == "audio" and c.producer is not None and c.producer.id not in self.pinned
        ]
        audio.sort(key=lambda c: c.producer is not None and c.producer.id not in speaking)
        for consumer in audio:
            producer = consumer.producer
            assert producer is not None
            state.offered.add(producer.id)
            self._offered[producer.id] = producer
            if len(state.slots) < self.settings.slots:
                transport.adopt_audio_slot(consumer)
                state.slots.append(consumer)
                state.since[consumer] = float("-inf")
            else:
                transport.stop_consuming(producer)

    def _subscriber(self, transport: SubscriberTransport) -> _Subscriber:
        state = self._state.get(transport.id)
        if state is None:
            state = self._state[transport.id] = _Subscriber(transport)
        return state

    # --- each tick

    def update(self, now: float) -> None:
        """Map each subscriber's slots to the loudest producers it may hear."""
        if not self.active:
            self._start_if_large()
            if not self.active:
                return
        onset_ms, offered = self.settings.onset_ms, self._offered
        onset: set[str] = set()
        audible: dict[str, Producer] = {}
        closed: list[str] = []
        for pid, producer in offered.items():
            if producer.closed:
                closed.append(pid)
                continue
            meter = producer.audio_meter  # taken every tick: an old loud burst is no onset
            if meter is not None and meter.take_recent_active_ms() >= onset_ms:
                onset.add(pid)
            if not producer.paused:
                audible[pid] = producer
        if closed:  # producers gone from the router: no longer offered to anybody
            for pid in closed:
                del offered[pid]
            for state in self._state.values():
                state.offered.difference_update(closed)
        speaking = {s.producer_id for s in self._detector.speakers}
        active = (speaking | onset) & audible.keys()
        gone = [tid for tid, state in self._state.items() if state.transport.closed]
        for tid in gone:
            del self._state[tid]
        present = {tid: state.transport for tid, state in self._state.items()}
        # Idle upkeep: most ticks of a lesson nobody but the (pinned) teacher speaks.
        talking = active - self.pinned
        key = (frozenset(audible), self.pinned, frozenset(present), self._changes)
        if not talking and key == self._quiet:
            return
        # Levels only for a tick with work to do.
        loudness = _Loudness({pid: self._detector.level_of(pid) for pid in audible}, active)
        for transport in present.values():
            self._assign(self._subscriber(transport), audible, loudness, now)
        self._quiet = None if talking else key

    def _assign(
        self, state: _Subscriber, audible: dict[str, Producer], loud: _Loudness, now: float
    ) -> None:
        transport, settings = state.transport, self.settings
        # Per subscriber the work is O(slots + speakers), not O(producers): a tick of a
        # 150-person call stays cheap.
        offered, pinned = state.offered, self.pinned

        def candidate(pid: str) -> bool:
            return pid in offered and pid in audible and pid not in pinned

        while len(state.slots) < settings.slots:
            consumer = transport.open_audio_slot()
            state.slots.append(consumer)
            state.since[consumer] = float("-inf")
        mapped: dict[str, Consumer] = {}
        for consumer in state.slots:
            producer = consumer.producer
            if producer is not None and not candidate(producer.id):
                transport.fill_audio_slot(consumer, None)  # muted, gone, pinned, elsewhere
            elif producer is not None:
                mapped[producer.id] = consumer
        wanting = [pid for pid in loud.active if pid not in mapped and candidate(pid)]
        if not wanting:  # the usual tick: every speaker it may hear has a slot
            state.challengers.clear()
            return
        levels = loud.levels
        wanting.sort(key=lambda pid: -levels.get(pid, 0.0))
        del wanting[settings.slots :]  # only the loudest few can win a slot
        for pid in set(state.challengers) - set(wanting):
            del state.challengers[pid]
        open_slots = self._open_slots(state, loud, now)
        weakest = self._weakest(state, loud, now)
        for pid in wanting:
            if open_slots:
                taken: Consumer | None = open_slots.pop(0)
            elif weakest is not None:
                taken = self._challenge(state, pid, weakest, levels, now)
            else:
                taken = None
            if taken is None:
                continue
            if taken.producer is not None:
                mapped.pop(taken.producer.id, None)
            transport.fill_audio_slot(taken, audible[pid], settings.replay)
            state.since[taken] = now
            state.challengers.pop(pid, None)
            mapped[pid] = taken
            if taken is weakest:
                weakest = self._weakest(state, loud, now)

    def _open_slots(self, state: _Subscriber, loud: _Loudness, now: float) -> list[Consumer]:
        """Slots a new speaker takes at once: free ones, then those of silent speakers
        who have had them for the minimum time, quietest first."""
        free = [c for c in state.slots if c.producer is None]
        min_time, levels = self.settings.min_time, loud.levels
        silent = [
            c
            for c in state.slots
            if c.producer is not None
            and c.producer.id not in loud.active
            and now - state.since[c] >= min_time
        ]
        silent.sort(key=lambda c: levels.get(c.producer.id, 0.0) if c.producer else 0.0)
        return free + silent

    def _weakest(self, state: _Subscriber, loud: _Loudness, now: float) -> Consumer | None:
        """The slot of the quietest speaker who has had it for the minimum time."""
        min_time, levels = self.settings.min_time, loud.levels
        settled = [
            c for c in state.slots if c.producer is not None and now - state.since[c] >= min_time
        ]
        if not settled:
            return None
        return min(settled, key=lambda c: levels.get(c.producer.id, 0.0) if c.producer else 0.0)

    def _challenge(
        self,
        state: _Subscriber,
        pid: str,
        weakest: Consumer,
        levels: dict[str, float],
        now: float,
    ) -> Consumer | None:
        """`weakest`, once `pid` has been louder than its speaker by the margin for the
        hold time; None: it waits (and the clock restarts when it is not louder)."""
        holder = weakest.producer
        held_level = levels.get(holder.id, 0.0) if holder is not None else 0.0
        if levels.get(pid, 0.0) <= held_level * self._margin:
            state.challengers.pop(pid, None)
            return None
        since = state.challengers.setdefault(pid, now)
        return weakest if now - since >= self.settings.hold_time else None
