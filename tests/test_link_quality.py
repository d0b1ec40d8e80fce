"""rooms/link_quality.py and rooms/hold_back.py: the thresholds, the hysteresis, the steps."""

from __future__ import annotations

import pytest

from rooms.hold_back import HoldPlanner, HoldSettings
from rooms.link_quality import (
    DownlinkSample,
    LinkJudge,
    Quality,
    QualityThresholds,
    Verdict,
)

LIMITS = QualityThresholds()


def clean(seconds: float = 1.0, rtt: float | None = None) -> DownlinkSample:
    # ~3 videos of 300 kbit/s and one audio: about 150 packets a second, none lost.
    return DownlinkSample(seconds, expected=150, lost=0, video_sent=100, video_streams=3, rtt=rtt)


def slow_lossy(percent: float, rtt: float = 1.5) -> DownlinkSample:
    return DownlinkSample(
        1.0, expected=200, lost=round(2 * percent), video_sent=150, video_streams=3, rtt=rtt
    )


def lossy(percent: float) -> DownlinkSample:
    return DownlinkSample(
        1.0, expected=200, lost=round(2 * percent), video_sent=150, video_streams=3
    )


# ---------------------------------------------------------------- one sample


@pytest.mark.parametrize(
    ("sample", "verdict"),
    [
        (clean(), Verdict.CLEAN),
        (lossy(4), Verdict.CLEAN),
        (lossy(5), Verdict.CLEAN),  # 5 % is the limit, not over it
        (lossy(6), Verdict.WEAK),
        (lossy(20), Verdict.WEAK),
        (lossy(25), Verdict.WEAK),  # 25 % is the limit of "bad", not over it
        (lossy(26), Verdict.BAD),
        # A round trip over a second makes a weak sample bad; alone it is no verdict
        # (it includes the server's own delay: a saturated server is not a bad link).
        (slow_lossy(10), Verdict.BAD),
        (slow_lossy(10, rtt=0.9), Verdict.WEAK),
        (
            DownlinkSample(1.0, expected=150, video_sent=100, video_streams=3, rtt=5.0),
            Verdict.CLEAN,
        ),
        (DownlinkSample(1.0, rtt=5.0), Verdict.UNKNOWN),
        # Too few reported packets to judge loss by, and no video sent: nothing to tell.
        (DownlinkSample(1.0, expected=10, lost=5), Verdict.UNKNOWN),
        (DownlinkSample(1.0), Verdict.UNKNOWN),
        # No report in this second, but video went out without NACKs: clean.
        (DownlinkSample(1.0, video_sent=100, video_streams=3), Verdict.CLEAN),
        # A NACK storm: more than 10 % of the video asked again.
        (DownlinkSample(1.0, video_sent=100, nacked=11, video_streams=3), Verdict.WEAK),
        (DownlinkSample(1.0, video_sent=100, nacked=10, video_streams=3), Verdict.CLEAN),
        # NACKs on a trickle of video say nothing.
        (DownlinkSample(1.0, video_sent=20, nacked=15, video_streams=1), Verdict.UNKNOWN),
        # A PLI storm: more than 0.5 keyframe requests a second per video stream.
        (DownlinkSample(1.0, video_sent=100, keyframe_requests=2, video_streams=4), Verdict.CLEAN),
        (DownlinkSample(1.0, video_sent=100, keyframe_requests=2, video_streams=3), Verdict.WEAK),
        (DownlinkSample(2.0, video_sent=100, keyframe_requests=3, video_streams=2), Verdict.WEAK),
        (DownlinkSample(4.0, video_sent=100, keyframe_requests=3, video_streams=2), Verdict.CLEAN),
        # A single request is never a storm (a stream that just started asks once).
        (DownlinkSample(1.0, video_sent=100, keyframe_requests=1, video_streams=1), Verdict.CLEAN),
    ],
)
def test_the_verdict_of_one_sample(sample: DownlinkSample, verdict: Verdict) -> None:
    assert sample.verdict(LIMITS) is verdict


# ---------------------------------------------------------------- hysteresis


def run(judge: LinkJudge, samples: list[DownlinkSample], start: float = 0.0) -> list[Quality]:
    return [judge.observe(sample, start + i) for i, sample in enumerate(samples)]


def test_weak_after_two_seconds_of_sustained_loss_not_sooner() -> None:
    judge = LinkJudge()
    qualities = run(judge, [clean(), lossy(20), lossy(20), lossy(20), lossy(20)])
    assert qualities == [Quality.GOOD, Quality.GOOD, Quality.GOOD, Quality.WEAK, Quality.WEAK]


def test_a_brief_burst_of_loss_is_not_a_weak_link() -> None:
    judge = LinkJudge()
    pattern = [lossy(30), lossy(30), clean()] * 5  # two lossy seconds, then one clean, again
    assert set(run(judge, pattern)) == {Quality.GOOD}


def test_good_again_only_after_five_clean_seconds() -> None:
    judge = LinkJudge()
    run(judge, [lossy(20)] * 4)
    assert judge.quality is Quality.WEAK
    qualities = run(judge, [clean()] * 7, start=4)
    # Clean from t=4: good at t=9, five seconds later.
    assert qualities == [Quality.WEAK] * 5 + [Quality.GOOD] * 2


def test_one_lossy_second_restarts_the_way_back() -> None:
    judge = LinkJudge()
    run(judge, [lossy(20)] * 4)
    qualities = run(judge, [clean()] * 4 + [lossy(10)] + [clean()] * 5, start=4)
    assert set(qualities) == {Quality.WEAK}
    assert judge.observe(clean(), 14) is Quality.GOOD


def test_seconds_with_nothing_to_judge_neither_start_nor_break_a_run() -> None:
    judge = LinkJudge()
    nothing = DownlinkSample(1.0)
    run(judge, [lossy(20), nothing, lossy(20), nothing, lossy(20)])
    assert judge.quality is Quality.WEAK  # weak from t=0 to t=4, nothing in between
    # Recovery reported only every few seconds (audio alone: Chromium's RTCP every 5 s).
    qualities = run(judge, [clean(), nothing, nothing, nothing, nothing, clean()], start=5)
    assert qualities[-1] is Quality.GOOD and qualities[-2] is Quality.WEAK


def test_weak_does_not_last_for_ever_with_nothing_to_judge() -> None:
    judge = LinkJudge()
    run(judge, [lossy(20)] * 3)
    assert judge.quality is Quality.WEAK
    nothing = DownlinkSample(1.0)
    qualities = run(judge, [nothing] * 16, start=3)
    # The last weak sample was at t=2: good again 15 s later.
    assert qualities[:14] == [Quality.WEAK] * 14 and qualities[14] is Quality.GOOD


# ---------------------------------------------------------------- holding videos back

ORDER = ["pupil-a", "pupil-b", "teacher", "screen"]


def plan_run(
    planner: HoldPlanner, judge_states: list[tuple[float, float]], start: float = 0.0
) -> list[list[str]]:
    """Step once a second with (weak_for, clean_for); the held list after each step."""
    held = []
    for i, (weak_for, clean_for) in enumerate(judge_states):
        planner.step(start + i, weak_for, clean_for, ORDER)
        held.append(list(planner.held))
    return held


def test_least_important_video_goes_first_then_one_more_per_settle_time() -> None:
    planner = HoldPlanner()
    weak = [(float(i), 0.0) for i in range(12)]  # weak from t=0 on
    held = plan_run(planner, weak)
    assert held[1] == []  # weak for 1 s: not yet
    assert held[2] == ["pupil-a"]  # weak for 2 s
    assert held[4] == ["pupil-a"]  # settling
    assert held[5] == ["pupil-a", "pupil-b"]  # 3 s later
    assert held[8] == ["pupil-a", "pupil-b", "teacher"]
    assert held[11] == ORDER  # the screen share last
    assert planner.step(20, 20.0, 0.0, ORDER) is False  # nothing more to hold back


def test_videos_come_back_one_by_one_most_important_first() -> None:
    planner = HoldPlanner()
    planner.hold_all(ORDER, now=0.0)
    clean_from_1 = [(0.0, max(0.0, i - 1.0)) for i in range(30)]
    held = plan_run(planner, clean_from_1)
    # Clean for 6 s (t=7): the screen comes back; then one more every 6 s.
    assert held[6] == ORDER
    assert held[7] == ["pupil-a", "pupil-b", "teacher"]
    assert held[12] == ["pupil-a", "pupil-b", "teacher"]
    assert held[13] == ["pupil-a", "pupil-b"]
    assert held[19] == ["pupil-a"]
    assert held[25] == []


def test_a_resume_the_link_cannot_carry_doubles_the_next_wait() -> None:
    planner = HoldPlanner()
    planner.hold_all(["pupil-a", "pupil-b"], now=0.0)
    states = [(0.0, float(i)) for i in range(7)]  # clean since t=0
    plan_run(planner, states)
    assert planner.held == ["pupil-a"]  # resumed pupil-b at t=6
    # Weak again at once: pupil-b is held back again, and the next resume waits 12 s.
    planner.step(9, 2.0, 0.0, ORDER)
    assert planner.held == ["pupil-a", "pupil-b"] and planner.resume_after == 12.0
    planner.step(21, 0.0, 11.0, ORDER)
    assert planner.held == ["pupil-a", "pupil-b"]
    planner.step(22, 0.0, 12.0, ORDER)
    assert planner.held == ["pupil-a"]
    # A long clean spell forgets the doubling.
    planner.step(80, 0.0, 60.0, ORDER)
    assert planner.resume_after == HoldSettings().resume_after


def test_a_held_video_that_is_gone_is_forgotten() -> None:
    planner = HoldPlanner()
    planner.hold_all(["pupil-a", "teacher"], now=0.0)
    assert planner.step(1, 0.0, 0.0, ["teacher"]) is True
    assert planner.held == ["teacher"]


def test_a_camera_that_is_off_is_kept_but_not_chosen() -> None:
    planner = HoldPlanner()
    planner.hold_all(["pupil-a"], now=0.0)
    # pupil-a turned the camera off: not a candidate, still present.
    planner.step(5, 5.0, 0.0, ["pupil-b", "teacher"], present=["pupil-a", "pupil-b", "teacher"])
    assert planner.held == ["pupil-a", "pupil-b"]


# ---------------------------------------------------------------- bad


def test_bad_after_four_seconds_of_heavy_loss_weak_on_the_way() -> None:
    judge = LinkJudge()
    qualities = run(judge, [clean(), *[lossy(40)] * 6])
    assert qualities == [Quality.GOOD] * 3 + [Quality.WEAK] * 2 + [Quality.BAD] * 2


def test_a_weak_link_with_a_round_trip_over_a_second_is_bad_too() -> None:
    judge = LinkJudge()
    assert run(judge, [clean(), *[slow_lossy(10)] * 5])[-1] is Quality.BAD
    # A long round trip on a clean link (a server lagging under load) changes nothing.
    assert set(run(LinkJudge(), [clean(rtt=3.0)] * 10)) == {Quality.GOOD}


def test_a_few_bad_seconds_are_only_weak() -> None:
    judge = LinkJudge()
    qualities = run(judge, [clean(), *[lossy(40)] * 3, lossy(10), *[lossy(40)] * 3, lossy(10)])
    assert set(qualities) == {Quality.GOOD, Quality.WEAK}


def test_bad_to_weak_after_five_seconds_without_bad_then_good_after_five_clean() -> None:
    judge = LinkJudge()
    run(judge, [clean(), *[lossy(40)] * 6])  # bad from t=5, last bad sample t=6
    assert judge.quality is Quality.BAD
    assert run(judge, [lossy(10)] * 5, start=7) == [Quality.BAD] * 4 + [Quality.WEAK]
    assert run(judge, [clean()] * 6, start=12) == [Quality.WEAK] * 5 + [Quality.GOOD]


def test_clean_samples_lead_from_bad_back_to_good() -> None:
    judge = LinkJudge()
    run(judge, [clean(), *[slow_lossy(10)] * 6])
    qualities = run(judge, [clean()] * 6, start=7)
    assert qualities[:4] == [Quality.BAD] * 4 and qualities[-1] is Quality.GOOD
    # A single bad second later is not a bad link again.
    assert Quality.BAD not in run(judge, [clean(), slow_lossy(30), clean(), clean()], start=13)
