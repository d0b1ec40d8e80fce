"""The first-frame bench: a real server process, a small call, every pair timed."""

from __future__ import annotations

import json
from pathlib import Path

from bench.first_frame import main, palette


def test_colours_are_far_apart() -> None:
    colours = palette(9)
    assert len(set(colours)) == 9
    for i, a in enumerate(colours):
        for b in colours[i + 1 :]:
            assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 80


async def test_bad_arguments_exit_with_usage_error() -> None:
    assert await main(["--participants", "1"]) == 2
    assert await main(["--fps", "0"]) == 2


async def test_a_call_of_three_every_pair_gets_its_first_picture(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = await main(["--participants", "3", "--timeout", "20", "--json", str(out), "--quiet"])
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["ok"] is True
    assert report["pair_count"] == 6 and report["missing"] == 0
    # Every first picture was a keyframe of the right person (the server sent nothing of
    # them before their keyframe, and the labels matched the payloads).
    assert report["keyframe_first"] == 6 and report["right_picture"] == 6
    pairs = report["pairs"]
    assert {(p["subscriber"], p["publisher"]) for p in pairs} == {
        (s, p)
        for s in {q["subscriber"] for q in pairs}
        for p in {q["subscriber"] for q in pairs}
        if s != p
    }
    for pair in pairs:
        assert 0 <= pair["wait"] < 20
        assert 0 <= pair["keyframe_wait"] <= pair["wait"] + 1e-6
        assert pair["delivery"] >= 0
    figures = report["from_answer"]
    assert 0 <= figures["median_ms"] <= figures["p95_ms"] <= figures["max_ms"] < 20_000
    assert figures["over_half_second"] == sum(p["wait"] > 0.5 for p in pairs)
    assert report["machine"]["cpus"] >= 1 and len(report["load_average"]) == 2
