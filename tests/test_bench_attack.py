"""The attack bench (issue 9): windows before, with and after an attack, in one short run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.attack import main
from bench.attacker import check_loopback, joined_frames, unjoined_frames
from signalling.protocol import MAX_UNJOINED_BYTES, ProtocolError, parse_message
from signalling.ws import UNJOINED_TYPES


def test_the_attacker_only_attacks_loopback() -> None:
    for url in (
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:80",
        "http://127.3.2.1",
    ):
        check_loopback(url)
    for url in ("http://10.0.0.1:8080", "http://example.org", "http://192.168.1.1"):
        with pytest.raises(ValueError, match="loopback"):
            check_loopback(url)


def test_every_attack_frame_is_refused_or_a_ping() -> None:
    """The attack changes nothing in the lesson: each frame gets an error (or a pong)."""
    for frames, limit, allowed in (
        (unjoined_frames(), MAX_UNJOINED_BYTES, UNJOINED_TYPES),
        (joined_frames(), 320 * 1024, None),
    ):
        for frame in frames:
            try:
                message = parse_message(frame, limit, allowed)
            except ProtocolError:
                continue
            assert message["type"] == "ping", frame[:80]


async def test_small_attack_run_reports_three_windows(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = await main([
        "--publishers", "1", "--subscribers", "1", "--seconds", "3", "--warmup", "1",
        "--width", "160", "--height", "96", "--video-kbps", "100", "--setup-timeout", "20",
        "--attack-joined", "1", "--attack-unjoined", "1", "--attack-http", "1",
        "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    paths = report["paths"]
    assert [p["label"] for p in paths] == ["forwarding", "attack", "after-attack"]
    before, attack, after = paths
    # The attacker was answered during its window only, and /healthz in every window.
    assert attack["attack_answered"] > 0 and attack["attack_answered_per_second"] > 0
    assert before["attack_answered"] == 0 and after["attack_answered"] == 0
    for path in paths:
        assert path["healthz_samples"] > 0 and path["healthz_p99_ms"] is not None
        assert path["packets_received"] > 0
    stats = report["attack"]
    assert stats["frames_sent"] > 0 and stats["frames_answered"] == stats["frames_sent"]
    assert stats["requests_sent"] > 0 and stats["requests_answered"] == stats["requests_sent"]
    assert stats["failures"] == []
    answers = stats["answers"]
    assert answers.get("HTTP 400", 0) > 0 and "HTTP 500" not in answers
    assert {"too_large", "bad_json", "bad_message", "pong"} <= set(answers)
    assert "internal_error" not in answers
    ratios = report["attack_latency_ratios"]
    assert ratios["p99_over_forwarding"] > 0 and ratios["p99_over_after-attack"] > 0
