"""rooms/calls/link_probes.py: a probe's echo judged against the link's usual round trip,
the plan told, and a subscriber whose reports never echo probes no longer probed.

The probes are real (sfu/probe.py); what they go out on is a stand-in for a consumer
(tests/test_sfu_probe.py has them over a real link) whose echo the test writes into
its `LinkStats`, as a receiver report would."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from aiortc.rtp import RtcpReceiverInfo

from rooms.calls.link_probes import (
    MEDIA_QUEUE_SECONDS,
    PROBE_BYTES,
    PROBE_QUEUE,
    PROVEN_BPS,
    STEP_MARGIN,
    UNANSWERED_LIMIT,
    LinkProbes,
)
from rooms.layer_fit import FitSettings, FitVideo, LayerFit
from rooms.queue_delay import QueueDelay
from sfu.bandwidth import BandwidthEstimator
from sfu.link import PROBE_ANSWER_WITHIN, LinkStats
from sfu.probe import Probe, ProbeSettings


class Stream:
    """What a probe needs of a consumer: padding sent, a report remembered."""

    def __init__(self) -> None:
        self.link_stats = LinkStats(90000)
        self.padding = 0
        self.ntp = 0

    def send_padding(self, size: int) -> int:
        self.padding += size
        return size

    def send_probe_report(self) -> Coroutine[Any, Any, None] | None:
        self.ntp += 1 << 32
        self.link_stats.sender_report_sent(self.ntp, asyncio.get_running_loop().time(), True)
        return asyncio.sleep(0)

    def echo(self, queued: float) -> None:
        """The subscriber's report of our last one, which waited `queued` on the way."""
        sent = self.link_stats.probe_sent_at
        lsr = (self.ntp >> 16) & 0xFFFFFFFF
        block = RtcpReceiverInfo(ssrc=1, fraction_lost=0, packets_lost=0,
                                 highest_sequence=1, jitter=0, lsr=lsr, dlsr=0)  # fmt: skip
        self.link_stats.report_received(block, sent + queued)


WHOLE = [FitVideo(f"pupil-{n}", (300e3,), 0) for n in range(4)]


def waiting_fit() -> LayerFit:
    """A plan with two videos held back whose next step up waits for a probe."""
    fit = LayerFit(FitSettings(over_for=0.0))
    fit.step(0.0, None, WHOLE, carried_bps=0.85e6)
    fit.step(6.0, 0.1e6, WHOLE, congested=False, clean_for=6, probe_first=True)
    assert fit.held == ["pupil-0", "pupil-1"] and fit.wants_probe
    return fit


def usual_queue(rtt: float) -> QueueDelay:
    queue = QueueDelay()
    queue.observe(rtt, 0.0)
    return queue


class Subscriber:
    """What LinkProbes needs of a subscriber: whether it can be probed, its estimator
    (real: the bound after heavy loss at 500 kbit/s, 400 kbit/s sent since the cut)."""

    can_probe = True

    def __init__(self, streams: int = 1, settings: ProbeSettings | None = None) -> None:
        self.bandwidth = BandwidthEstimator(lambda: 400e3)
        self.bandwidth.loss_bound_bps = 500e3
        self.probes_sent = 0
        self.streams = [Stream() for _ in range(streams)]
        self.settings = settings
        self.step_bps: float | None = None

    def probe(self, size: int, step_bps: float | None = None) -> Probe:
        self.probes_sent += 1
        self.step_bps = step_bps
        return Probe(self.streams, size, self.settings, step_bps)


async def probed(
    queued: float | None, subscriber: Subscriber | None = None
) -> tuple[LayerFit, LinkProbes]:
    """One probe for the waiting climb, echoed after `queued` (None: never echoed);
    settled by `before_step` when a subscriber is given."""
    fit, probes, stream = waiting_fit(), LinkProbes(), Stream()
    probes.probe = probe = Probe([stream], PROBE_BYTES)
    while probe.reported_at is None:
        await asyncio.sleep(0.005)
    assert stream.padding == probe.bytes_sent == PROBE_BYTES
    if queued is not None:
        stream.echo(queued)
    now = probe.reported_at + (0.1 if queued is not None else PROBE_ANSWER_WITHIN)
    if subscriber is None:
        probes.settle(fit, usual_queue(0.002), now)
    else:
        probes.before_step(fit, usual_queue(0.002), subscriber, now)  # type: ignore[arg-type]
    assert probes.probe is None
    return fit, probes


async def test_a_probe_within_the_usual_round_trip_lets_the_climb_start() -> None:
    fit, probes = await probed(0.002 + PROBE_QUEUE - 0.005)
    assert (probes.passed, probes.failed, probes.unanswered) == (1, 0, 0)
    assert fit.step(6.5, 0.1e6, WHOLE, congested=False, clean_for=7, probe_first=True)
    assert fit.held == []  # two steps: the probe counts as the first that held


async def test_a_probe_that_queued_up_keeps_the_step_and_waits_again() -> None:
    fit, probes = await probed(0.002 + PROBE_QUEUE + 0.005)
    assert (probes.passed, probes.failed, probes.unanswered) == (0, 1, 0)
    assert not fit.step(6.5, 0.1e6, WHOLE, congested=False, clean_for=7, probe_first=True)
    assert fit.held == ["pupil-0", "pupil-1"] and not fit.wants_probe


async def test_probes_never_echoed_are_given_up_and_steps_go_unprobed() -> None:
    fit, probes = await probed(None)
    assert (probes.passed, probes.failed, probes.unanswered) == (0, 0, 1)
    assert fit.held == ["pupil-0", "pupil-1"]

    probes.unanswered = UNANSWERED_LIMIT - 1
    assert probes.usable(Subscriber())  # type: ignore[arg-type]
    probes.unanswered = UNANSWERED_LIMIT
    assert not probes.usable(Subscriber())  # type: ignore[arg-type]


async def test_a_probe_that_passed_lifts_the_pacers_bound_and_one_that_failed_does_not() -> None:
    """The pacer follows what the link delivered when it lost much; held there, the
    videos a climb gives back queued in the pacer and were dropped (the plan saw
    congestion and cut again, on a link lifted to 20 Mbit/s)."""
    subscriber = Subscriber()
    _, probes = await probed(0.002 + PROBE_QUEUE - 0.005, subscriber)
    assert probes.passed == 1
    assert subscriber.bandwidth.loss_bound_bps == 400e3 + PROVEN_BPS
    subscriber = Subscriber()
    _, probes = await probed(0.002 + PROBE_QUEUE + 0.005, subscriber)
    assert probes.failed == 1
    assert subscriber.bandwidth.loss_bound_bps == 500e3


async def test_no_probe_while_the_medias_own_round_trips_say_it_would_fail() -> None:
    """A link just at its edge (three videos kept on 1 Mbit/s by a first cut): its
    keyframes queue 30 ms every other second. A burst on top of that overflowed the
    link's queue and froze the kept videos; the media's round trips answer already."""
    queue = QueueDelay()
    for second, rtt in enumerate((0.0008, 0.0006, 0.0298, 0.0007, 0.0284, 0.0006)):
        queue.observe(rtt, 1.0 + second)
    fit, probes, subscriber = waiting_fit(), LinkProbes(), Subscriber()
    probes.start(fit, subscriber, queue, 6.0)  # type: ignore[arg-type]
    assert probes.probe is None and subscriber.probes_sent == 0 and probes.skipped == 1
    # Nothing stepped; the plan asks again at its next step, a second later.
    assert not fit.step(7.0, 0.1e6, WHOLE, congested=False, clean_for=8, probe_first=True)
    assert fit.held == ["pupil-0", "pupil-1"] and fit.wants_probe
    # Once the last queued sample is older than MEDIA_QUEUE_SECONDS (a link lifted, or
    # no keyframe queued since), the probe goes out.
    later = 5.0 + MEDIA_QUEUE_SECONDS + 0.5
    for at in (7.0, 8.0, later):
        queue.observe(0.0007, at)
    fit = waiting_fit()
    probes.start(fit, subscriber, queue, later)  # type: ignore[arg-type]
    assert probes.probe is not None and subscriber.probes_sent == 1
    while probes.probe.reported_at is None:  # (its burst and report go out)
        await asyncio.sleep(0.005)


def short_fit() -> LayerFit:
    """Two videos held back by loss on a link known to carry 0.6 Mbit/s: its next step
    up (300 kbit/s, past 0.7 of that) waits for a probe."""
    fit = LayerFit(FitSettings(over_for=0.0))
    fit.step(0.0, None, WHOLE, carried_bps=0.85e6)
    assert fit.cut_at == 0.0
    fit.step(6.0, 1e6, WHOLE, congested=False, clean_for=6, probe_first=True, measured_bps=0.6e6)
    assert fit.held == ["pupil-0", "pupil-1"] and fit.wants_probe
    assert fit.probe_step_bps == 300e3 and fit.forwarded_bps == 600e3
    return fit


async def step_probed(
    step_queued: float, burst_queued: float
) -> tuple[LayerFit, LinkProbes, Subscriber]:
    """The probe a short link's climb waits for, its step echoed after `step_queued`
    and its burst after `burst_queued`, settled by `before_step`."""
    fit, probes = short_fit(), LinkProbes(delivered_bps=0.6e6)
    subscriber = Subscriber(streams=2, settings=ProbeSettings(step_seconds=0.1))
    queue = usual_queue(0.002)
    probes.start(fit, subscriber, queue, 6.0)  # type: ignore[arg-type]
    assert subscriber.step_bps == STEP_MARGIN * 300e3  # what the step adds, and a margin
    probe = probes.probe
    assert probe is not None
    while probe.reported_at is None:
        await asyncio.sleep(0.005)
    step_stream, burst_stream = subscriber.streams
    step_stream.echo(step_queued)
    burst_stream.echo(burst_queued)
    probes.before_step(fit, queue, subscriber, probe.reported_at + 0.1)  # type: ignore[arg-type]
    assert probes.probe is None
    return fit, probes, subscriber


async def test_a_short_links_probe_leads_with_the_step_whose_pass_climbs_one_step() -> None:
    """On the test bed's 1.5 Mbit/s link with 0.5 Mbit/s of videos on it the burst
    queued 19-52 ms in every probe of a minute: a link short but with room never
    passed it, and nothing climbed back. The step asks what the climb needs to know."""
    fit, probes, subscriber = await step_probed(0.002 + PROBE_QUEUE - 0.005, 0.030)
    assert (probes.passed, probes.steps_passed, probes.failed) == (0, 1, 0)
    # The link carried what was forwarded and the step's rate, its queue short.
    assert probes.delivered_bps == 600e3 + STEP_MARGIN * 300e3
    assert subscriber.bandwidth.loss_bound_bps == 400e3 + STEP_MARGIN * 300e3
    measured = probes.delivered_bps
    assert fit.step(
        6.5, 1e6, WHOLE, congested=False, clean_for=7, probe_first=True, measured_bps=measured
    )
    assert fit.held == ["pupil-0"]  # one step: the link is still known short
    # The next step is probed too (past 0.7 of what the link is known to carry).
    assert not fit.step(
        9.0, 1e6, WHOLE, congested=False, clean_for=9.5, probe_first=True, measured_bps=measured
    )
    assert fit.held == ["pupil-0"] and fit.wants_probe


async def test_a_step_that_queued_up_steps_nothing_and_a_lifted_link_forgets_the_measure() -> None:
    fit, probes, subscriber = await step_probed(0.002 + PROBE_QUEUE + 0.010, 0.060)
    assert (probes.passed, probes.steps_passed, probes.failed) == (0, 0, 1)
    assert probes.delivered_bps == 0.6e6 and subscriber.bandwidth.loss_bound_bps == 500e3
    assert not fit.step(
        6.5, 1e6, WHOLE, congested=False, clean_for=7, probe_first=True, measured_bps=0.6e6
    )
    assert fit.held == ["pupil-0", "pupil-1"] and not fit.wants_probe

    fit, probes, subscriber = await step_probed(0.003, 0.002 + PROBE_QUEUE - 0.005)
    assert (probes.passed, probes.steps_passed, probes.failed) == (1, 0, 0)
    assert probes.delivered_bps is None  # lifted: not known short any more
    assert subscriber.bandwidth.loss_bound_bps == 400e3 + PROVEN_BPS


def test_a_sample_of_what_was_sent_before_a_cut_does_not_lower_the_measure() -> None:
    """The first cut on the 1.5 Mbit/s link kept 0.6 Mbit/s; the next second's reports,
    mostly of the 3.4 Mbit/s sent before it, said 67 % lost: 0.2 Mbit/s carried."""
    probes = LinkProbes()
    probes.measured(804e3, before_cut=False)
    probes.measured(207e3, before_cut=True)
    assert probes.delivered_bps == 804e3
    probes.measured(900e3, before_cut=True)
    assert probes.delivered_bps == 900e3
    probes.measured(500e3, before_cut=False)
    assert probes.delivered_bps == 500e3
