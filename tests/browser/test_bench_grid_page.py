"""The grid-page bench (bench/grid_page.py), tiny: a real server process, four bots
publishing the call page's simulcast camera, and the call page in Chromium as a fifth.
Both layer sets of the run reach the page; the old, larger layers cost it more."""

from __future__ import annotations

import pytest

from tests.bench_run import bench_report

pytestmark = pytest.mark.browser


async def test_a_tiny_class_grid_page_is_measured_for_both_layer_sets() -> None:
    report = await bench_report(
        "bench.grid_page",
        *("--people", "5", "--seconds", "3", "--warmup", "1", "--clip-seconds", "1"),
        timeout=240,
    )
    before, now = report["windows"]
    assert (before["layers"], now["layers"]) == ("before", "now")
    for window in (before, now):
        # Five people: everyone on the page's one grid page, each camera decoded.
        assert window["tiles_shown"] == 5 and window["cameras_decoded"] == 4, window
        assert window["frames_per_s"] > 10 and window["audio_kbps"] > 0, window
    # Same tiles, same layer chosen: the smaller rates cost less.
    assert before["sizes"] == now["sizes"], report
    assert now["video_kbps"] < before["video_kbps"], report
