"""bench/video_slots_cost.py, small: the bound keeps a subscriber's offers to the bound,
page flips re-use its m-sections; without it every camera has one and no flip offers."""

from __future__ import annotations

from tests.bench_run import bench_report


async def test_the_bound_keeps_offers_small_and_flips_reuse_m_sections() -> None:
    bounded, unbounded = await bench_report(
        "bench.video_slots_cost",
        *("--cameras", "12", "--bound", "4", "--page", "3", "--flips", "2"),
        timeout=120,
    )
    assert bounded["bound"] == 4 and unbounded["bound"] == 0
    assert bounded["join"]["sections"] == 4 and unbounded["join"]["sections"] == 12
    assert bounded["join"]["offer_kb"] < unbounded["join"]["offer_kb"] / 2
    # Each flip shows 3 cameras that had no m-section: one offer, the same 4 m-sections.
    assert bounded["flip_offers"] == 2 and bounded["flip_median"]["sections"] == 4
    assert bounded["video_sections_at_end"] == 4
    assert unbounded["flip_offers"] == 0 and unbounded["video_sections_at_end"] == 12
