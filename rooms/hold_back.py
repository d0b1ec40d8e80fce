"""Which videos a subscriber on a weak link is not sent: pure plans, step by step.

`HoldPlanner` holds back by the link's loss (rooms.link_quality judges it);
`EstimateFit` (at the end) by the bandwidth estimate the SFU keeps of the link
(whole videos; rooms/layer_fit.py `LayerFit` steps simulcast layers down first).

A subscriber whose link cannot carry what it gets is not helped by asking the
publishers for keyframes (its PLIs would raise everyone's bitrate, issue 16);
it is helped by getting less. Here "less" means whole videos (rooms/layer_fit.py
steps simulcast layers down before that): the least important one is paused first (the
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
from dataclasses import dataclass, replace

from rooms.layer_fit import FitSettings, FitVideo, LayerFit

__all__ = ["EstimateFit", "FitSettings", "HoldPlanner", "HoldSettings"]


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


class EstimateFit:
    """One subscriber's videos held back so that what is forwarded fits its bandwidth
    estimate (sfu/bandwidth.py), decided once a sample: `LayerFit`
    (rooms/layer_fit.py) with videos of one layer each, which it holds back whole.

    When the measured bitrates of the videos forwarded add up to more than what
    the link carried (the estimate / `overuse_ratio`) for `over_for` while the
    link is judged weak, the least important is held back, and one more after
    each `settle_seconds` while that lasts (not all at once: an estimate can be
    far too low). A held video comes back, the most important first and one at
    a time, when the estimate has had room for it for `resume_after`.
    Receive-side estimators (REMB) allow at most 1.5 times what arrives, so
    with one 500 kbit/s video forwarded the estimate never shows room for a
    second: an estimate at `probe_ratio` times what is forwarded or more counts
    as room too, and resuming is how the estimate learns that the link has
    freed up. Hysteresis, as with HoldPlanner: a resume undone within
    `probe_window` doubles the next wait (up to `max_resume_after`), one that
    lasts sets it back; nothing changes within `settle_seconds` of a change.
    """

    def __init__(self, settings: FitSettings | None = None) -> None:
        # Whole videos, every one of which may go (as it always did).
        self.plan = LayerFit(replace(settings or FitSettings(), keep_most_important=False))

    @property
    def settings(self) -> FitSettings:
        return self.plan.settings

    @property
    def held(self) -> list[str]:
        return self.plan.held

    @property
    def resume_after(self) -> float:
        return self.plan.resume_after

    def step(
        self,
        now: float,
        estimate_bps: float | None,
        videos: Sequence[tuple[str, float]],
        present: Collection[str] | None = None,
        congested: bool = True,
        clean_for: float = 0.0,
    ) -> bool:
        """`videos`: (producer id, measured bps), the least important first; the
        rest as `LayerFit.step`."""
        whole = [FitVideo(producer, (bps,)) for producer, bps in videos]
        return self.plan.step(now, estimate_bps, whole, present, congested, clean_for)

    def release_all(self) -> None:
        self.plan.release_all()
