"""Is a subscriber's link weak? Pure judgement over samples of what the SFU observes.

Every second the call (rooms/calls/weak_links.py) takes one `DownlinkSample`
per person from the SFU's counters of their subscriber connection
(rooms/calls/downlink.py): how many packets we sent them, what their
receiver reports say was lost on their link, how many packets they asked
again (NACK), and how many keyframes they asked for (PLI/FIR). Each sample
is a verdict:

- BAD: loss above `bad_loss` (25 %), or a weak sample (below) with a round
  trip above `bad_rtt` (1 s) in a report of this second: what is sent
  arrives too damaged or too late to hold a conversation, and holding videos
  back may not be enough. A long round trip alone is not a verdict: it
  includes our own delay in reading the report, and a saturated server
  whose loop lags would otherwise find everyone's clean link bad;
- WEAK: loss above `loss` (5 %), or packets NACKed above `nack_ratio` of
  the video sent (a NACK storm), or keyframe requests above `keyframe_rate`
  per second and video stream (a PLI storm: the decoder keeps losing its way);
- CLEAN: enough was reported (or sent) to tell, and none of the above;
- UNKNOWN: too little to tell (nothing sent, no report in this second);
  it neither starts nor interrupts a run.

`LinkJudge` turns verdicts into a quality with hysteresis, so that it does
not flap: "weak" after weak samples for `enter_seconds` (2 s: three samples
in a row), "good" again after clean samples for `leave_seconds` (5 s), or
after `forget_seconds` (15 s) without any weak one when there is nothing to
judge by. A bad sample is a weak one too; "bad" (from "weak") after bad
samples for `bad_enter_seconds` (4 s), "weak" again after `bad_leave_seconds`
(5 s) without a bad one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Quality(enum.StrEnum):
    GOOD = "good"
    WEAK = "weak"
    BAD = "bad"


class Verdict(enum.Enum):
    BAD = "bad"
    WEAK = "weak"
    CLEAN = "clean"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class QualityThresholds:
    loss: float = 0.05  # fraction of the packets the receiver reports say were lost
    nack_ratio: float = 0.10  # packets NACKed (of those sent) per video packet sent
    keyframe_rate: float = 0.5  # PLI/FIR per second per video stream received
    min_keyframe_requests: int = 2  # in one sample, before the rate counts at all
    min_expected: int = 20  # reported packets in a sample before its loss counts
    min_video_sent: int = 30  # video packets sent in a sample before NACKs count
    enter_seconds: float = 2.0  # weak samples in a row before "weak"
    leave_seconds: float = 5.0  # clean samples in a row before "good" again
    # With nothing to judge by (nothing sent, no reports), "weak" lasts this long at most.
    forget_seconds: float = 15.0
    bad_loss: float = 0.25  # five times the weak link's
    bad_rtt: float = 1.0  # seconds: a conversation breaks down
    bad_enter_seconds: float = 4.0  # bad samples in a row before "bad"
    bad_leave_seconds: float = 5.0  # without a bad sample before "weak" again


@dataclass(frozen=True)
class DownlinkSample:
    """What one subscriber's connection showed in one interval (differences of counters)."""

    seconds: float  # the interval's length
    expected: int = 0  # packets the receiver reports cover (difference of highest sequence)
    lost: int = 0  # of those, lost on this link (difference of the cumulative count)
    video_sent: int = 0  # video packets we sent (retransmissions not included)
    nacked: int = 0  # video packets NACKed (a loss asked again counts again)
    keyframe_requests: int = 0  # PLI/FIR
    video_streams: int = 0  # video streams being forwarded to them now
    rtt: float | None = None  # the longest round trip reported in the interval, seconds
    # The median of the last round trips measured (not smoothed) of the streams that
    # reported: every stream crosses the link's one queue (rooms/queue_delay.py).
    rtt_median: float | None = None
    rtt_peak: float | None = None  # and the longest of them

    @property
    def loss(self) -> float | None:
        return self.lost / self.expected if self.expected > 0 else None

    def verdict(self, limits: QualityThresholds) -> Verdict:
        verdict = self._loss_verdict(limits)
        if verdict is Verdict.WEAK and self.rtt is not None and self.rtt > limits.bad_rtt:
            return Verdict.BAD
        return verdict

    def _loss_verdict(self, limits: QualityThresholds) -> Verdict:
        known = False
        if self.expected >= limits.min_expected:
            known = True
            if self.lost / self.expected > limits.bad_loss:
                return Verdict.BAD
            if self.lost / self.expected > limits.loss:
                return Verdict.WEAK
        if self.video_sent >= limits.min_video_sent:
            known = True
            if self.nacked / self.video_sent > limits.nack_ratio:
                return Verdict.WEAK
        if self.keyframe_requests >= limits.min_keyframe_requests and self.seconds > 0:
            rate = self.keyframe_requests / self.seconds / max(1, self.video_streams)
            if rate > limits.keyframe_rate:
                return Verdict.WEAK
        return Verdict.CLEAN if known else Verdict.UNKNOWN


class LinkJudge:
    """One subscriber's link quality, with hysteresis; feed it a sample a second."""

    def __init__(self, limits: QualityThresholds | None = None) -> None:
        self.limits = limits or QualityThresholds()
        self.quality = Quality.GOOD
        self.verdict = Verdict.UNKNOWN  # the last decisive one (BAD, WEAK or CLEAN)
        self._weak_since: float | None = None  # start of the current run of weak samples
        self._clean_since: float | None = None  # start of the current run of clean samples
        self._bad_since: float | None = None  # start of the current run of bad samples
        self._last_weak: float | None = None
        self._last_bad: float | None = None

    def observe(self, sample: DownlinkSample, now: float) -> Quality:
        verdict = sample.verdict(self.limits)
        if verdict is Verdict.BAD:
            self._last_bad = now
            if self._bad_since is None:
                self._bad_since = now
        elif verdict is not Verdict.UNKNOWN:
            self._bad_since = None
        if verdict in (Verdict.WEAK, Verdict.BAD):
            self._clean_since = None
            self._last_weak = now
            if self._weak_since is None:
                self._weak_since = now
        elif verdict is Verdict.CLEAN:
            self._weak_since = None
            if self._clean_since is None:
                self._clean_since = now
        if verdict is not Verdict.UNKNOWN:
            self.verdict = verdict
        self.quality = self._next_quality(now)
        return self.quality

    def _next_quality(self, now: float) -> Quality:
        limits, quality = self.limits, self.quality
        if quality is Quality.GOOD and self.weak_for(now) >= limits.enter_seconds:
            quality = Quality.WEAK
        if quality is Quality.WEAK and self.bad_for(now) >= limits.bad_enter_seconds:
            return Quality.BAD
        if quality is not Quality.GOOD and self._recovered(now):
            return Quality.GOOD
        if quality is Quality.BAD:
            last_bad = self._last_bad if self._last_bad is not None else now
            if now - last_bad >= limits.bad_leave_seconds:
                return Quality.WEAK
        return quality

    def _recovered(self, now: float) -> bool:
        if self.clean_for(now) >= self.limits.leave_seconds:
            return True
        last_weak = self._last_weak if self._last_weak is not None else now
        return now - last_weak >= self.limits.forget_seconds

    @property
    def at_rest(self) -> bool:
        """Quality "good" with no run of weak or bad samples going on: a sample with
        nothing to judge by (an unknown verdict) leaves it as it is."""
        return self.quality is Quality.GOOD and self._weak_since is None and self._bad_since is None

    def bad_for(self, now: float) -> float:
        """How long the samples have been bad (0: the last decisive one was not)."""
        return now - self._bad_since if self._bad_since is not None else 0.0

    def weak_for(self, now: float) -> float:
        """How long the samples have been weak or bad without a clean one (0: the last
        was clean)."""
        return now - self._weak_since if self._weak_since is not None else 0.0

    def clean_for(self, now: float) -> float:
        """How long the samples have been clean without a weak one (0: the last was weak)."""
        return now - self._clean_since if self._clean_since is not None else 0.0
