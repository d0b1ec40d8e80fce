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
    UNANSWERED_LIMIT,
    LinkProbes,
)
from rooms.layer_fit import FitSettings, FitVideo, LayerFit
from rooms.queue_delay import QueueDelay
from sfu.bandwidth import BandwidthEstimator
from sfu.link import PROBE_ANSWER_WITHIN, LinkStats
from sfu.probe import Probe


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

    def __init__(self) -> None:
        self.bandwidth = BandwidthEstimator(lambda: 400e3)
        self.bandwidth.loss_bound_bps = 500e3
        self.probes_sent = 0

    def probe(self, size: int) -> Probe:
        self.probes_sent += 1
        return Probe([Stream()], size)


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
