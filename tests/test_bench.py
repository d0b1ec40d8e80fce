"""The load bench: its measuring parts, and short end-to-end runs against real server processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from bench.load import main
from bench.measure import ReceiveLog, SendLog, percentile, rtp_payload, tally
from bench.server import cpu_seconds


def test_rtp_payload_skips_header_csrcs_extensions_and_padding() -> None:
    packet = RtpPacket(payload_type=96, sequence_number=7, timestamp=1234, ssrc=42)
    packet.csrc = [1, 2]
    packet.extensions.abs_send_time = 0x123456
    packet.extensions.mid = "0"
    packet.payload = b"payload bytes"
    packet.padding_size = 3
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    data = packet.serialize(extensions)
    assert rtp_payload(data) == b"payload bytes"
    assert rtp_payload(bytes([0x80, 200]) + bytes(26)) is None  # RTCP sender report
    assert rtp_payload(b"\x80") is None


def test_tally_matches_payloads_per_receiver_and_measures_latency() -> None:
    sent = SendLog()
    # Three video packets in the window (the last one ends a frame), one before it.
    sent.sent["video"] += [(0.5, 10, False), (1.0, 11, False), (1.1, 12, False), (1.2, 13, True)]
    sent.sent["audio"] += [(1.0, 20, True)]
    alice, bob = ReceiveLog(), ReceiveLog()
    alice.first["pub"] = {11: 1.002, 12: 1.104, 13: 1.206, 20: 1.001}
    alice.frames[("pub", "video")] = [1.206]
    alice.frames[("pub", "audio")] = [1.001]
    bob.first["pub"] = {11: 1.003, 20: 1.010}  # lost 12 and 13 (and so the video frame)
    bob.frames[("pub", "audio")] = [1.010]
    counted = tally({"pub": sent}, {"pub": ReceiveLog(), "a": alice, "b": bob}, 0.9, 2.0, True)
    video, audio = counted.kinds["video"], counted.kinds["audio"]
    assert (video.streams, video.packets_expected, video.packets_received) == (2, 6, 4)
    assert (audio.streams, audio.packets_expected, audio.packets_received) == (2, 2, 2)
    assert (video.frames_expected, video.frames_received) == (2, 1)
    assert counted.total.loss == 2 / 8
    assert sorted(round(v * 1000) for v in counted.latencies) == [1, 2, 3, 4, 6, 10]
    assert percentile([], 50) is None


def test_cpu_seconds_reads_proc() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_seconds(os.getpid()) >= before > 0


async def test_bad_arguments_exit_with_usage_error() -> None:
    assert await main(["--publishers", "0"]) == 2


async def test_small_forwarding_run_reports_sane_figures(tmp_path: Path) -> None:
    """The whole bench: server subprocess, bots, window, report. Fails if forwarding breaks."""
    out = tmp_path / "report.json"
    code = await main([
        "--publishers", "1", "--subscribers", "2", "--seconds", "4", "--warmup", "1",
        "--width", "320", "--height", "180", "--video-kbps", "300", "--setup-timeout", "20",
        "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    [path] = report["paths"]
    assert path["label"] == "forwarding"
    assert path["streams"] == 2 * 1 * 2
    assert 3.5 < path["window"] < 6
    assert path["server_cpu"] is not None and path["server_cpu"] >= 0
    assert path["streams_per_core"] is None or path["streams_per_core"] > 0
    # Audio sends 50 packets a second, video at least one per frame (30): 4 streams x 4 s.
    assert path["packets_received"] > 0.8 * 4 * 4 * 40
    assert path["loss"] is not None and path["loss"] < 0.2
    assert all(0.8 < path["frames_delivered_by_kind"][k] < 1.2 for k in ("audio", "video"))
    assert path["latency_samples"] == path["packets_received"]
    assert 0 <= path["latency_p50_ms"] <= path["latency_p99_ms"] < 1000


async def test_baseline_server_relays_the_same_protocol(tmp_path: Path) -> None:
    """The MediaRelay baseline (decode + re-encode) works with the same bots."""
    out = tmp_path / "report.json"
    code = await main([
        "--publishers", "1", "--subscribers", "1", "--seconds", "2", "--warmup", "1",
        "--width", "160", "--height", "96", "--video-kbps", "100", "--setup-timeout", "20",
        "--baseline-only", "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    [path] = json.loads(out.read_text())["paths"]
    assert path["label"] == "baseline"
    assert path["streams"] == 2
    assert path["loss"] is None and path["latency_p50_ms"] is None  # payloads re-encoded
    assert path["frames_delivered_by_kind"]["audio"] > 0.5
    assert path["frames_delivered_by_kind"]["video"] > 0.5


async def test_recording_windows_in_the_same_run(tmp_path: Path) -> None:
    """--recording: windows without, with and after a recording; the recorder's CPU; the file."""
    out = tmp_path / "report.json"
    code = await main([
        "--publishers", "2", "--subscribers", "1", "--seconds", "3", "--warmup", "1",
        "--recording", "--recording-warmup", "2", "--audio-publishers", "1", "--publish-only",
        "--width", "320", "--height", "180", "--video-kbps", "200", "--setup-timeout", "20",
        "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert [p["label"] for p in report["paths"]] == ["forwarding", "recording", "after"]
    for path in report["paths"]:
        # 2 cameras + 1 microphone, each to the subscriber only (publishers receive nothing).
        assert path["streams_by_kind"] == {"audio": 1, "video": 2}
        assert path["loss"] is not None and path["loss"] < 0.2
        assert 0 <= path["latency_p50_ms"] <= path["latency_p99_ms"] < 1000
        assert all(p is not None for p in path["latency_by_kind_ms"]["video"])
    recorder = [p["recorder_cpu"] for p in report["paths"]]
    assert recorder[0] is None and recorder[2] is None and recorder[1] > 0
    ratios = report["recording_latency_ratios"]
    assert ratios["p99_over_forwarding"] > 0 and ratios["p99_over_after"] > 0
    recording = report["recording"]
    assert recording["ready"] and recording["complete"] and recording["recorder_exited"]
    assert recording["recorder_cpu"] > 0 and recording["size_bytes"] > 10_000
    assert abs(recording["duration_s"] - recording["wall_seconds"]) < 1
    assert (recording["width"], recording["height"]) == (1280, 720)
    assert recording["video_frames"] >= 0.8 * recording["frames_expected"] > 0
