"""The cluster bench, tiny: two lessons of two on `urok serve --workers 1` and `--workers 2`,
real redis-server, real worker processes, real bots. No speed figure is asserted: that each
lesson is on exactly one node, that the node carrying it forwarded its media, and that the
report has the figures the docs quote."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cluster import main

PER_LESSON = 2
STREAMS_PER_LESSON = PER_LESSON * (PER_LESSON - 1) * 2  # audio and video, everybody to everybody


async def test_lessons_are_placed_once_and_forwarded_on_one_and_two_workers(
    tmp_path: Path,
) -> None:
    out = tmp_path / "report.json"
    code = await main([
        "--workers", "1,2", "--lessons", "2", "--per-lesson", str(PER_LESSON), "--seconds", "3",
        "--warmup", "0.5", "--setup-timeout", "90", "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["options"]["expected_streams"] == 2 * STREAMS_PER_LESSON
    assert [run["workers"] for run in report["runs"]] == [1, 2]
    for run in report["runs"]:
        nodes = {node["node_id"]: node for node in run["nodes"]}
        assert len(nodes) == run["workers"]
        assert len(run["placement"]) == 2
        for lesson_id, node_id in run["placement"].items():
            assert node_id in nodes
            assert run["holders"][lesson_id] == node_id  # the lease in Redis agrees
        for node in nodes.values():
            # Exactly one node runs each lesson's call: no second call anywhere.
            assert node["calls"] == node["lessons"], node
            assert node["participants"] == node["lessons"] * PER_LESSON
            assert node["streams"] == node["lessons"] * STREAMS_PER_LESSON
            assert node["record_streams"] == node["streams"]
            if node["lessons"]:
                assert node["forwarded_packets"] > 0, node
                assert node["cores"] > 0
        assert sum(node["lessons"] for node in nodes.values()) == 2
        assert run["streams"] == 2 * STREAMS_PER_LESSON
        assert run["frames_delivered"] is not None and run["frames_delivered"] > 0
        assert run["received_per_second"] > 0
        assert run["streams_per_core"] is not None and run["streams_per_core"] > 0
    [scaling] = report["scaling"]
    assert (scaling["workers"], scaling["against"]) == (2, 1)
    assert scaling["streams_per_core"] is not None and scaling["server_cores"] is not None


async def test_bad_arguments_exit_with_usage_error() -> None:
    assert await main(["--workers", "0"]) == 2
    assert await main(["--workers", "1,two"]) == 2
    assert await main(["--per-lesson", "1"]) == 2
