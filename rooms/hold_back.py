"""Which videos a subscriber on a weak link is not sent: pure plans, step by step.

`HoldPlanner` holds back by the link's loss (rooms.link_quality judges it);
`EstimateFit` (at the end) by the bandwidth estimate the SFU keeps of the link.

A subscriber whose link cannot carry what it gets is not helped by asking the
publishers for keyframes (its PLIs would raise everyone's bitrate, issue 16);
it is helped by getting less. Until simulcast lands,
"less" means whole videos: the least important one is paused first (the
caller orders them: pupils' cameras, then hosts' cameras, screen shares
last; audio is never held back), one more after each `settle_seconds` while
the link stays weak, and they come back one at a time, the most important
first, after the link has been clean for `resume_after`.

A resume that makes the link weak again within `probe_window` doubles the
clean time the next resume waits for (up to `max_resume_after`), so a link
that can carry only some of the videos settles instead of probing every few
seconds; a long clean spell resets it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HoldSettings:
    step_after: float = 2.0  # weak samples for this long before a video is held back
    settle_seconds: float = 3.0  # after a change, the link's reports catch up before the next
    resume_after: float = 6.0  # clean samples for this long before one video comes back
    max_resume_after: float = 60.0
    probe_window: float = 8.0  # weak again within this of a resume: the resume was too early


class HoldPlanner:
    """One subscriber's held-back videos (producer ids), decided once a sample."""

    def __init__(self, settings: HoldSettings | None = None) -> None:
        self.settings = settings or HoldSettings()
        self.held: list[str] = []  # in the order they were held back
        self.resume_after = self.settings.resume_after
        self._changed_at: float | None = None
        self._resumed_at: float | None = None

    def step(
        self,
        now: float,
        weak_for: float,
        clean_for: float,
        candidates: Sequence[str],
        present: Collection[str] | None = None,
    ) -> bool:
        """Update `held` for this moment; True when it changed.

        `candidates`: the videos that may be held back next, the least important
        first (those actually sending: holding back a camera that is off saves
        nothing). `present`: every video the subscriber has (default:
        `candidates`); a held one that is gone is forgotten. `weak_for` /
        `clean_for`: how long the link's samples have been weak / clean without
        interruption (rooms.link_quality.LinkJudge).
        """
        settings = self.settings
        present = candidates if present is None else present
        kept = [producer for producer in self.held if producer in present]
        changed = kept != self.held
        self.held = kept
        if clean_for >= settings.max_resume_after:
            self.resume_after = settings.resume_after
        if self._changed_at is not None and now - self._changed_at < settings.settle_seconds:
            return changed
        if weak_for >= settings.step_after:
            return self._hold_one_more(now, candidates) or changed
        since_change = now - self._changed_at if self._changed_at is not None else clean_for
        if self.held and min(clean_for, since_change) >= self.resume_after:
            self.held.pop()
            self._changed_at = self._resumed_at = now
            return True
        return changed

    def _hold_one_more(self, now: float, candidates: Sequence[str]) -> bool:
        free = next((producer for producer in candidates if producer not in self.held), None)
        if free is None:
            return False
        if self._resumed_at is not None and now - self._resumed_at <= self.settings.probe_window:
            self.resume_after = min(2 * self.resume_after, self.settings.max_resume_after)
        self._resumed_at = None
        self.held.append(free)
        self._changed_at = now
        return True

    def release_all(self) -> None:
        """Forget what is held ("audio only" holds everything by itself)."""
        self.held = []

    def hold_all(self, candidates: Sequence[str], now: float) -> None:
        """Hold back every video (leaving "audio only" on a weak link): they come back
        one at a time as the link allows."""
        self.held = list(candidates)
        self._changed_at = now


@dataclass(frozen=True)
class FitSettings:
    over_for: float = 1.5  # the videos' sum above the estimate this long: hold back
    settle_seconds: float = 3.0  # after a change, the estimate catches up before the next
    resume_after: float = 5.0  # the estimate has room for the next video this long: resume it
    max_resume_after: float = 60.0
    probe_window: float = 10.0  # held again within this of a resume: the resume was too early
    # An estimate this many times what is forwarded is not held down by the link
    # (receive-side estimators allow at most 1.5 times what arrives): room to try one more.
    probe_ratio: float = 1.3
    # On over-use a receive-side estimator says 0.85 of what arrived: what the link
    # carried is the estimate / this, and only videos above that are "over".
    overuse_ratio: float = 0.85


class EstimateFit:
    """One subscriber's videos held back so that what is forwarded fits its bandwidth
    estimate (sfu/bandwidth.py), decided once a sample.

    When the measured bitrates of the videos forwarded add up to more than what
    the link carried (the estimate / `overuse_ratio`) for `over_for` while the
    link is judged weak, the least important is held back, and one more after
    each `settle_seconds` while that lasts (not all at once: an estimate can be
    far too low, see `congested` below). A held video comes back,
    the most important first and one at a time, when the estimate has had room
    for it for `resume_after`. Receive-side estimators (REMB) allow at most 1.5
    times what arrives, so with one 500 kbit/s video forwarded the estimate
    never shows room for a second: an estimate at `probe_ratio` times what is
    forwarded or more counts as room too (the link is not what holds it down),
    and resuming is how the estimate learns that the link has freed up (no
    padding probes yet). Hysteresis, as with HoldPlanner: a resume undone
    within `probe_window` doubles the next wait (up to `max_resume_after`), one
    that lasts sets it back; nothing changes within `settle_seconds` of a change.
    """

    def __init__(self, settings: FitSettings | None = None) -> None:
        self.settings = settings or FitSettings()
        self.held: list[str] = []  # in the order they were held back
        self.resume_after = self.settings.resume_after
        self._over_since: float | None = None
        self._room_since: float | None = None
        self._changed_at: float | None = None
        self._resumed_at: float | None = None

    def step(
        self,
        now: float,
        estimate_bps: float | None,
        videos: Sequence[tuple[str, float]],
        present: Collection[str] | None = None,
        congested: bool = True,
        clean_for: float = 0.0,
    ) -> bool:
        """Update `held`; True when it changed. `videos`: (producer id, measured bps)
        of the videos that may be held back, the least important first (those
        sending); `present`: every video the subscriber has (default: `videos`'
        ids). An unknown estimate (None) has room for everything. `congested`: the
        link's reports say it is weak now; an estimate below the videos holds nothing
        back without that (a browser, or aiortc, short of CPU reports a low estimate
        on a link that is fine). `clean_for`: how long they have said it is clean;
        that long past `resume_after` is room too (an estimate can stay low)."""
        settings = self.settings
        present = [v for v, _ in videos] if present is None else present
        kept = [producer for producer in self.held if producer in present]
        changed = kept != self.held
        self.held = kept
        rates = dict(videos)
        forwarded = sum(bps for producer, bps in videos if producer not in self.held)
        budget = float("inf") if estimate_bps is None else estimate_bps
        over = forwarded > budget / settings.overuse_ratio and congested
        room = bool(self.held) and (
            forwarded + rates.get(self.held[-1], 0.0) <= budget
            or budget >= settings.probe_ratio * forwarded
        )
        self._over_since = _since(self._over_since, now) if over else None
        self._room_since = _since(self._room_since, now) if room else None
        resumed = self._resumed_at
        if resumed is not None and now - resumed > settings.probe_window:
            self.resume_after = settings.resume_after  # the last resume held
            self._resumed_at = None
        if self._changed_at is not None and now - self._changed_at < settings.settle_seconds:
            return changed
        if self._over_since is not None and now - self._over_since >= settings.over_for:
            return self._hold_one_more(now, videos) or changed
        since_change = now - self._changed_at if self._changed_at is not None else clean_for
        clean = self.held and min(clean_for, since_change) >= self.resume_after
        if clean or (self._room_since is not None and now - self._room_since >= self.resume_after):
            self.held.pop()
            self._changed_at = self._resumed_at = now
            self._room_since = None
            return True
        return changed

    def _hold_one_more(self, now: float, videos: Sequence[tuple[str, float]]) -> bool:
        free = next((producer for producer, _ in videos if producer not in self.held), None)
        if free is None:
            return False
        self.held.append(free)
        if self._resumed_at is not None and now - self._resumed_at <= self.settings.probe_window:
            self.resume_after = min(2 * self.resume_after, self.settings.max_resume_after)
        self._resumed_at = None
        self._changed_at = now
        self._over_since = self._room_since = None
        return True

    def release_all(self) -> None:
        self.held = []


def _since(started: float | None, now: float) -> float:
    return now if started is None else started
