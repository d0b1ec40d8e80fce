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
