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
    # --sinks needs a watcher that does not publish.
    assert await main(["--per-lesson", "4", "--sinks"]) == 2
    assert await main(["--per-lesson", "4", "--publishers", "5"]) == 2


async def test_sinks_cost_the_server_its_full_fan_out_and_watchers_still_get_frames(
    tmp_path: Path,
) -> None:
    """--sinks: lessons of 4, 2 publishing, 1 watcher; the media sent to the 3 others is
    dropped by nftables on arrival. The server must still send every packet it read to all
    3 receivers (nothing held back for want of receiver reports), the rule must drop the
    sinks' share of it (2 of 3 receivers of each track), and the watcher must get frames."""
    out = tmp_path / "report.json"
    code = await main([
        "--workers", "2", "--lessons", "2", "--per-lesson", "4", "--publishers", "2",
        "--sinks", "--watchers-per-lesson", "1", "--seconds", "4", "--warmup", "3",
        "--setup-timeout", "90", "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["options"]["expected_streams"] == 2 * 2 * 3 * 2
    [run] = report["runs"]
    assert run["streams"] == 2 * 2 * 3 * 2
    assert all(node["forwarded_packets"] > 0 for node in run["nodes"])
    forwarded = run["forwarded_per_second"]
    # Every packet read goes to the 3 others: the fan-out, not less (no hold-back).
    assert run["fan_out_ratio"] is not None and 0.95 <= run["fan_out_ratio"] <= 1.05, run
    assert run["in_per_second"] >= 0.9 * run["offered_per_second"] > 0
    # Of each track's 3 receivers 2 are sinks: 2/3 of the forwarded media is dropped ...
    assert 0.55 <= run["sunk_per_second"] / forwarded <= 0.75, run
    # ... and the bots receive only the watchers' third.
    assert 0.2 <= run["received_per_second"] / forwarded <= 0.45, run
    assert run["frames_delivered"] is not None and run["frames_delivered"] > 0.5, run
