"""Issue 16's acceptance on an emulated weak link, with a Chromium pupil (bench/weak_link.py).

Each test is one bench run: four publisher bots, the pupil's Chromium on a test
host behind its own link (bench/links.py), the server as its own process
(bench/observed_server.py, which counts what it sends the pupil). A control
window with the link at 50 Mbit/s, then the link is changed in place and the
same people are measured again: every comparison is within one run.

The targets are the issue's. Every figure a test checks is put in one message,
so a failure shows all of them, not only the first.
"""

from __future__ import annotations

import pytest

from bench.weak_link import Options, WeakLinkReport, run
from bench.weak_publishers import ENCODER_FPS

pytestmark = pytest.mark.browser

RATE_KBIT = 1500
WINDOW = 8.0


def _pupil_run(**changes: object) -> Options:
    options = Options(
        rate_kbit=RATE_KBIT,
        subscriber="chromium",
        publishers=4,
        seconds=WINDOW,
        warmup=2.0,
        settle=2.0,
        setup_timeout=40.0,
        quiet=True,
    )
    for name, value in changes.items():
        setattr(options, name, value)
    return options


def _check(report: WeakLinkReport, checks: list[tuple[bool, str]]) -> None:
    failed = [message for ok, message in checks if not ok]
    assert not failed, "\n".join(failed) + "\n\n" + report.text()


def _delivered(report: WeakLinkReport) -> list[tuple[bool, str]]:
    """The control window is sound: every camera decodes at full rate, audio is whole."""
    control = report.control
    fps = control.video_fps or 0.0
    return [
        (control.video_streams == 4, f"control: {control.video_streams} video streams, not 4"),
        (fps > 20, f"control: {fps:.1f} fps per camera (want > 20)"),
        (
            (control.audio_loss or 0.0) < 0.01,
            f"control: audio loss {control.audio_loss} (want < 1 %)",
        ),
    ]


async def test_a_congested_pupil_is_sent_what_its_link_carries() -> None:
    # Bytes and copies are the flood; the server's CPU against the control (issue 16:
    # within 1.3x) is a speed figure, measured by `python -m bench.weak_link
    # --subscriber chromium --rate 1500` and kept in docs/performance.md.
    report = await run(_pupil_run())
    shaped = report.shaped
    sent_kbit = shaped.sent_mbit_s * 1000
    copies = shaped.video_copies_mean
    _check(
        report,
        [
            *_delivered(report),
            (
                sent_kbit <= 1.5 * RATE_KBIT,
                f"sent the pupil {sent_kbit:,.0f} kbit/s on a {RATE_KBIT} kbit/s link "
                f"({sent_kbit / RATE_KBIT:.1f}x; want <= 1.5x)",
            ),
            (
                copies is not None and copies <= 2.0,
                f"copies of each video packet: mean {copies} (max {shaped.video_copies_max}); "
                "want <= 2",
            ),
        ],
    )


async def test_a_congested_pupil_does_not_raise_the_publishers_bitrate() -> None:
    # Publishers that encode (aiortc's VP8, with bitrate headroom): every keyframe
    # asked of them shows in their bitrate, as a browser's does.
    report = await run(_pupil_run(publisher_kind="encoder"))
    shaped, control = report.shaped, report.control
    ratio = report.publisher_bitrate_ratio
    fps_control, fps_shaped = control.publisher_fps_mean or 0, shaped.publisher_fps_mean or 0
    _check(
        report,
        [
            # Like with like: the encoders kept their frame rate in both windows (a
            # starved machine would lower both bitrate and frame rate).
            (
                fps_control > 0.8 * ENCODER_FPS,
                f"publishers sent {fps_control:.1f} fps in the control, not {ENCODER_FPS}",
            ),
            (
                fps_shaped >= 0.85 * fps_control,
                f"publishers' frame rate fell from {fps_control:.1f} to {fps_shaped:.1f} fps",
            ),
            (
                ratio is not None and ratio <= 1.15,
                f"publishers' video {control.publisher_video_kbit_s_mean} kbit/s in the "
                f"control, {shaped.publisher_video_kbit_s_mean} with the congested pupil "
                f"(x{ratio}; keyframes/s {control.publisher_keyframes_s_mean} -> "
                f"{shaped.publisher_keyframes_s_mean}, keyframe requests/s "
                f"{shaped.publisher_keyframe_requests_s_mean}); want <= 1.15x",
            ),
        ],
    )


# Audio concealed over the control window's, at most, by random loss on the link (%).
MOST_CONCEALED = {3.0: 0.005, 10.0: 0.03}


async def test_audio_survives_random_loss() -> None:
    # Audio after FEC/RED: the samples the pupil's Chromium had to conceal. A busy
    # machine makes it conceal some in any case (late packets), so what counts is
    # the excess over the control window. One run: control, 3 %, then 10 %.
    report = await run(_pupil_run(rate_kbit=50_000, loss_percent=3.0, then_losses=(10.0,)))
    control = report.control
    checks = _delivered(report)
    losses = (report.options.loss_percent, *report.options.then_losses)
    for loss_percent, lossy in zip(losses, (report.shaped, *report.then), strict=True):
        excess = (lossy.audio_concealed or 0.0) - (control.audio_concealed or 0.0)
        fps = lossy.video_fps or 0.0
        checks += [
            (
                lossy.dropped_by_loss_rule > 0,
                f"{lossy.label}: the loss rule dropped nothing: the link was not lossy",
            ),
            (
                excess < MOST_CONCEALED[loss_percent],
                f"concealed audio {lossy.audio_concealed} with {loss_percent:g} % loss vs "
                f"{control.audio_concealed} without (+{100 * excess:.2f} points; want < "
                f"{100 * MOST_CONCEALED[loss_percent]:g}); RTP loss {lossy.audio_loss}",
            ),
            # The issue asks video to keep decoding (with NACK) at 3 %.
            (
                loss_percent > 3 or fps > 20,
                f"video {fps:.1f} fps per camera with {loss_percent:g} % loss (want > 20)",
            ),
        ]
    _check(report, checks)
