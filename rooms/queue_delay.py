"""Is the queue in front of a subscriber's link growing? A pure judge of round trips.

A link's queue (a home router's buffer, tbf in the test bed) fills before it
drops anything: what is sent waits longer, and the round trip the
subscriber's receiver reports measure (RTCP LSR/DLSR, sfu/link.py) grows with
it. Loss comes only once the queue is full, with audio lost along with the
video. So a step up that the link cannot carry shows first as a longer round
trip, while a link that was lifted shows none: the delay half of congestion
control, judged on the server from what a receiver reports anyway (the
subscriber's own delay-based estimate, REMB, is far too noisy when its
machine is short of CPU: tests/scenario of docs/performance.md "A subscriber
on a 1 Mbit/s link").

`QueueDelay` keeps the median round trip of each sample (the last one
measured on each stream that reported: every stream crosses the same queue,
and the median leaves out a receiver late to answer, or a stream whose last
measure is old) and their floor over the last `floor_seconds`; the queue is
building while a sample's median is `threshold` or more above that floor.
Just after a step up (rooms/layer_fit.py) the caller undoes it on one sample
whose longest round trip says so (`peaked`: the step is what filled the
queue, and waiting lets it overflow); otherwise it waits for `run` samples in
a row (a server short of CPU lengthens a round trip now and then, on a link
that is fine).

`CutDrain` asks the other question, after a cut: did the queue drain? A cut that
was enough empties it within two samples; one that left it full was not enough.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class QueueDelaySettings:
    # Seconds of round trip above the floor: a queue of 20 ms (a filling one: 50-150 ms;
    # a server at load 10 delays some reports by 10-20 ms on a link that is fine).
    threshold: float = 0.020
    # The longest round trip of a sample, just after a step up, is noisier (one late
    # report): it says so from this far above the floor.
    peak_threshold: float = 0.030
    floor_seconds: float = 30.0  # the floor is the shortest round trip this long back


class QueueDelay:
    """One subscriber's round trips; feed it each sample's median (`observe`)."""

    def __init__(self, settings: QueueDelaySettings | None = None) -> None:
        self.settings = settings or QueueDelaySettings()
        self._samples: deque[tuple[float, float]] = deque()  # (when, median round trip)
        self.building = False
        self.run = 0  # samples in a row that said it is building
        self.peaked = False  # the longest round trip of the last sample said so
        self.rising = False  # half way there: not enough to act on, too much to go on

    @property
    def floor(self) -> float | None:
        return min((rtt for _, rtt in self._samples), default=None)

    def recent(self, now: float, seconds: float) -> float | None:
        """The longest median round trip of the samples of the last `seconds`."""
        return max((rtt for at, rtt in self._samples if now - at <= seconds), default=None)

    def observe(self, rtt: float | None, now: float, peak: float | None = None) -> bool:
        """Whether the queue is building by this sample's median round trip `rtt` (False
        without one); `peaked`: whether its longest, `peak`, says so."""
        samples = self._samples
        while samples and now - samples[0][0] > self.settings.floor_seconds:
            samples.popleft()
        if rtt is None:
            self.building, self.peaked, self.rising, self.run = False, False, False, 0
            return False
        floor = self.floor
        samples.append((now, rtt))
        limit = None if floor is None else floor + self.settings.threshold
        self.building = limit is not None and rtt >= limit
        self.rising = floor is not None and rtt >= floor + self.settings.threshold / 2
        self.peaked = (
            floor is not None and peak is not None and peak >= floor + self.settings.peak_threshold
        )
        self.run = self.run + 1 if self.building else 0
        return self.building


# Receiver reports lag what is sent: a sample this soon after a cut mostly reports what
# was sent before it.
REPORTS_LAG = 1.5
# A queue this long at a cut is one the cut should drain (a link's round trips vary
# by a few ms; the test bed's full 100 ms queue reads 130-140 ms).
DRAIN_QUEUE = 0.05
# Of the queue at the cut (on a link never seen with its queue empty: of the round
# trip), what is left that says it did not drain. After cuts that kept two videos on
# 1 Mbit/s: ~1 ms in eight runs of nine (0.10 s once, with 12 % lost); three: 0.14 s,
# and 0.074 then 0.088 s of 0.143 s, the link at its edge draining half way.
UNDRAINED_SHARE = 0.5


class CutDrain:
    """Did a link's queue drain after the plan's last cut? A cut that was enough empties
    a full queue within a second or two (on the test bed's 1 Mbit/s link: 130-140 ms to
    ~1 ms two samples after a cut that kept two videos); one that was not leaves it
    about as full (three kept: 130-140 ms for three samples). Asked once a sample, after
    `QueueDelay.observe`, from `reports_lag` after the cut on (before that the reports
    are of what was sent before it)."""

    def __init__(self, reports_lag: float = REPORTS_LAG) -> None:
        self.reports_lag = reports_lag
        self.cut_at: float | None = None  # the cut watched
        self.rtt_at_cut: float | None = None  # the median round trip it was taken on
        self.cuts = 0
        self._last_rtt: float | None = None

    def undrained(
        self, cut_at: float | None, rtt: float | None, floor: float | None, now: float
    ) -> bool:
        """`cut_at`: the plan's last cut; `rtt`: this sample's median round trip; `floor`:
        the link's usual one (`QueueDelay.floor` before this sample). True: the cut left
        the queue full."""
        if cut_at != self.cut_at:  # a cut since the last sample, taken on that sample
            self.cut_at, self.rtt_at_cut = cut_at, self._last_rtt
            self.cuts += 1
        self._last_rtt = rtt
        before = self.rtt_at_cut
        if cut_at is None or rtt is None or before is None or now - cut_at < self.reports_lag:
            return False
        if floor is not None and before - floor >= DRAIN_QUEUE:  # the queue is known
            return rtt - floor >= UNDRAINED_SHARE * (before - floor)
        # Never seen empty (full from the start): only the link's first cut is judged
        # so, on a long round trip (a far link's own is no queue: one step too many).
        return self.cuts == 1 and before >= DRAIN_QUEUE and rtt >= UNDRAINED_SHARE * before
