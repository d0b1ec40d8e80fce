"""rooms/hold_back.py EstimateFit: which videos a subscriber is not sent so that the
rest fits the SFU's bandwidth estimate of its link; hold times, no oscillation."""

from __future__ import annotations

import itertools

from rooms.hold_back import EstimateFit, FitSettings

# Least important first, each about 460 kbit/s (the bench's pre-encoded cameras).
VIDEOS = [("pupil-a", 460e3), ("pupil-b", 460e3), ("teacher", 460e3), ("screen", 460e3)]


def test_nothing_is_held_while_the_videos_fit() -> None:
    fit = EstimateFit()
    for t in range(30):
        assert fit.step(float(t), 2.5e6, VIDEOS) is False
    assert fit.held == []
    assert fit.step(31.0, None, VIDEOS) is False  # unknown: not limited


def test_the_least_important_is_held_after_over_for_then_one_more_per_settle() -> None:
    fit = EstimateFit(FitSettings(over_for=2.0, settle_seconds=3.0))
    # 1.84 Mbit/s of video; the link carried 1.0 / 0.85 = 1.18.
    assert fit.step(0.0, 1.0e6, VIDEOS) is False
    assert fit.step(1.0, 1.0e6, VIDEOS) is False
    assert fit.step(2.0, 1.0e6, VIDEOS) is True
    assert fit.held == ["pupil-a"]
    fit.step(4.0, 1.0e6, VIDEOS)
    assert fit.held == ["pupil-a"]  # settling
    fit.step(5.0, 1.0e6, VIDEOS)
    fit.step(7.0, 1.0e6, VIDEOS)
    assert fit.held == ["pupil-a", "pupil-b"]  # over again for over_for after the settle
    for t in range(8, 30):  # 0.92 Mbit/s left: within what the link carried
        fit.step(float(t), 1.0e6, VIDEOS)
    assert fit.held == ["pupil-a", "pupil-b"]


def test_a_brief_dip_holds_nothing() -> None:
    fit = EstimateFit(FitSettings(over_for=2.0))
    for t, estimate in enumerate([2.5e6, 1.0e6, 2.5e6, 1.0e6, 2.5e6, 2.5e6]):
        fit.step(float(t), estimate, VIDEOS)
    assert fit.held == []


def hold_all(fit: EstimateFit, videos: list[tuple[str, float]], start: float = 0.0) -> float:
    """Drive `fit` until every video is held (a collapsed estimate on a weak link)."""
    t = start
    while len(fit.held) < len(videos):
        fit.step(t, 0.1e6, videos)
        t += 1
    return t


def test_held_videos_come_back_one_at_a_time_most_important_first() -> None:
    settings = FitSettings(over_for=0.0, settle_seconds=3.0, resume_after=5.0)
    fit = EstimateFit(settings)
    t = hold_all(fit, VIDEOS)
    assert fit.held == ["pupil-a", "pupil-b", "teacher", "screen"]
    held = []
    for now in range(int(t), int(t) + 60):
        fit.step(float(now), 5e6, VIDEOS)  # the link has freed up
        held.append((now, list(fit.held)))
    changes = [(at, h) for (_, before), (at, h) in itertools.pairwise(held) if h != before]
    # An estimate with room for all of them: all at once, once it has had it 5 s.
    assert [h for _, h in changes] == [[]]
    assert changes[0][0] - t >= 5
    # With room for one more at a time (and a clean link), most important first.
    fit = EstimateFit(settings)
    t = hold_all(fit, VIDEOS)
    held = []
    for now in range(int(t), int(t) + 120):
        forwarded = sum(bps for video, bps in VIDEOS if video not in fit.held)
        fit.step(float(now), forwarded + 500e3, VIDEOS)  # room for the next one only
        held.append((now, list(fit.held)))
    changes = [(at, h) for (_, before), (at, h) in itertools.pairwise(held) if h != before]
    assert [h for _, h in changes] == [
        ["pupil-a", "pupil-b", "teacher"],
        ["pupil-a", "pupil-b"],
        ["pupil-a"],
        [],
    ]


def test_an_estimate_at_its_ceiling_counts_as_room() -> None:
    # One video forwarded: a REMB can say at most ~1.5x of it, never enough for two.
    settings = FitSettings(over_for=0.0, settle_seconds=0.0, resume_after=3.0)
    fit = EstimateFit(settings)
    t = hold_all(fit, VIDEOS[:2])
    fit.step(t, 1.5 * 460e3, VIDEOS[:2])  # nothing forwarded: room for one
    for s in range(1, 4):
        fit.step(t + s, 1.5 * 460e3, VIDEOS[:2])
    assert fit.held == ["pupil-a"]
    for s in range(4, 8):
        fit.step(t + s, 1.5 * 460e3 + 10e3, VIDEOS[:2])
    assert fit.held == []
    # An estimate below 1.3x what is forwarded is held down by the link: no resume.
    fit2 = EstimateFit(settings)
    t = hold_all(fit2, VIDEOS[:2])
    for s in range(0, 4):
        fit2.step(t + s, 1.1 * 460e3, VIDEOS[:2])
    assert fit2.held == ["pupil-a"]
    for s in range(4, 30):
        fit2.step(t + s, 1.1 * 460e3, VIDEOS[:2], congested=False)
    assert fit2.held == ["pupil-a"]


def test_a_resume_the_link_cannot_carry_doubles_the_next_wait() -> None:
    settings = FitSettings(over_for=0.0, settle_seconds=3.0, resume_after=5.0, probe_window=10.0)
    fit = EstimateFit(settings)
    t = hold_all(fit, VIDEOS[:2])
    while fit.held == ["pupil-a", "pupil-b"]:
        fit.step(t, 0.7e6, VIDEOS[:2])  # room for the next one (not both: both would come)
        t += 1
    resumed_at = t - 1
    assert fit.held == ["pupil-a"]
    # Overloaded at once: held again, and the next resume waits twice as long.
    for s in range(0, 6):
        fit.step(resumed_at + 1 + s, 0.2e6, VIDEOS[:2])
    assert fit.held == ["pupil-a", "pupil-b"] and fit.resume_after == 10.0


def test_a_held_video_that_is_gone_is_forgotten() -> None:
    fit = EstimateFit(FitSettings(over_for=0.0))
    hold_all(fit, VIDEOS)
    present = ["pupil-a", "teacher", "screen"]  # pupil-b left
    others = [v for v in VIDEOS if v[0] != "pupil-b"]
    assert fit.step(100.0, 0.1e6, others, present) is True
    assert fit.held == ["pupil-a", "teacher", "screen"]


def simulate(seconds: int, video_capacity: float) -> list[tuple[float, list[str]]]:
    """A receive-side estimator (REMB, much simplified AIMD as libwebrtc's) on a link
    that carries `video_capacity` of video, stepped once a second with the fit."""
    fit = EstimateFit()
    remb = 3e6
    out = []
    for t in range(seconds):
        rates = dict(VIDEOS)
        forwarded = sum(rates[v] for v in rates if v not in fit.held)
        arriving = min(forwarded, video_capacity)
        if forwarded > video_capacity:  # over-use: 0.85 of what arrives
            remb = 0.85 * arriving
        else:  # +8 % a second, at most 1.5x what arrives
            remb = min(remb * 1.08, 1.5 * arriving + 10e3)
        fit.step(float(t), remb, VIDEOS)
        out.append((forwarded, list(fit.held)))
    return out


def test_on_a_steady_link_the_fit_settles_instead_of_oscillating() -> None:
    # 1.06 Mbit/s for video (a 1.5 Mbit/s link less four RED audio streams): two fit.
    run = simulate(300, 1.06e6)
    changes = [t for t in range(1, len(run)) if run[t][1] != run[t - 1][1]]
    late = [t for t in changes if t >= 100]
    # Probes of a third video grow further apart (hold times double up to 60 s).
    assert len(late) <= 8, changes
    over = sum(1 for forwarded, _ in run[20:] if forwarded > 1.06e6)
    assert over / len(run[20:]) < 0.1, (over, changes)
    # And it does not hold more than it must for long: two videos most of the time.
    two = sum(1 for _, held in run[20:] if len(held) == 2)
    assert two / len(run[20:]) > 0.7


def test_when_the_link_frees_up_every_video_comes_back() -> None:
    fit = EstimateFit()
    remb = 0.9e6
    for t in range(200):
        rates = dict(VIDEOS)
        forwarded = sum(rates[v] for v in rates if v not in fit.held)
        capacity = 1.06e6 if t < 30 else 10e6
        arriving = min(forwarded, capacity)
        remb = 0.85 * arriving if forwarded > capacity else min(remb * 1.08, 1.5 * arriving + 1e4)
        fit.step(float(t), remb, VIDEOS)
    assert fit.held == []


def test_a_low_estimate_on_a_link_that_is_not_weak_holds_nothing() -> None:
    fit = EstimateFit(FitSettings(over_for=2.0))
    for t in range(10):
        fit.step(float(t), 0.8e6, VIDEOS, congested=False)
    assert fit.held == []
    fit.step(10.0, 0.8e6, VIDEOS, congested=True)
    fit.step(12.0, 0.8e6, VIDEOS, congested=True)
    assert fit.held == ["pupil-a"]


def test_a_link_clean_for_long_enough_gets_a_video_back_whatever_the_estimate() -> None:
    fit = EstimateFit(FitSettings(over_for=0.0, settle_seconds=3.0, resume_after=5.0))
    t = hold_all(fit, VIDEOS[:2])  # at t - 1
    fit.step(t, 0.1e6, VIDEOS[:2], congested=False, clean_for=1.0)
    fit.step(t + 3, 0.1e6, VIDEOS[:2], congested=False, clean_for=4.0)
    assert len(fit.held) == 2  # a far too low estimate: no room; clean for 4 s
    fit.step(t + 4, 0.1e6, VIDEOS[:2], congested=False, clean_for=5.0)
    assert fit.held == ["pupil-a"]
    # The next one once that one has held for settle_seconds with the link clean (a
    # ramp: rooms/layer_fit.py), not at once.
    fit.step(t + 5, 0.1e6, VIDEOS[:2], congested=False, clean_for=6.0)
    assert fit.held == ["pupil-a"]
    fit.step(t + 7, 0.1e6, VIDEOS[:2], congested=False, clean_for=8.0)
    assert fit.held == []
