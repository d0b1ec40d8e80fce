"""Who is speaking: audio producers ranked by loudness, from their level extensions.

The SFU knows producers, not people: the detector ranks the producers it is
given; rooms/ maps them to participants (and leaves out the muted). It is
meant to be reused where the SFU needs the loudest few (bounded audio slots).

Once an interval (``update_interval``, 0.4 s), for each audio producer, from
its meter (sfu/audio_level.py), as LiveKit does with its defaults:

- an interval counts only when the producer was loud (level at or above
  -35 dBov) for at least 40 % of it, so a cough or a door does not make a speaker;
- its level is then the loudest level heard, made quieter by how little of
  the interval was loud (``loudest - 20 log10(active fraction)``), as a
  linear amplitude (1.0 is full scale);
- that is smoothed over intervals (two thirds the new value); an interval that
  does not count halves the level instead of dropping it;
- a producer becomes a speaker at -35 dBov and stops below -40 dBov
  (hysteresis), so a speaker does not flap between words; silence ends a
  talker at -25 dBov in 1.2 s, a shout at -13 dBov in 2 s.

The ranking keeps its order unless one speaker is louder than the one ahead by
``order_margin_db``: two people speaking alike do not swap places every update.
A paused producer (a muted microphone) is never a speaker, and starts from
silence when it resumes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sfu.audio_level import ACTIVE_LEVEL
from sfu.producer import Producer

UPDATE_INTERVAL = 0.4


def level_to_amplitude(level_dbov: float) -> float:
    """A level in -dBov (0 loudest) as a linear amplitude (1.0 full scale)."""
    return 10.0 ** (-level_dbov / 20.0)


@dataclass(frozen=True)
class SpeakerSettings:
    active_level: int = ACTIVE_LEVEL  # -dBov: loud at or above -35 dBov
    release_level: int = 40  # -dBov: a speaker stops below -40 dBov
    min_active_fraction: float = 0.4
    update_interval: float = UPDATE_INTERVAL
    smoothing: float = 2 / 3  # weight of the new interval's level (LiveKit: 2 intervals)
    decay: float = 0.5  # what is left of the level after an interval that does not count
    order_margin_db: float = 3.0


@dataclass(frozen=True)
class Speaker:
    producer_id: str
    level: float  # smoothed linear amplitude, 0..1


@dataclass
class _Track:
    level: float = 0.0
    speaking: bool = False


class ActiveSpeakerDetector:
    """Ranks audio producers by how loud they are; call `update` once an interval."""

    def __init__(self, settings: SpeakerSettings | None = None) -> None:
        self.settings = settings or SpeakerSettings()
        self._tracks: dict[str, _Track] = {}
        self._order: list[str] = []  # speakers, loudest first
        self._last_update: float | None = None
        self._start_at = level_to_amplitude(self.settings.active_level)
        self._stop_below = level_to_amplitude(self.settings.release_level)

    @property
    def speakers(self) -> list[Speaker]:
        """The speakers of the last update, loudest first."""
        return [Speaker(pid, self._tracks[pid].level) for pid in self._order]

    def loudest(self, count: int) -> list[Speaker]:
        return self.speakers[:count]

    def level_of(self, producer_id: str) -> float:
        track = self._tracks.get(producer_id)
        return track.level if track is not None else 0.0

    def update(self, producers: Iterable[Producer], now: float) -> list[Speaker]:
        """Take each audio producer's interval; return the speakers, loudest first."""
        settings = self.settings
        elapsed_ms = 1000.0 * (
            now - self._last_update if self._last_update is not None else settings.update_interval
        )
        self._last_update = now
        interval_ms = max(elapsed_ms, 1.0)
        seen = set()
        for producer in producers:
            meter = producer.audio_meter
            if producer.kind != "audio" or producer.closed or meter is None:
                continue
            seen.add(producer.id)
            track = self._tracks.setdefault(producer.id, _Track())
            interval = meter.take()
            if producer.paused:
                track.level, track.speaking = 0.0, False
                continue
            fraction = min(interval.active_ms / interval_ms, 1.0)
            if fraction >= settings.min_active_fraction:
                adjusted = interval.loudest - 20.0 * math.log10(fraction)
                heard = level_to_amplitude(adjusted)
                track.level += (heard - track.level) * settings.smoothing
            else:
                track.level *= settings.decay
            threshold = self._stop_below if track.speaking else self._start_at
            track.speaking = track.level >= threshold
        for gone in set(self._tracks) - seen:
            del self._tracks[gone]
        self._order = self._rank()
        return self.speakers

    def _rank(self) -> list[str]:
        """Speakers loudest first; the previous order holds within the margin."""
        speaking = {pid for pid, track in self._tracks.items() if track.speaking}
        kept = [pid for pid in self._order if pid in speaking]
        new = sorted(speaking - set(kept), key=lambda pid: -self._tracks[pid].level)
        order = kept + new
        margin = 10.0 ** (self.settings.order_margin_db / 20.0)
        swapped = True
        while swapped:  # ends: a pair swapped back would need to be louder by margin^2
            swapped = False
            for i in range(len(order) - 1):
                ahead, behind = self._tracks[order[i]], self._tracks[order[i + 1]]
                if behind.level > ahead.level * margin:
                    order[i], order[i + 1] = order[i + 1], order[i]
                    swapped = True
        return order
