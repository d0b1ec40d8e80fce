"""A climb back up on a short link starts only after a probe of it (sfu/probe.py).

Once a subscriber's `LayerFit` (rooms/layer_fit.py) has cut what it sends to fit
the link, a step back up that the link cannot carry (a video coming back, a layer
up) fills the link's queue for a second or two before the round trips show it,
and its first frame is a keyframe: on a 1 Mbit/s link that overflowed a 100 ms
queue and froze the videos kept (docs/performance.md "The 1 Mbit/s subscriber").
So the first step of a climb waits for a probe: a burst of `PROBE_BYTES` of
padding, then a sender report behind it. Its echo's round trip against the
link's usual one (`QueueDelay.floor`, rooms/queue_delay.py): within
`PROBE_QUEUE` of it, the link has far more room than when it was cut (it was
lifted): the climb starts, and what the link delivered when it lost much no
longer says it is short, nor holds the pacer back (sfu/bandwidth.py
`on_link_proven`); over it, the burst queued up (no picture lost) and the plan
waits as after a step undone. The climb's next steps are judged by
the round trips as before (rooms/calls/weak_links.py).

A probe is not sent while the media's own round trips answer it already: a sample
of the last `MEDIA_QUEUE_SECONDS` whose median is `PROBE_QUEUE` over the usual one
says the link queues what it is sent now (a link just at its edge: its keyframes
queue 30-50 ms). A burst on top of that link overflowed its queue and froze the
videos kept. The plan asks again at its next step (a second later), so a link lifted
meanwhile is probed once its round trips are short again.

While the link is known short (`delivered_bps`: what it delivered when it last
lost much), the probe leads with a *step* (sfu/probe.py): padding at `STEP_MARGIN`
times what the plan's next step adds, for 0.3 s, and a report behind it. The
burst asks whether the link was lifted, which a link short but with room never
answers (on the test bed's 1.5 Mbit/s link, with 0.5 Mbit/s of videos on it, the
burst queued 19-52 ms in every probe of a minute, and nothing climbed back); the
step asks whether it carries that much more. A step that passed lets the plan take
that one step or a smaller one (one at a time on a short link, each probed), and
raises what the link is known to carry to what it carried then; the measure is not
forgotten. A step the subscriber's own estimate has no room for is not probed
(rooms/layer_fit.py): the probe is the burst alone.

What the link delivered is not lowered by a sample that mostly reports what was
sent before a cut (rooms/calls/link_measure.py): such a sample put the test bed's
1.5 Mbit/s link at 0.2 Mbit/s.

A subscriber whose reports never echo the probe's (`UNANSWERED_LIMIT` in a
row) is not probed again: its climbs start as before, without one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rooms.layer_fit import LayerFit
from rooms.queue_delay import QueueDelay
from sfu.probe import Probe
from sfu.subscriber_transport import SubscriberTransport

logger = logging.getLogger(__name__)

# The burst: past a home link's shaper allowance and what 1 Mbit/s drains in 5 ms, well
# within its queue (sfu/probe.py). On a link of 300 kbit/s it queues ~0.2 s once.
PROBE_BYTES = 8_000
# The probe's round trip this far over the link's usual one: the burst queued up (8 kB
# on the test bed's 1 Mbit/s link: 28-107 ms; lifted to 20 Mbit/s: 0.3-3 ms).
PROBE_QUEUE = 0.015
UNANSWERED_LIMIT = 3
# The samples (one a second) whose round trips may say a probe would fail.
MEDIA_QUEUE_SECONDS = 3.0
# What a probe that passed shows the link carries on top of its media, at least: the
# burst drained within PROBE_QUEUE (4.3 Mbit/s).
PROVEN_BPS = PROBE_BYTES * 8 / PROBE_QUEUE
# A step probe's rate, of what the step adds: its first frame is a keyframe, and the
# shaper's allowance hides a small excess (1.5 Mbit/s test bed link: 6 kB).
STEP_MARGIN = 1.5


@dataclass
class LinkProbes:
    """One subscriber's probes: the one out, and whether its reports answer them."""

    probe: Probe | None = None
    unanswered: int = 0  # probes in a row whose reports were not echoed
    passed: int = 0  # bursts that showed the link lifted
    failed: int = 0
    steps_passed: int = 0  # probes whose step passed and whose burst did not
    skipped: int = 0  # not sent: the media queued up already
    last_rtt: float | None = None  # the last probe's round trip, when it was echoed
    # What the link delivered of the videos when it last lost much (bit/s), if it did and
    # no probe has passed since: the link is known short (`LayerFit.step`'s `measured_bps`).
    delivered_bps: float | None = None
    # The step probe out: what the plan forwarded when it was sent, and the step's rate.
    step_out: tuple[float, float] | None = None

    def measured(self, carried: float, before_cut: bool) -> None:
        """A sample's loss says the link delivered `carried`; `before_cut`: its reports
        are mostly of what was sent before the last cut (they may only raise it)."""
        known = self.delivered_bps
        self.delivered_bps = max(known, carried) if before_cut and known else carried

    def before_step(
        self, fit: LayerFit, queue: QueueDelay, subscriber: SubscriberTransport, now: float
    ) -> bool:
        """Before the plan's step: the probe out settled; whether climbs wait for probes."""
        step_out = self.step_out
        verdict = self.settle(fit, queue, now)
        if verdict == "lifted":
            self.delivered_bps = None  # not as short as when it lost much
            subscriber.bandwidth.on_link_proven(PROVEN_BPS)
        elif verdict == "step" and step_out is not None:
            forwarded, rate = step_out  # the link carried both, its queue short
            known = self.delivered_bps
            self.delivered_bps = max(known or 0.0, forwarded + rate)
            subscriber.bandwidth.on_link_proven(rate)
        usable = self.usable(subscriber)
        if not usable:
            self.delivered_bps = None  # only a probe could tell when to forget it
        return usable

    def usable(self, subscriber: SubscriberTransport) -> bool:
        """Whether climbs wait for probes (`LayerFit.step`'s `probe_first`)."""
        return self.unanswered < UNANSWERED_LIMIT and subscriber.can_probe

    def settle(self, fit: LayerFit, queue: QueueDelay, now: float) -> str | None:
        """The probe out came back (or will not): tell the plan. "lifted": its burst
        passed; "step": only its step did; None: it failed, or is not back yet."""
        probe = self.probe
        if probe is None or not probe.done(now):
            return None
        self.probe = None
        rtt = self.last_rtt = probe.rtt
        if rtt is None:
            self.unanswered += 1
            fit.probed(now, False)
            return None
        self.unanswered = 0
        usual = queue.floor if queue.floor is not None else 0.0
        lifted = rtt <= usual + PROBE_QUEUE
        step_rtt = probe.step_rtt
        stepped = not lifted and step_rtt is not None and step_rtt <= usual + PROBE_QUEUE
        self.passed += lifted
        self.steps_passed += stepped
        self.failed += not (lifted or stepped)
        logger.debug(
            "probe of %d bytes%s: %.1f ms, step %s ms, against %.1f ms: %s",
            probe.bytes_sent,
            " (stopped: the media lost packets)" if probe.aborted else "",
            rtt * 1e3,
            "-" if step_rtt is None else f"{step_rtt * 1e3:.1f}",
            usual * 1e3,
            "lifted" if lifted else "step passed" if stepped else "failed",
        )
        fit.probed(now, lifted or stepped)
        return "lifted" if lifted else "step" if stepped else None

    def start(
        self, fit: LayerFit, subscriber: SubscriberTransport, queue: QueueDelay, now: float
    ) -> None:
        """Send the probe the plan asks for, unless one is out or the media's round
        trips answer it already; led by a step while the link is known short."""
        if not fit.wants_probe or self.probe is not None:
            return
        usual, recent = queue.floor, queue.recent(now, MEDIA_QUEUE_SECONDS)
        if usual is not None and recent is not None and recent > usual + PROBE_QUEUE:
            self.skipped += 1
            logger.debug("no probe: the media queue %.1f ms", (recent - usual) * 1e3)
            return
        step = STEP_MARGIN * fit.probe_step_bps if self.delivered_bps is not None else 0.0
        self.step_out = (fit.forwarded_bps, step) if step else None
        self.probe = subscriber.probe(PROBE_BYTES, step or None)
