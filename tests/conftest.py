"""Suite-wide set-up.

The whole-suite run (scripts/test.sh) runs two pytest processes side by side: the
browser tests and the modules named here, which measure rates, frame rates, spectra,
loss or timing in real time, at normal priority one after another; everything else
(Python only: bots, the protocol, unit tests) beside them at a lower priority
(`nice`), so that it cannot starve a measurement or a browser. Both processes share
one network namespace, so each takes its own block of test-host addresses
(bench/links.py).
"""

from __future__ import annotations

import pytest

REALTIME_MODULES = frozenset(
    {
        "tests/browser/test_active_speaker.py",
        "tests/browser/test_audio_loss.py",
        "tests/browser/test_ice_restart.py",
        "tests/browser/test_link_smoke.py",
        "tests/browser/test_resume.py",
        "tests/browser/test_sending_side.py",
        "tests/browser/test_simulcast.py",
        "tests/browser/test_weak_link.py",
        "tests/browser/test_weak_link_acceptance.py",
        "tests/test_active_speakers.py",
        "tests/test_bench.py",
        "tests/test_bench_attack.py",
        "tests/test_bench_breakout.py",
        "tests/test_bench_first_frame.py",
        "tests/test_bench_slot_video.py",
        "tests/test_bounded_work.py",
        "tests/test_breakout.py",
        "tests/test_call_recording.py",
        "tests/test_frame_budget.py",
        "tests/test_health.py",
        "tests/test_links.py",
        "tests/test_nodes.py",
        "tests/test_sfu_pacer.py",
        "tests/test_sfu_remb.py",
        "tests/test_sfu_rtx.py",
        "tests/test_slot_churn.py",
        "tests/test_subscriber_bandwidth.py",
        "tests/test_track_views.py",
        "tests/test_video_quality.py",
        "tests/test_weak_link.py",
        "tests/test_weak_links.py",
        "tests/test_ws_fuzz.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        if path in REALTIME_MODULES:
            item.add_marker(pytest.mark.realtime)
        if path.startswith("tests/browser/"):
            item.add_marker(pytest.mark.browser)
