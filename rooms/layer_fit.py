"""What a subscriber is sent so that it fits the bandwidth estimate of its link:
simulcast layers stepped down first, whole videos held back last. A pure plan.

Each video (least important first: the caller orders pupils' cameras, then
hosts' and the spotlight's, then shared screens; audio is never planned) has
the layer its tile's size asks for (`FitVideo.wanted`, the top layer of a video
without simulcast is 0) and the measured bitrate of each of its layers. The
plan caps some videos below that layer (`caps`) and holds some back whole
(`held`).

When what is forwarded is over what the link carried (as `EstimateFit` judges
it, rooms/hold_back.py), one step a time, `settle_seconds` apart: the least
important video above its lowest layer steps down one layer (a layer switch is
keyframe-gated in the SFU, sfu/layer_select.py); only when every forwarded
video is at its lowest layer (or has no layers) is the least important held
back whole. When the estimate has room for the next step up for
`resume_after` (or the link's reports have been clean that long), the most
important video below its wanted layer steps up one layer, or the last held
back comes back (at its lowest layer); when that one does not fit the estimate
but a less important step does, that one is taken (the estimate's room is used,
not left idle behind a step too big for it). A step up undone within `probe_window`
doubles the next wait (up to `max_resume_after`); one that lasts resets it. So
an estimate between two sums of layers settles on the lower one, probing the
higher ever more rarely.

With `probe_first` (a subscriber whose link can be probed: rooms/calls/link_probes.py)
a climb does not start blind: its first step up waits until the plan has asked for
a probe of the link (`wants_probe`) and it passed (`probed`); a probe that fails
counts as a step up undone, without a picture lost (its wait does not double
past `max_probe_wait`; nor does the wait for the next probe after a step up was
undone: only a step taken without a probe waits the doubled time). A probe that
passed counts as a first step that held: the climb starts with two steps, then two,
four..., and these need no probe: each follows one that held with the link clean,
`probed_settle_seconds` after it.
While the link is known short (`measured_bps`: what it delivered when it last
lost much, forgotten by the caller once a probe passes) it climbs one step at a
time, and a step within `measured_share` of that needs no probe (a cut deeper
than it needed climbs back without one; a probe only tells a link that is much
less short), while every step past it does. Such a step undone shows the measure
overstated the link: every step waits for a probe again until one passes. Its
probes are sized to the step the plan would take (`probe_step_bps`), and what
passed vouches for a step no bigger than that.

With videos of one layer each this is exactly `EstimateFit` (which is built on it).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from rooms.queue_delay import REPORTS_LAG


@dataclass(frozen=True)
class FitSettings:
    over_for: float = 1.5  # the videos' sum above the estimate this long: step down
    settle_seconds: float = 3.0  # after a change, the estimate catches up before the next
    resume_after: float = 5.0  # the estimate has room for the next step up this long: take it
    max_resume_after: float = 60.0
    probe_window: float = 10.0  # stepped down within this of a step up: it was too early
    # An estimate this many times what is forwarded is not held down by the link
    # (receive-side estimators allow at most 1.5 times what arrives): room to try one more.
    probe_ratio: float = 1.3
    # On over-use a receive-side estimator says 0.85 of what arrived: what the link
    # carried is the estimate / this, and only videos above that are "over".
    overuse_ratio: float = 0.85
    # The most important video is never held back whole (at its lowest layer it stays).
    keep_most_important: bool = True
    # A probe that passed lets a climb start this long.
    probe_valid: float = 3.0
    max_probe_wait: float = 5.0  # failed probes do not lengthen the wait past this
    # A climb within this share of what the link delivered when it lost much needs no
    # probe (the keyframes, audio and retransmissions have the rest).
    measured_share: float = 0.7
    # The ramp of a climb a probe started: the link was shown to have far more room than
    # it was cut to, and the round trips judge each step within a second or two.
    probed_settle_seconds: float = 2.0
    # A cut to what the link carried leaves this share of it to the videos: the rest is
    # for their keyframes, audio and retransmissions (the link's queue is small).
    carried_margin: float = 0.75
    # A cut's own effect shows in the reports this long after it (they lag what is sent):
    # a cut that was not enough is followed by one more step then, not `settle_seconds`
    # later (on 1 Mbit/s the first cut kept three videos now and then, and they froze
    # for the 3 s until the next).
    cut_reported_after: float = REPORTS_LAG
    # A step up undone when the link carried at least this share of what was forwarded
    # (its queue grew, little was lost): back to what was forwarded before the step.
    undo_share: float = 0.9


@dataclass(frozen=True)
class FitVideo:
    """One video a subscriber may get: producer id, measured bit/s of each layer
    (smallest first; one entry without simulcast) and the layer its tile wants."""

    producer_id: str
    layer_bps: tuple[float, ...]
    wanted: int = 0

    @property
    def top(self) -> int:
        return max(0, min(self.wanted, len(self.layer_bps) - 1))

    def bps(self, layer: int) -> float:
        return 0.0 if layer < 0 or not self.layer_bps else self.layer_bps[layer]


HELD = -1  # the layer of a held-back video


class LayerFit:
    """One subscriber's plan, decided once a sample (`step`)."""

    def __init__(self, settings: FitSettings | None = None) -> None:
        self.settings = settings or FitSettings()
        self.held: list[str] = []  # in the order they were held back
        self.caps: dict[str, int] = {}  # a layer below the wanted one, by producer id
        self.resume_after = self.settings.resume_after
        self._over_since: float | None = None
        self._room_since: float | None = None
        self._changed_at: float | None = None
        # When a probe last failed: the next climb waits from then, as after a step
        # undone, but nothing was stepped (a step down is not held off by it).
        self._probe_failed_at: float | None = None
        self._resumed_at: float | None = None
        self._ramp = 1  # steps up the next confirmed step up takes
        self._doubted = False  # congestion seen since the last step up
        self.wants_probe = False  # a climb would start now, after a probe
        self.probe_step_bps = 0.0  # what the step it would start with adds (bit/s)
        self.forwarded_bps = 0.0  # what the plan forwarded at the last `step`
        self.cut_at: float | None = None  # when it last stepped down
        self._probe_passed: float | None = None  # when
        self._climbed_from = 0.0  # what was forwarded before the last step up
        self._probed = False  # the climb under way was vouched for (a probe, the measure)
        self._blind = False  # the last step up was taken within the measure, unprobed
        self._measure_doubted = False  # such a step was undone: probe until one passes

    def layer(self, video: FitVideo) -> int:
        """The layer the plan forwards of `video` (HELD: none)."""
        if video.producer_id in self.held:
            return HELD
        return min(video.top, self.caps.get(video.producer_id, video.top))

    def step(
        self,
        now: float,
        estimate_bps: float | None,
        videos: Sequence[FitVideo],
        present: Collection[str] | None = None,
        congested: bool = True,
        clean_for: float = 0.0,
        carried_bps: float | None = None,
        probe_first: bool = False,
        measured_bps: float | None = None,
    ) -> bool:
        """Update `held` and `caps`; True when either changed. `videos`: those that
        may be planned, least important first (those sending); `present`: every video
        the subscriber has (default: `videos`' ids). An unknown estimate (None) has
        room for everything. `congested`: the link is weak now (without it a low
        estimate steps nothing down: a receiver short of CPU says far too little).
        `clean_for`: how long the link has been clean; that long past `resume_after`
        is room too. `carried_bps`: what the link carried, measured (loss, a growing
        queue, the pacer's drops): over it, the plan fits under it at once.
        `probe_first`: a climb's first step up waits for a probe (`wants_probe`); with
        `measured_bps`, every step past `measured_share` of it does."""
        settings = self.settings
        self.wants_probe = False
        changed = self._forget_gone([v.producer_id for v in videos] if present is None else present)
        forwarded = sum(video.bps(self.layer(video)) for video in videos)
        self.forwarded_bps = forwarded
        budget = float("inf") if estimate_bps is None else estimate_bps
        carried = float("inf") if carried_bps is None else carried_bps
        over = congested and (forwarded > budget / settings.overuse_ratio or forwarded > carried)
        upward = self._step_up_candidate(videos, budget - forwarded)
        self._observe(now, over, forwarded > carried, upward, forwarded, budget)
        resumed = self._resumed_at
        if resumed is not None and now - resumed > settings.probe_window:
            self.resume_after = settings.resume_after  # the last step up held
            self._resumed_at = None
        if congested:
            self._doubted = True  # the last step up is not confirmed
        probing = self._resumed_at is not None and self._resumed_at == self._changed_at
        settle = settings.probed_settle_seconds if self._probed else settings.settle_seconds
        if self._changed_at is not None and now - self._changed_at < settle:
            measured_over = over and forwarded > carried
            if self._cut_again(now, measured_over):
                return self._step_down(now, videos, float("inf")) or changed
            if not (probing and measured_over):  # a step up too many: undo now
                return changed
        if self._over_since is not None and now - self._over_since >= settings.over_for:
            return self._cut(now, videos, probing, forwarded, carried) or changed
        if upward is None:
            return changed
        climbed = self._climb(
            now, upward, videos, forwarded, budget, clean_for, probe_first, measured_bps
        )
        return climbed or changed

    def _climb(
        self,
        now: float,
        upward: tuple[str, float],
        videos: Sequence[FitVideo],
        forwarded: float,
        budget: float,
        clean_for: float,
        probe_first: bool,
        measured_bps: float | None,
    ) -> bool:
        """Steps up, if it is time for any (and a probe let them, see `step`)."""
        settings = self.settings
        roomy = self._room_since is not None and now - self._room_since >= self.resume_after
        climbing = self._resumed_at is not None
        short = measured_bps is not None
        within = (
            measured_bps is not None
            and not self._measure_doubted
            and forwarded + upward[1] <= settings.measured_share * measured_bps
        )
        needs_probe = probe_first and not within and (short or not climbing)
        # A probe costs a short queue, not a picture: asked for within `max_probe_wait`
        # even after a step up was undone (a step taken blind waits the doubled time).
        wait = min(self.resume_after, settings.max_probe_wait) if needs_probe else None
        steps, ramp = self._steps_up(now, clean_for, roomy, wait)
        if steps == 0:
            return False
        if short:
            steps = ramp = 1  # one step at a time on a link known short
        if needs_probe:
            vouched = self._vouched(now, upward, videos, forwarded + upward[1] <= budget, short)
            if vouched is None:
                return False
            upward = vouched
            if not climbing and not short:  # the probe counts as a step that held
                steps, ramp = 2, 2
        # On a link known short one step, whatever room the estimate says it has.
        self._climbed_from = forwarded
        self._take_steps(upward[0], steps, videos, roomy and not short, budget)
        self._ramp = ramp
        self._blind = within
        self._changed_at = self._resumed_at = now
        self._room_since = None
        self._doubted = False
        if not climbing:
            self._probed = probe_first  # vouched for: its ramp settles sooner
        self._probe_passed = None
        return True

    def _vouched(
        self,
        now: float,
        upward: tuple[str, float],
        videos: Sequence[FitVideo],
        fits: bool,
        short: bool,
    ) -> tuple[str, float] | None:
        """The step a probe that passed vouches for: `upward` (`fits`: in the estimate),
        or a smaller one on a link known short; None: ask for a probe (`wants_probe`)."""
        passed = self._probe_passed
        if passed is None or now - passed > self.settings.probe_valid:
            # On a link known short a step is probed only if the subscriber's own
            # estimate has room for it too (else the probe asks only "lifted?"): a
            # bot's REMB said 0.3-0.45 Mbit/s for one video on 1 Mbit/s, and the
            # step to two, probed and taken, froze a video in one climb of six.
            step = upward[1] if fits or not short else 0.0
            self.wants_probe, self.probe_step_bps = True, step
            return None
        if short and upward[1] > self.probe_step_bps:
            # The probe vouched for a smaller step (the estimate moved since): that one,
            # or a probe of this one (a 290 kbit/s step taken on a 90 kbit/s probe's
            # word overflowed a 1.5 Mbit/s link with its keyframe).
            vouched = self._step_up_candidate(videos, self.probe_step_bps)
            if vouched is None or vouched[1] > self.probe_step_bps:
                self._probe_passed = None
                return None
            return vouched
        return upward

    def _cut(
        self,
        now: float,
        videos: Sequence[FitVideo],
        probing: bool,
        forwarded: float,
        carried: float,
    ) -> bool:
        """Over for long enough: one step by the estimate (it may be far too low), to
        fit at once by what the link carried."""
        settings = self.settings
        fits = carried * settings.carried_margin
        if probing and carried >= settings.undo_share * forwarded:
            # The link carried nearly all of it: only the step up was too many. Back to
            # what it carried before, no lower (the margin took two layers off the
            # teacher on 1.5 Mbit/s for one step undone); later samples cut further.
            fits = max(fits, self._climbed_from)
        return self._step_down(now, videos, fits)

    def _cut_again(self, now: float, measured_over: bool) -> bool:
        """A cut just taken, and the first sample whose reports are of what was sent
        after it still says the link carries less: one step more, without waiting."""
        cut = self.cut_at
        return (
            measured_over
            and cut is not None
            and cut == self._changed_at
            and now - cut >= self.settings.cut_reported_after
        )

    def probed(self, now: float, passed: bool) -> None:
        """The probe asked for came back. Passed: the climb starts at the next `step`.
        Failed: as a step up undone (the wait starts again), but the wait doubles
        only up to `max_probe_wait`: a failed probe cost no picture."""
        if passed:
            self._probe_passed = now
            self._measure_doubted = False
            return
        self._probe_passed = None
        self._probe_failed_at = now
        self._resumed_at = self._room_since = None
        self._ramp = 1
        self._probed = False
        if self.resume_after < self.settings.max_probe_wait:
            self.resume_after = min(2 * self.resume_after, self.settings.max_probe_wait)

    def _take_steps(
        self, first: str, steps: int, videos: Sequence[FitVideo], roomy: bool, budget: float
    ) -> None:
        self._step_up(first, videos)
        for _ in range(steps - 1):  # a ramp: the last step up held
            more = self._step_up_candidate(videos, 0.0)
            if more is None:
                break
            self._step_up(more[0], videos)
        while roomy and (more_id := self._fitting_step_up(videos, budget)) is not None:
            self._step_up(more_id, videos)  # the estimate has room for several: all at once

    def _steps_up(
        self, now: float, clean_for: float, roomy: bool, wait: float | None = None
    ) -> tuple[int, int]:
        """How many steps up to take now (0: none), and the ramp after them (`wait`:
        instead of `resume_after` before a first step, see `_climb`). A step up
        that has held for `settle_seconds` with the link clean (its queue did not
        grow, nothing was lost) is followed at once by as many again, then twice as
        many (`_ramp`: 1, 1, 2, 4...): a link that was lifted gets its videos back
        in a few steps, not one per `resume_after`."""
        waited_from = max(
            (at for at in (self._changed_at, self._probe_failed_at) if at is not None),
            default=None,
        )
        since_change = now - waited_from if waited_from is not None else clean_for
        if self._resumed_at is not None and not self._doubted and clean_for >= since_change:
            return self._ramp, 2 * self._ramp
        wait = self.resume_after if wait is None else wait
        if roomy or min(clean_for, since_change) >= wait:
            return 1, 1  # then 1, 2, 4...: a link just short of one more finds out
        return 0, self._ramp

    def _observe(
        self,
        now: float,
        over: bool,
        measured: bool,
        upward: tuple[str, float] | None,
        forwarded: float,
        budget: float,
    ) -> None:
        """Since when it has been over, and since when the estimate has had room."""
        settings = self.settings
        self._over_since = _since(self._over_since, now) if over else None
        if over and measured:  # loss or a growing queue, not an opinion: no need to wait
            self._over_since = now - settings.over_for
        room = upward is not None and (
            forwarded + upward[1] <= budget or budget >= settings.probe_ratio * forwarded
        )
        self._room_since = _since(self._room_since, now) if room else None

    def doubt(self) -> None:
        """The last step up is not confirmed (its link's queue grows a little): the
        next waits `resume_after` again, one step."""
        self._doubted = True

    def probing(self, now: float) -> bool:
        """A step up was the last change, within `probe_window`: not yet known to hold."""
        resumed = self._resumed_at
        return (
            resumed is not None
            and resumed == self._changed_at
            and now - resumed <= self.settings.probe_window
        )

    def _forget_gone(self, present: Collection[str]) -> bool:
        kept = [producer for producer in self.held if producer in present]
        caps = {producer: cap for producer, cap in self.caps.items() if producer in present}
        changed = kept != self.held or caps != self.caps
        self.held, self.caps = kept, caps
        return changed

    def _step_up_candidate(
        self, videos: Sequence[FitVideo], room: float
    ) -> tuple[str, float] | None:
        """The next step up and what it adds: the most important one that fits in
        `room`, else the most important one (a probe). A step is the last video
        held back coming back (one not sending counts as the most important: it
        costs nothing), or a video below its wanted layer going up one."""
        rank = {video.producer_id: index for index, video in enumerate(videos)}
        steps: list[tuple[int, str, float]] = []
        if self.held:
            last = self.held[-1]
            held = next((v for v in videos if v.producer_id == last), None)
            steps.append((rank.get(last, len(videos)), last, held.bps(0) if held else 0.0))
        for video in videos:
            layer = self.layer(video)
            if layer != HELD and layer < video.top:
                added = video.bps(layer + 1) - video.bps(layer)
                steps.append((rank[video.producer_id], video.producer_id, added))
        if not steps:
            return None
        fitting = [step for step in steps if step[2] <= room]
        _, producer, added = max(fitting or steps)
        return producer, added

    def _fitting_step_up(self, videos: Sequence[FitVideo], budget: float) -> str | None:
        """The next step up when it fits in `budget` with what is forwarded now."""
        forwarded = sum(video.bps(self.layer(video)) for video in videos)
        upward = self._step_up_candidate(videos, budget - forwarded)
        if upward is None or forwarded + upward[1] > budget:
            return None
        return upward[0]

    def _step_up(self, producer_id: str, videos: Sequence[FitVideo]) -> None:
        if self.held and self.held[-1] == producer_id:
            self.held.pop()
            video = next((v for v in videos if v.producer_id == producer_id), None)
            if video is not None and video.top > 0:
                self.caps[producer_id] = 0  # back at its lowest layer; up from there
            return
        video = next(v for v in videos if v.producer_id == producer_id)
        layer = self.layer(video) + 1
        if layer >= len(video.layer_bps) - 1:
            del self.caps[producer_id]  # at its top: a tile that grows gets more at once
        else:
            self.caps[producer_id] = layer

    def _step_down(self, now: float, videos: Sequence[FitVideo], carried: float) -> bool:
        """One step down; more while what is forwarded is over `carried` (what the
        link's reports say arrived, as the over-use test counts it)."""
        stepped = False
        while self._one_step_down(videos):
            stepped = True
            if sum(video.bps(self.layer(video)) for video in videos) <= carried:
                break
        if not stepped:
            return False
        if self._resumed_at is not None and now - self._resumed_at <= self.settings.probe_window:
            self.resume_after = min(2 * self.resume_after, self.settings.max_resume_after)
            # Taken on the measure's word: the measure overstated the link.
            self._measure_doubted = self._measure_doubted or self._blind
        self._resumed_at = None
        self._ramp = 1
        self._changed_at = self.cut_at = now
        self._over_since = self._room_since = None
        self._probed = False
        self._probe_passed = None
        return True

    def _one_step_down(self, videos: Sequence[FitVideo]) -> bool:
        lower = next((v for v in videos if self.layer(v) > 0), None)
        if lower is not None:
            self.caps[lower.producer_id] = self.layer(lower) - 1
            return True
        free = next((v.producer_id for v in videos if v.producer_id not in self.held), None)
        last = videos[-1].producer_id if self.settings.keep_most_important else None
        if free is None or free == last:
            return False  # the most important video stays (at its lowest layer)
        self.held.append(free)
        return True

    def release_all(self) -> None:
        self.held = []
        self.caps = {}


def _since(started: float | None, now: float) -> float:
    return now if started is None else started
