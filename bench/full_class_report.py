"""What bench/full_class.py measures and prints: receivers' counts, windows, the report."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiortc.rtp import RtpPacket

RTP_HEADER = 12  # counted with each payload: what the subscriber's RTP stack receives
# The targets (issue 11, "Bench and the targets").
TARGET_CLASS_CORES = 0.5
TARGET_GRID_KBPS = 2500
TARGET_SAVE_DATA_KBPS = 600
TARGET_UPKEEP_SHARE = 0.001  # of a core per participant


def vp8_keyframe_size(payload: bytes) -> str | None:
    """ "WxH" of a VP8 keyframe's first packet (RFC 7741 descriptor, then the frame
    header of RFC 6386 9.1), else None. Reads a few bytes: no decoding."""
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # not the start of partition 0
        return None
    at = 1
    if first & 0x80:  # X: an extension byte follows
        ext = payload[1]
        at = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            at += 2 if payload[at] & 0x80 else 1
        at += 1 if ext & 0x40 else 0  # L: tl0picidx
        at += 1 if ext & 0x30 else 0  # T or K
    frame = payload[at : at + 10]
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None  # an interframe (P bit set), or not VP8 at all (an Opus packet)
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return f"{width}x{height}"


class Receiver:
    """One receiving pupil's counts (reset per window) and whom it has heard from."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.teacher_id = ""
        self.sources: set[str] = set()
        self.heard: set[str] = set()  # in this window (audio slots count by mid)
        self.bytes = 0
        self.packets = 0
        self.sizes: dict[str, set[str]] = defaultdict(set)

    def reset(self) -> None:
        self.bytes = self.packets = 0
        self.sizes.clear()
        self.heard.clear()

    def observe(self, source: str, packet: RtpPacket, at: float) -> None:
        payload = packet.payload
        self.bytes += len(payload) + RTP_HEADER
        self.packets += 1
        self.sources.add(source)
        self.heard.add(source)
        if payload and payload[0] & 0x10:
            size = vp8_keyframe_size(payload)
            if size is not None:
                self.sizes[source].add(size)


@dataclass
class Window:
    name: str
    people: int
    receivers: int
    server_cores: float = 0.0
    bench_cores: float = 0.0  # the bots' own process (its share decides if they keep up)
    packets_in_per_s: float = 0.0  # media packets the server received (GET /metrics)
    packets_out_per_s: float = 0.0  # and forwarded
    # video packets the server's pacers dropped: over a subscriber's bandwidth estimate
    paced_drops_per_s: float = 0.0
    # The cameras' packets a second if every bot kept up (less came in: the bench starved)
    video_in_expected_per_s: float = 0.0
    camera_frames_skipped: int = 0  # by all cameras in the window: the bench fell behind
    held_back_max: int = 0  # videos the server held back from a receiver (connection_quality)
    downlink_kbps: list[float] = field(default_factory=list)  # per receiver
    packets_per_s: list[float] = field(default_factory=list)  # per receiver
    sizes: dict[str, list[str]] = field(default_factory=dict)  # VP8 keyframes seen
    heard_min: int = 0  # the fewest sources a receiver got packets from in the window
    sinks: int = 0  # subscribers beside the receivers whose media nftables dropped
    sunk_per_s: float = 0.0  # media packets sent to them (dropped on arrival)

    @property
    def median_kbps(self) -> float:
        return statistics.median(self.downlink_kbps) if self.downlink_kbps else 0.0

    @property
    def max_kbps(self) -> float:
        return max(self.downlink_kbps, default=0.0)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["downlink_kbps_median"] = round(self.median_kbps, 1)
        data["downlink_kbps_max"] = round(self.max_kbps, 1)
        data["downlink_kbps"] = [round(v, 1) for v in self.downlink_kbps]
        data["packets_per_s"] = [round(v, 1) for v in self.packets_per_s]
        rates = (
            "packets_in_per_s",
            "packets_out_per_s",
            "paced_drops_per_s",
            "video_in_expected_per_s",
            "sunk_per_s",
        )
        for key in ("server_cores", "bench_cores", *rates):
            data[key] = round(data[key], 4 if key.endswith("cores") else 1)
        return data


@dataclass
class Report:
    settings: dict[str, Any]
    windows: list[Window]

    def window(self, name: str) -> Window:
        """The window of that name (an empty one when it was not measured: --no-upkeep)."""
        return next((w for w in self.windows if w.name == name), Window(name, 0, 0))

    def figures(self) -> dict[str, Any]:
        """Ratios between phases and the targets."""
        empty, grid, single = self.window("empty"), self.window("grid"), self.window("single")
        audio_screen, one_video = self.window("audio_screen"), self.window("one_video")
        upkeep = self.window("upkeep")
        people, receivers = grid.people, grid.receivers
        per_participant = (
            (upkeep.server_cores - empty.server_cores) / upkeep.people if upkeep.people else None
        )
        save_max = max(audio_screen.max_kbps, one_video.max_kbps)
        return {
            "grid_over_single": {
                "server_cores": _ratio(grid.server_cores, single.server_cores),
                "downlink_median": _ratio(grid.median_kbps, single.median_kbps),
                "packets_forwarded": _ratio(grid.packets_out_per_s, single.packets_out_per_s),
            },
            "save_data_over_grid": {
                "audio_screen": _ratio(audio_screen.median_kbps, grid.median_kbps),
                "one_video": _ratio(one_video.median_kbps, grid.median_kbps),
            },
            # Everything scaled with the subscribers: an upper bound for all 31 receiving
            # (with sinks all of them subscribe: measured, not scaled).
            "grid_cores_all_receiving_upper_bound": round(
                grid.server_cores * people / max(receivers + grid.sinks, 1), 3
            ),
            "grid_subscribers": receivers + grid.sinks,
            "upkeep_core_share_per_participant": (
                round(per_participant, 5) if per_participant is not None else None
            ),
            "targets": {
                "class_cores_under_0.5_measured": grid.server_cores < TARGET_CLASS_CORES,
                "grid_downlink_under_2.5_mbit": grid.max_kbps < TARGET_GRID_KBPS,
                "save_data_under_0.6_mbit": save_max < TARGET_SAVE_DATA_KBPS,
                "upkeep_under_0.1_percent": (
                    per_participant < TARGET_UPKEEP_SHARE if per_participant is not None else None
                ),
            },
        }

    def summary(self) -> dict[str, Any]:
        return {
            "settings": {k: v for k, v in self.settings.items() if k != "json"},
            "windows": [w.summary() for w in self.windows],
            "figures": self.figures(),
        }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def print_report(report: Report, out: Callable[[str], None] = print) -> None:
    s = report.settings
    out(
        f"{s['people']} people (1 teacher), {s['receivers']} receiving pupils; camera layers "
        f"{s.get('layer_kbps')} kbit/s at {s['fps']} fps (encoded in {s.get('encode_seconds')} s);"
        f" pupil tiles {s['pupil_tile'][0]}x{s['pupil_tile'][1]}, teacher 640x360"
    )
    for w in report.windows:
        line = f"{w.name:>12}: server {w.server_cores:.3f} cores (bench {w.bench_cores:.2f})"
        line += f", in {w.packets_in_per_s:.0f} / out {w.packets_out_per_s:.0f} packets/s"
        line += f" (paced drops {w.paced_drops_per_s:.0f}/s)"
        if w.sinks:
            line += f" ({w.sinks} sinks: {w.sunk_per_s:.0f} packets/s dropped on arrival)"
        if w.video_in_expected_per_s:
            line += (
                f" (cameras should send {w.video_in_expected_per_s:.0f}; frames skipped"
                f" {w.camera_frames_skipped})"
            )
        if w.downlink_kbps:
            line += (
                f"; per receiver {w.median_kbps:.0f} kbit/s median, {w.max_kbps:.0f} max,"
                f" {statistics.median(w.packets_per_s):.0f} packets/s, from >= {w.heard_min}"
                f" sources; sizes {w.sizes}; held back <= {w.held_back_max}"
            )
        out(line)
    figures = report.figures()
    for key in ("grid_over_single", "save_data_over_grid"):
        out(f"{key}: {figures[key]}")
    upkeep = figures["upkeep_core_share_per_participant"]
    all_receiving = (
        "measured, every participant subscribed"
        if figures["grid_subscribers"] >= report.window("grid").people
        else "linear upper bound"
    )
    out(
        f"grid, all receiving ({all_receiving}): "
        f"{figures['grid_cores_all_receiving_upper_bound']} cores; upkeep per participant: "
        + (f"{upkeep:.3%} of a core" if upkeep is not None else "not measured")
    )
    out(f"targets met: {figures['targets']}")
