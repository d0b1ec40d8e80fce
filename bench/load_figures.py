"""The load bench's figures: per window, for the recording, and the whole run's with its JSON."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bench.load_options import Options

TARGET_STREAMS_PER_CORE = 500


@dataclass
class PathReport:
    """One server path (forwarding or baseline) measured under the scenario."""

    label: str
    server: str
    streams: int
    streams_by_kind: dict[str, int]
    window: float
    server_cpu: float | None
    server_system_cpu: float | None  # the kernel's share (socket system calls)
    bench_cpu: float
    server_rss_mb: float | None
    packets_expected: int
    packets_received: int
    loss: float | None
    loss_by_kind: dict[str, float | None]
    frames_delivered_by_kind: dict[str, float | None]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_samples: int
    latency_by_kind_ms: dict[str, tuple[float | None, float | None]]  # kind -> (p50, p99)
    loop_lag_p99_ms: float | None
    setup_seconds: float
    warnings: list[str] = field(default_factory=list)
    profile: str | None = None
    # The recorder process (a child of the server) during the window, when one ran.
    recorder_cpu: float | None = None
    # The whole machine (all processes) during the window.
    machine_cpu: float | None = None
    # --attack: the attacker process's CPU, the server's answers to it, /healthz.
    attacker_cpu: float | None = None
    attack_answered: int | None = None
    healthz_p50_ms: float | None = None
    healthz_p99_ms: float | None = None
    healthz_max_ms: float | None = None
    healthz_samples: int | None = None

    @property
    def attacker_cores(self) -> float | None:
        return None if self.attacker_cpu is None else self.attacker_cpu / self.window

    @property
    def attack_answered_per_second(self) -> float | None:
        if self.attack_answered is None or self.window <= 0:
            return None
        return self.attack_answered / self.window

    @property
    def cpu_per_stream_second(self) -> float | None:
        if self.server_cpu is None or self.streams == 0 or self.window <= 0:
            return None
        return self.server_cpu / (self.streams * self.window)

    @property
    def streams_per_core(self) -> float | None:
        value = self.cpu_per_stream_second
        return 1 / value if value else None

    @property
    def delivered_stream_seconds(self) -> float:
        """Stream-seconds weighted by the share of frames that arrived (per kind)."""
        return sum(
            self.streams_by_kind[kind] * self.window * (self.frames_delivered_by_kind[kind] or 0)
            for kind in self.streams_by_kind
        )

    @property
    def cpu_per_delivered_stream_second(self) -> float | None:
        delivered = self.delivered_stream_seconds
        if self.server_cpu is None or delivered <= 0:
            return None
        return self.server_cpu / delivered

    @property
    def server_cores(self) -> float | None:
        return None if self.server_cpu is None else self.server_cpu / self.window

    @property
    def bench_cores(self) -> float:
        return self.bench_cpu / self.window

    @property
    def recorder_cores(self) -> float | None:
        return None if self.recorder_cpu is None else self.recorder_cpu / self.window

    @property
    def other_cores(self) -> float | None:
        """What other processes on the machine used meanwhile (not server, bench, recorder)."""
        if self.machine_cpu is None or self.server_cpu is None:
            return None
        ours = (
            self.server_cpu + self.bench_cpu + (self.recorder_cpu or 0) + (self.attacker_cpu or 0)
        )
        return max(0.0, self.machine_cpu - ours) / self.window

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(
            cpu_per_stream_second=self.cpu_per_stream_second,
            streams_per_core=self.streams_per_core,
            server_cores=self.server_cores,
            bench_cores=self.bench_cores,
            cpu_per_delivered_stream_second=self.cpu_per_delivered_stream_second,
            recorder_cores=self.recorder_cores,
            other_cores=self.other_cores,
            attack_answered_per_second=self.attack_answered_per_second,
            attacker_cores=self.attacker_cores,
        )
        return out


@dataclass
class RecordingReport:
    """The recording made during the "recording" window, from start to the file."""

    recording_id: str | None = None
    recorder_pid: int | None = None
    warmup: float = 0.0  # from the start to the window
    # From the start's reply to the stop's reply (bench clock).
    wall_seconds: float | None = None
    # Recorder CPU from its start (imports included) to just before the stop.
    recorder_cpu: float | None = None
    recorder_exited: bool | None = None  # gone once the file was ready
    ready: bool = False  # the chat's recording_ready arrived
    failed: bool = False  # the chat's recording_failed arrived instead
    ready_seconds: float | None = None  # from the stop's reply to recording_ready
    duration_s: float | None = None  # as the server reports it
    size_bytes: int | None = None
    complete: bool | None = None
    url: str | None = None  # the file, for the call's people
    # Read from the downloaded file.
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_frames: int | None = None
    error: str | None = None
    # The server log's warnings and errors about recording (a managed server only).
    log_lines: list[str] = field(default_factory=list)

    @property
    def recorder_cores(self) -> float | None:
        if self.recorder_cpu is None or not self.wall_seconds:
            return None
        return self.recorder_cpu / self.wall_seconds

    @property
    def frames_expected(self) -> int | None:
        if self.duration_s is None or not self.fps:
            return None
        # Frame i shows time i / fps; frames are made while that is before the end.
        return math.ceil(self.duration_s * self.fps - 1e-6)

    @property
    def frames_skipped(self) -> int | None:
        """Frames the recorder left out (not composed, for lack of time): gaps in the file."""
        expected = self.frames_expected
        if expected is None or self.video_frames is None:
            return None
        return max(0, expected - self.video_frames)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(
            recorder_cores=self.recorder_cores,
            frames_expected=self.frames_expected,
            frames_skipped=self.frames_skipped,
        )
        return out


@dataclass
class BenchReport:
    options: Options
    media: str
    machine: dict[str, Any]
    paths: list[PathReport]
    recording: RecordingReport | None = None
    # --attack: what the attacker sent and was answered (bench/attacker.py AttackStats).
    attack: dict[str, Any] | None = None

    def path(self, label: str) -> PathReport | None:
        return next((p for p in self.paths if p.label == label), None)

    def attack_ratio(self, without: str, percentile_: int = 99) -> float | None:
        """Added latency (p99 or p50) with the attack / without (window `without`)."""
        return self._latency_ratio("attack", without, percentile_)

    def recording_ratio(self, without: str, percentile_: int = 99) -> float | None:
        """Added latency (p99 or p50) with a recording / without (window `without`)."""
        return self._latency_ratio("recording", without, percentile_)

    def _latency_ratio(self, with_: str, without: str, percentile_: int) -> float | None:
        on, off = self.path(with_), self.path(without)
        if on is None or off is None:
            return None
        attr = f"latency_p{percentile_}_ms"
        a, b = getattr(on, attr), getattr(off, attr)
        return a / b if a is not None and b else None

    @property
    def ratio(self) -> float | None:
        """Baseline CPU per stream-second / forwarding CPU per stream-second (same run)."""
        forwarding, baseline = self.path("forwarding"), self.path("baseline")
        if forwarding is None or baseline is None:
            return None
        a, b = baseline.cpu_per_stream_second, forwarding.cpu_per_stream_second
        return a / b if a is not None and b else None

    @property
    def delivered_ratio(self) -> float | None:
        """The same ratio per stream-second actually delivered (frames that arrived)."""
        forwarding, baseline = self.path("forwarding"), self.path("baseline")
        if forwarding is None or baseline is None:
            return None
        a = baseline.cpu_per_delivered_stream_second
        b = forwarding.cpu_per_delivered_stream_second
        return a / b if a is not None and b else None

    def to_json(self) -> dict[str, Any]:
        return {
            "options": dataclasses.asdict(self.options),
            "media": self.media,
            "machine": self.machine,
            "paths": [p.to_json() for p in self.paths],
            "ratio_baseline_over_forwarding": self.ratio,
            "ratio_per_delivered_stream_second": self.delivered_ratio,
            "target_streams_per_core": TARGET_STREAMS_PER_CORE,
            "recording": None if self.recording is None else self.recording.to_json(),
            "recording_latency_ratios": {
                f"p{q}_over_{without}": self.recording_ratio(without, q)
                for q in (50, 99)
                for without in ("forwarding", "after")
            }
            if self.recording is not None
            else None,
            "attack": self.attack,
            "attack_latency_ratios": {
                f"p{q}_over_{without}": self.attack_ratio(without, q)
                for q in (50, 99)
                for without in ("forwarding", "after-attack")
            }
            if self.attack is not None
            else None,
        }
