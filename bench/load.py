"""Load bench: P publishers and N subscribers as aiortc bots against a server process.

    python -m bench.load --publishers 2 --subscribers 8 --seconds 20 [--baseline]
    urok bench -- --publishers 2 --subscribers 8 --seconds 20

By default the bench starts the server itself (`python -m signalling.cli
serve` on a free loopback port) and, with --baseline, afterwards the
MediaRelay baseline (`python -m bench.baseline serve`), one after the other
with the same bots and media. Each runs the same scenario:

1. a lesson is created through the journal API; everybody joins, then the
   publishers publish pre-encoded VP8 + Opus (bench/preencoded.py) one after
   the other (--late-join: subscribers join last, see docs/performance.md);
2. once every participant receives every other publisher's audio and video,
   a warm-up, then the measurement window: the server's CPU time is read from
   /proc/<pid>/stat at its start and end, and the bots log every packet;
3. everybody leaves, the lesson is ended, the server is stopped.

Everybody in a call receives everybody else, so publishers also receive each
other: forwarded streams = 2 * P * (N + P - 1) (one per published track and
receiving participant).

With --recording the forwarding server is measured three times in the same
run, with the same bots: a window without a recording, then the teacher bot
(a host) sends `recording_start`, and after --recording-warmup a window with
the recorder running (the recorder process, a child of the server, is found in
/proc and its CPU read like the server's), then `recording_stop`; once the
chat's `recording_ready` arrives, after the warm-up, a window without a
recording again (drift between the two shows the noise). The recording is
downloaded with the teacher's token and its video frames are counted.

With --attack (or `python -m bench.attack`, bench/attack.py) likewise: a
window without an attack, a window while an attacker process replays the
worst frames and bodies (issue 9), and a window after it; the report adds the
frames the server answered the attacker per second and its /healthz response
time in each window.

To measure a server that is already running, pass --server-url, --secret
(an integration secret of that server) and --server-pid (same machine; without
it CPU figures are n/a).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.attacker import AttackerProcess, HealthProbe, answered_between
from bench.bot import Bot, BotError
from bench.cli import publish_report, run_main, run_reported
from bench.measure import KINDS, LoopLag, ReceiveLog, SendLog, percentile, tally
from bench.preencoded import BenchMedia, PreEncodedTrack, prepare_media
from bench.server import (
    Journal,
    ServerProcess,
    cpu_times,
    find_child,
    machine_busy_seconds,
    rss_bytes,
)
from recording.process import cpu_seconds as recorder_cpu_seconds
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

TARGET_STREAMS_PER_CORE = 500
GRACE_SECONDS = 1.0  # after the window, for packets in flight and retransmissions
JOIN_CONCURRENCY = 4
RECORDER_MARKER = b"recording.worker"  # in the recorder process's command line
READY_TIMEOUT = 120.0  # from recording_stop to the chat's recording_ready
LABELS = {
    "forwarding": "forwarding (sfu/)",
    "recording": "recording on",
    "after": "after recording",
    "baseline": "baseline (MediaRelay)",
    "attack": "with the attack",
    "after-attack": "after the attack",
}
ATTACKER_IDS = "bench-attacker"  # + index: rostered students the attacker joins as


class BenchError(RuntimeError):
    pass


@dataclass
class Options:
    publishers: int = 2
    subscribers: int = 8
    seconds: float = 20.0
    warmup: float = 3.0
    baseline: bool = False
    baseline_only: bool = False
    server_url: str | None = None
    secret: str = DEMO_SECRET
    server_pid: int | None = None
    baseline_url: str | None = None
    baseline_pid: int | None = None
    width: int = 640
    height: int = 360
    fps: int = 30
    video_kbps: int = 500
    setup_timeout: float = 60.0
    late_join: bool = False
    bot_addresses: tuple[str, ...] = ("127.0.0.1",)
    json_path: str | None = None
    profile: str | None = None
    profile_native: bool = False
    quiet: bool = False
    recording: bool = False
    recording_warmup: float = 3.0
    # Publishers that also publish a microphone (the first ones); None: all of them.
    audio_publishers: int | None = None
    # Publishers receive nothing (they never answer the server's offers): only the
    # subscribers do.
    publish_only: bool = False
    # --attack: windows before, with and after an attack (bench/attacker.py).
    attack: bool = False
    attack_joined: int = 2
    attack_unjoined: int = 2
    attack_http: int = 1
    attack_rate: float = 0.0  # frames per second per connection; 0: as fast as answered
    attack_max_frames: int = 1_000_000
    attack_warmup: float = 1.0
    # UROK_* settings for the server the bench starts (--server-env KEY=VALUE).
    server_env: dict[str, str] = field(default_factory=dict)

    @property
    def participants(self) -> int:
        return self.publishers + self.subscribers

    @property
    def microphones(self) -> int:
        if self.audio_publishers is None:
            return self.publishers
        return min(self.audio_publishers, self.publishers)

    @property
    def receivers_per_track(self) -> int:
        return self.subscribers if self.publish_only else self.participants - 1

    @property
    def streams(self) -> int:
        return (self.publishers + self.microphones) * self.receivers_per_track


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


# --------------------------------------------------------------------------- running


def machine_info() -> dict[str, Any]:
    import aiortc

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "platform": platform.platform(),
    }


def _bench_cpu() -> float:
    times = os.times()
    return times.user + times.system


class _Participant:
    def __init__(self, bot: Bot, log: ReceiveLog, user_id: str, receives: bool = True) -> None:
        self.bot = bot
        self.log = log
        self.user_id = user_id
        self.receives = receives
        self.send_log: SendLog | None = None
        self.tracks: list[PreEncodedTrack] = []


class _PublishOnlyBot(Bot):
    """Never answers the server's subscribe offers: the server forwards it nothing."""

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] != "subscribe_offer":
            await super()._on_message(message)


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


@dataclass
class _Window:
    """One measurement window: its bounds and the CPU counters at both ends."""

    label: str
    t0: float
    t1: float
    server0: tuple[float, float] | None
    server1: tuple[float, float] | None
    bench_cpu: float
    recorder_cpu: float | None
    machine_cpu: float | None
    rss: int | None
    attacker_cpu: float | None = None


async def _measure(
    label: str,
    pid: int | None,
    options: Options,
    recorder_pid: int | None = None,
    attacker_pid: int | None = None,
) -> _Window:
    _say(options, f"[{label}] measuring for {options.seconds:g} s")
    recorder0, machine0 = _recorder_cpu(recorder_pid), machine_busy_seconds()
    attacker0 = _recorder_cpu(attacker_pid)
    t0, server0, bench0 = time.monotonic(), _server_cpu(pid), _bench_cpu()
    await asyncio.sleep(options.seconds)
    t1, server1, bench1 = time.monotonic(), _server_cpu(pid), _bench_cpu()
    recorder1, machine1 = _recorder_cpu(recorder_pid), machine_busy_seconds()
    attacker1 = _recorder_cpu(attacker_pid)
    recorder = None if recorder0 is None or recorder1 is None else recorder1 - recorder0
    machine = None if machine0 is None or machine1 is None else machine1 - machine0
    attacker = None if attacker0 is None or attacker1 is None else attacker1 - attacker0
    rss = rss_bytes(pid) if pid is not None else None
    return _Window(
        label, t0, t1, server0, server1, bench1 - bench0, recorder, machine, rss, attacker
    )


async def run_path(
    label: str,
    base_url: str,
    pid: int | None,
    media: BenchMedia,
    options: Options,
    profile_path: Path | None = None,
) -> tuple[list[PathReport], RecordingReport | None, dict[str, Any] | None]:
    """Run the scenario once against the server at `base_url` (its process is `pid`).

    One report per window: one, or three with --recording or --attack (forwarding only);
    and with --attack what the attacker sent and was answered.
    """
    match_payloads = label == "forwarding"
    lag = LoopLag()
    lag.start()
    participants: list[_Participant] = []
    lesson_id: str | None = None
    profiler: asyncio.Task[str] | None = None
    windows: list[_Window] = []
    recording: RecordingReport | None = None
    attacking = options.attack and label == "forwarding"
    attacker = AttackerProcess() if attacking else None
    health = HealthProbe(base_url) if attacking else None
    attack_stats: dict[str, Any] | None = None
    async with aiohttp.ClientSession() as http:
        journal = Journal(base_url, options.secret, http)
        try:
            started = time.monotonic()
            user_ids = [f"bench-p{i}" for i in range(options.publishers)] + [
                f"bench-s{i}" for i in range(options.subscribers)
            ]
            attacker_ids = [f"{ATTACKER_IDS}{i}" for i in range(options.attack_joined)]
            # The first publisher is the lesson's teacher: a host (it may record).
            lesson_id = await journal.create_lesson(
                user_ids[0], user_ids[1:] + (attacker_ids if attacking else [])
            )
            async with asyncio.timeout(options.setup_timeout):
                await _join_all(
                    journal, lesson_id, base_url, user_ids, media, options, participants
                )
                await _wait_for_media(participants, options)
                if attacker is not None:
                    # Its students join now, so every window has the same people in the call.
                    await attacker.start(
                        base_url,
                        options.secret,
                        [await journal.token(lesson_id, a, "student") for a in attacker_ids],
                        options.attack_unjoined,
                        options.attack_http,
                        options.attack_rate,
                        options.attack_max_frames,
                    )
            if health is not None:
                health.start(http)
            setup_seconds = time.monotonic() - started
            _say(
                options,
                f"[{label}] {len(participants)} participants connected and receiving "
                f"in {setup_seconds:.1f} s; warm-up {options.warmup:g} s",
            )
            await asyncio.sleep(options.warmup)

            if profile_path is not None and pid is not None:
                from bench import profile

                profiler = asyncio.ensure_future(
                    profile.record(pid, options.seconds, profile_path, options.profile_native)
                )
            attacker_pid = attacker.pid if attacker is not None else None
            windows.append(await _measure(label, pid, options, attacker_pid=attacker_pid))
            profile_text = None
            if profiler is not None:
                from bench import profile

                await profiler
                assert profile_path is not None
                profile_text = profile.summarize(profile_path)
            host = None
            if options.recording and label == "forwarding":
                host = next(p for p in participants if p.user_id == user_ids[0])
                recording = RecordingReport(warmup=options.recording_warmup)
                await _record(host, pid, options, windows, recording)
            if attacker is not None:
                attack_stats = await _attack(attacker, pid, options, windows)
            await asyncio.sleep(GRACE_SECONDS)
            if host is not None and recording is not None and recording.ready:
                await _inspect_recording(http, base_url, host.bot, recording)
        finally:
            if health is not None:
                await health.stop()
            if attacker is not None:
                await attacker.stop()
            if profiler is not None and not profiler.done():
                profiler.cancel()  # py-spy is killed with it
                with contextlib.suppress(BaseException):
                    await profiler
            await _leave_all(participants)
            if lesson_id is not None:
                with contextlib.suppress(Exception):
                    await journal.end_lesson(lesson_id)
            await lag.stop()

    publishers = {p.bot.id: p.send_log for p in participants if p.send_log is not None}
    receivers = {p.bot.id: p.log for p in participants if p.receives}
    wrapped = any(t.wrapped for p in participants for t in p.tracks if t.kind == "audio")
    reports = []
    for window in windows:
        report = _window_report(
            window, base_url, publishers, receivers, lag, match_payloads, setup_seconds
        )
        if window is windows[0]:
            report.profile = profile_text
        if wrapped:
            report.warnings.append(
                "the audio clip ran out and looped: audio loss/latency unreliable"
            )
        if attacking:
            _attack_figures(report, window, health, attack_stats)
        report.warnings.extend(_warnings(report))
        reports.append(report)
    if attacking and attack_stats is not None:
        # Kept for the report; the per-bucket counts were only for the windows.
        attack_stats = {k: v for k, v in attack_stats.items() if k != "buckets"}
    return reports, recording, attack_stats


def _window_report(
    window: _Window,
    base_url: str,
    publishers: dict[str, SendLog],
    receivers: dict[str, ReceiveLog],
    lag: LoopLag,
    match_payloads: bool,
    setup_seconds: float,
) -> PathReport:
    t0, t1 = window.t0, window.t1
    counted = tally(publishers, receivers, t0, t1, match_payloads)
    total = counted.total
    server_cpu = server_system = None
    if window.server0 is not None and window.server1 is not None:
        server_cpu = sum(window.server1) - sum(window.server0)
        server_system = window.server1[1] - window.server0[1]
    latencies_ms = [1000 * v for v in counted.latencies]
    p99_lag = percentile(lag.between(t0, t1), 99)
    return PathReport(
        label=window.label,
        server=base_url,
        streams=total.streams,
        streams_by_kind={k: counted.kinds[k].streams for k in KINDS},
        window=t1 - t0,
        server_cpu=server_cpu,
        server_system_cpu=server_system,
        bench_cpu=window.bench_cpu,
        server_rss_mb=None if window.rss is None else window.rss / 2**20,
        packets_expected=total.packets_expected,
        packets_received=total.packets_received,
        loss=total.loss if match_payloads else None,
        loss_by_kind={k: counted.kinds[k].loss if match_payloads else None for k in KINDS},
        frames_delivered_by_kind={k: counted.kinds[k].frames_delivered for k in KINDS},
        latency_p50_ms=percentile(latencies_ms, 50),
        latency_p99_ms=percentile(latencies_ms, 99),
        latency_samples=len(latencies_ms),
        latency_by_kind_ms={
            kind: (
                percentile((1000 * v for v in counted.latencies_by_kind[kind]), 50),
                percentile((1000 * v for v in counted.latencies_by_kind[kind]), 99),
            )
            for kind in KINDS
        },
        loop_lag_p99_ms=None if p99_lag is None else 1000 * p99_lag,
        setup_seconds=setup_seconds,
        recorder_cpu=window.recorder_cpu,
        machine_cpu=window.machine_cpu,
        attacker_cpu=window.attacker_cpu,
    )


# --------------------------------------------------------------------------- attack


async def _attack(
    attacker: AttackerProcess, pid: int | None, options: Options, windows: list[_Window]
) -> dict[str, Any]:
    """The attack window, then the window after it; what the attacker sent and got."""
    # The attack covers its warm-up, the window and a margin: it stops by itself.
    duration = options.attack_warmup + options.seconds + 1.0
    _say(options, f"[attack] replaying the worst frames for {duration:g} s")
    await attacker.go(duration)
    await asyncio.sleep(options.attack_warmup)
    windows.append(await _measure("attack", pid, options, attacker_pid=attacker.pid))
    stats = await attacker.stats(timeout=duration + 60)
    _say(
        options,
        f"[attack] {stats['frames_answered']} of {stats['frames_sent']} frames and "
        f"{stats['requests_answered']} of {stats['requests_sent']} requests answered; "
        f"warm-up {options.warmup:g} s",
    )
    await asyncio.sleep(options.warmup)
    windows.append(await _measure("after-attack", pid, options, attacker_pid=attacker.pid))
    return stats


def _attack_figures(
    report: PathReport,
    window: _Window,
    health: HealthProbe | None,
    stats: dict[str, Any] | None,
) -> None:
    report.attack_answered = answered_between(stats, window.t0, window.t1)
    if health is not None:
        samples = [1000 * v for v in health.between(window.t0, window.t1)]
        report.healthz_samples = len(samples)
        report.healthz_p50_ms = percentile(samples, 50)
        report.healthz_p99_ms = percentile(samples, 99)
        report.healthz_max_ms = max(samples) if samples else None


# --------------------------------------------------------------------------- recording


def _is_recording_done(message: dict[str, Any]) -> bool:
    if message.get("type") != "chat_message":
        return False
    data = message.get("message", {}).get("data") or {}
    return data.get("event") in ("recording_ready", "recording_failed")


async def _record(
    host: _Participant,
    pid: int | None,
    options: Options,
    windows: list[_Window],
    report: RecordingReport,
) -> None:
    """Start a recording, measure a window with it, stop it, wait for the file, measure again."""
    bot = host.bot
    _say(options, f"[recording] {host.user_id} starts a recording")
    reply = await bot.request(
        {"type": "recording_start", "title": "Load bench"},
        lambda m: m["type"] == "recording" and m.get("recording") is not None,
        timeout=30,
    )
    started = time.monotonic()
    if reply["type"] == "error":
        raise BenchError(f"recording_start refused: {reply.get('code')}: {reply.get('message')}")
    report.recording_id = reply["recording"]["id"]
    if pid is not None:
        while report.recorder_pid is None and time.monotonic() - started < 10:
            report.recorder_pid = find_child(pid, RECORDER_MARKER)
            if report.recorder_pid is None:
                await asyncio.sleep(0.05)
        if report.recorder_pid is None:
            raise BenchError(f"no recorder process ({RECORDER_MARKER.decode()}) under pid {pid}")
    _say(
        options,
        f"[recording] recorder pid {report.recorder_pid}; warm-up {options.recording_warmup:g} s",
    )
    await asyncio.sleep(options.recording_warmup)
    windows.append(await _measure("recording", pid, options, report.recorder_pid))
    report.recorder_cpu = _recorder_cpu(report.recorder_pid)
    done = bot.wait_for(_is_recording_done, READY_TIMEOUT)
    try:
        reply = await bot.request(
            {"type": "recording_stop"},
            lambda m: m["type"] == "recording" and m.get("recording") is None,
            timeout=30,
        )
        stopped = time.monotonic()
        report.wall_seconds = stopped - started
        if reply["type"] == "error":
            raise BenchError(f"recording_stop refused: {reply.get('code')}: {reply.get('message')}")
        _say(options, "[recording] stopped; waiting for recording_ready")
        try:
            message = await done
        except BotError:
            report.error = f"no recording_ready within {READY_TIMEOUT:g} s of the stop"
        else:
            report.ready_seconds = time.monotonic() - stopped
            data = message["message"]["data"]
            if data.get("event") == "recording_ready":
                report.ready = True
                report.duration_s = data.get("duration_s")
                report.size_bytes = data.get("size_bytes")
                report.complete = data.get("complete")
                report.url = data.get("url")
            else:
                report.failed = True
                report.error = "recording_failed"
    finally:
        if not done.done():
            done.cancel()
    if report.recorder_pid is not None:
        report.recorder_exited = _recorder_cpu(report.recorder_pid) is None
    _say(options, f"[after] warm-up {options.warmup:g} s")
    await asyncio.sleep(options.warmup)
    windows.append(await _measure("after", pid, options))


async def _inspect_recording(
    http: aiohttp.ClientSession, base_url: str, bot: Bot, report: RecordingReport
) -> None:
    """Download the file as the teacher would and count its video frames (no decoding)."""
    if not report.url:
        return
    try:
        async with http.get(f"{base_url}{report.url}?token={bot.token}") as response:
            if response.status != 200:
                report.error = f"GET {report.url}: {response.status}"
                return
            data = await response.read()
        probed = await asyncio.to_thread(_probe_mp4, data)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        report.error = f"cannot read the recording: {type(exc).__name__}: {exc}"
        return
    report.width, report.height, report.fps, report.video_frames = probed


def _probe_mp4(data: bytes) -> tuple[int, int, float | None, int]:
    import io

    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        times = sorted(
            float(packet.pts * packet.time_base)
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        )
        width, height = stream.codec_context.width, stream.codec_context.height
    # The frame rate from the shortest step between frames: skipped frames leave gaps, so
    # the file's average rate would be too low.
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    fps = round(1 / min(steps), 3) if steps else None
    return width, height, fps, len(times)


def _recorder_cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return recorder_cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None  # it has exited


def _server_cpu(pid: int | None) -> tuple[float, float] | None:
    if pid is None:
        return None
    try:
        return cpu_times(pid)
    except OSError as exc:
        raise BenchError(f"cannot read CPU time of server pid {pid}: {exc}") from exc


def _warnings(report: PathReport) -> list[str]:
    out = []
    cores = os.cpu_count() or 1
    if report.streams == 0:
        out.append("no forwarded streams")
    server_cores = report.server_cores
    if server_cores is not None and report.label != "baseline" and server_cores > 0.9:
        out.append(
            f"the server used {server_cores:.2f} cores: its one event-loop thread is "
            "saturated, so this measures its ceiling"
        )
    if report.bench_cores > 0.85:
        out.append(
            f"the bench process used {report.bench_cores:.2f} cores (one event loop): "
            "loss and latency may come from the bots, not the server"
        )
    if server_cores is not None:
        used = server_cores + report.bench_cores + (report.recorder_cores or 0)
        if used > 0.9 * cores:
            who = "server + bench + recorder" if report.recorder_cores else "server + bench"
            out.append(f"{who} used {used:.2f} of {cores} cores: the machine was saturated")
    if report.other_cores is not None and report.other_cores > 0.2:
        out.append(
            f"other processes used {report.other_cores:.2f} cores meanwhile: "
            "the figures are disturbed"
        )
    if report.loop_lag_p99_ms is not None and report.loop_lag_p99_ms > 20:
        out.append(
            f"the bench's event loop ran up to {report.loop_lag_p99_ms:.0f} ms late "
            "(p99): latency figures include that"
        )
    for kind, delivered in report.frames_delivered_by_kind.items():
        if delivered is not None and delivered < 0.95:
            out.append(f"only {100 * delivered:.1f} % of {kind} frames arrived")
    return out


async def _join_all(
    journal: Journal,
    lesson_id: str,
    base_url: str,
    user_ids: list[str],
    media: BenchMedia,
    options: Options,
    participants: list[_Participant],
) -> None:
    publishers = set(user_ids[: options.publishers])

    async def join(user_id: str, role: str) -> _Participant:
        token = await journal.token(lesson_id, user_id, role)
        log = ReceiveLog()
        receives = not (options.publish_only and user_id in publishers)
        bot = (Bot if receives else _PublishOnlyBot)(
            base_url, token, decode=False, on_packet=log.on_packet
        )
        log.connection = lambda: bot.subscriber
        participant = _Participant(bot, log, user_id, receives)
        participants.append(participant)  # before connecting: cleanup must see it
        await bot.connect()
        return participant

    async def publish(participant: _Participant, microphone: bool = True) -> None:
        tracks = [(PreEncodedTrack(media.audio), "microphone")] if microphone else []
        tracks.append((PreEncodedTrack(media.video), "camera"))
        participant.tracks = [track for track, _ in tracks]
        await participant.bot.publish(list(tracks))
        assert participant.bot.publisher is not None
        participant.send_log = SendLog()
        participant.send_log.install(participant.bot.publisher)

    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join_limited(user_id: str, role: str) -> _Participant:
        async with limit:
            return await join(user_id, role)

    roles = ["teacher"] + ["student"] * (len(user_ids) - 1)
    if options.late_join:
        # Publishers join and publish one by one, then subscribers join a few at
        # a time, each getting one offer with every track (as in a real lesson).
        for index, (user_id, role) in enumerate(
            zip(user_ids[: options.publishers], roles, strict=False)
        ):
            await publish(await join(user_id, role), index < options.microphones)
        await asyncio.gather(*(join_limited(u, "student") for u in user_ids[options.publishers :]))
        return
    # Everybody joins first, then publishers publish one at a time, each once the
    # previous one reaches everybody: every offer then adds at most one m-section
    # per kind (see the note on BUNDLE in docs/performance.md).
    joined = await asyncio.gather(
        *(join_limited(u, r) for u, r in zip(user_ids, roles, strict=True))
    )
    for index, participant in enumerate(joined[: options.publishers]):
        await publish(participant, index < options.microphones)
        await _wait_for_media(participants, options, [participant.bot.id])


async def _wait_for_media(
    participants: list[_Participant], options: Options, publisher_ids: list[str] | None = None
) -> None:
    """Until every participant receives every (other) publisher's audio and video."""
    if publisher_ids is None:
        publisher_ids = [p.bot.id for p in participants if p.send_log is not None]
    kinds = {p.bot.id: [t.kind for t in p.tracks] for p in participants if p.tracks}
    while True:
        missing = [
            (p.user_id, pub, kind)
            for p in participants
            if p.receives
            for pub in publisher_ids
            if pub != p.bot.id
            for kind in kinds.get(pub, KINDS)
            if p.bot.packet_counts.get((pub, kind), 0) == 0
        ]
        if not missing:
            return
        try:
            await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            _say(
                options,
                f"still missing media for {len(missing)} (receiver, publisher, kind), "
                f"e.g. {missing[:3]}",
            )
            raise


async def _leave_all(participants: list[_Participant]) -> None:
    async def leave(participant: _Participant) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(participant.bot.leave(), 15)

    await asyncio.gather(*(leave(p) for p in participants))


async def _managed_path(
    label: str, module: str, media: BenchMedia, options: Options, logs: Path
) -> tuple[list[PathReport], RecordingReport | None, dict[str, Any] | None]:
    # Its files (recordings) go into the bench's temporary directory, removed afterwards.
    server = ServerProcess(
        module, logs / f"{label}.log", data_dir=logs / f"{label}-data", env=options.server_env
    )
    try:
        _say(options, f"[{label}] starting {module} on {server.base_url}")
        await server.start()
        profile_path = Path(options.profile) if options.profile and label == "forwarding" else None
        try:
            reports, recording, attack = await run_path(
                label, server.base_url, server.pid, media, options, profile_path
            )
        except Exception as exc:
            tail = server.log_tail()
            raise BenchError(
                f"[{label}] {type(exc).__name__}: {exc}\nserver log tail:\n{tail}"
            ) from exc
        if not server.running:
            raise BenchError(f"[{label}] the server exited during the run:\n{server.log_tail()}")
        for report in reports:
            report.server = f"{module} (pid {server.pid})"
        if recording is not None:
            recording.log_lines = _recording_log_lines(server.log_path)
        return reports, recording, attack
    finally:
        await server.stop()


def _recording_log_lines(path: Path, limit: int = 20) -> list[str]:
    """Warnings and errors in the server's log (the recorder's too) that mention recording."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = [
        line
        for line in text.splitlines()
        if ("WARNING" in line or "ERROR" in line) and "record" in line.lower()
    ]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


async def run_bench(options: Options) -> BenchReport:
    restrict_host_addresses(list(options.bot_addresses))
    # Audio must not loop during a run (payloads identify packets): cover the worst case.
    audio_seconds = options.setup_timeout + options.warmup + options.seconds + GRACE_SECONDS + 10
    if options.recording:  # two more windows, the recorder's warm-up, the file being finished
        audio_seconds += options.recording_warmup + options.warmup + 2 * options.seconds + 30
    if options.attack:  # two more windows, the attack's warm-up and margin
        audio_seconds += options.attack_warmup + options.warmup + 2 * options.seconds + 10
    media = await asyncio.to_thread(
        prepare_media,
        audio_seconds=audio_seconds,
        width=options.width,
        height=options.height,
        fps=options.fps,
        video_bitrate=options.video_kbps * 1000,
    )
    _say(options, f"media: {media.describe()}")
    paths: list[PathReport] = []
    recording: RecordingReport | None = None
    attack: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="urok-bench-") as tmp:
        logs = Path(tmp)
        if not options.baseline_only:
            if options.server_url:
                reports, recording, attack = await run_path(
                    "forwarding",
                    options.server_url,
                    options.server_pid,
                    media,
                    options,
                    Path(options.profile) if options.profile else None,
                )
            else:
                reports, recording, attack = await _managed_path(
                    "forwarding", "signalling.cli", media, options, logs
                )
            paths.extend(reports)
        if options.baseline or options.baseline_only:
            if options.baseline_url:
                reports, _, _ = await run_path(
                    "baseline", options.baseline_url, options.baseline_pid, media, options
                )
            elif options.server_url:
                raise BenchError("--baseline with --server-url needs --baseline-url too")
            else:
                reports, _, _ = await _managed_path(
                    "baseline", "bench.baseline", media, options, logs
                )
            paths.extend(reports)
    return BenchReport(options, media.describe(), machine_info(), paths, recording, attack)


# --------------------------------------------------------------------------- report


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + unit


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def format_report(report: BenchReport) -> str:
    options = report.options
    machine = report.machine
    tracks = (
        "2 x P"
        if options.microphones == options.publishers
        else (f"(P + {options.microphones} microphones)")
    )
    receivers = "N" if options.publish_only else "(N + P - 1)"
    streams = f"forwarded streams = {tracks} x {receivers} = {options.streams}"
    who = "subscriber" if options.publish_only else "participant"
    lines = [
        f"Urok load bench: {options.publishers} publishers, {options.subscribers} subscribers, "
        f"{options.seconds:g} s window after {options.warmup:g} s warm-up",
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"aiortc {machine['aiortc']}",
        f"media per publisher: {report.media}",
        f"{streams} (every {who} receives every other publisher's audio and video)",
        "",
    ]
    rows: list[tuple[str, list[str]]] = [
        ("forwarded streams", [str(p.streams) for p in report.paths]),
        ("window (s)", [f"{p.window:.1f}" for p in report.paths]),
        ("server CPU (s)", [_num(p.server_cpu, ".2f") for p in report.paths]),
        ("  of it in the kernel (s)", [_num(p.server_system_cpu, ".2f") for p in report.paths]),
        ("server CPU (cores)", [_num(p.server_cores, ".2f") for p in report.paths]),
        ("CPU s per stream-second", [_num(p.cpu_per_stream_second, ".5f") for p in report.paths]),
        ("streams per core", [_num(p.streams_per_core, ".0f") for p in report.paths]),
        (
            "CPU s per delivered stream-s",
            [_num(p.cpu_per_delivered_stream_second, ".5f") for p in report.paths],
        ),
        (
            "packets expected/received",
            [
                f"{p.packets_expected}/{p.packets_received}" if p.loss is not None else "n/a"
                for p in report.paths
            ],
        ),
        (
            "packet loss",
            [_pct(p.loss, 3) if p.loss is not None else "n/a (re-encoded)" for p in report.paths],
        ),
        (
            "frames delivered audio",
            [_pct(p.frames_delivered_by_kind["audio"], 1) for p in report.paths],
        ),
        (
            "frames delivered video",
            [_pct(p.frames_delivered_by_kind["video"], 1) for p in report.paths],
        ),
        ("added latency p50 (ms)", [_num(p.latency_p50_ms, ".1f") for p in report.paths]),
        ("added latency p99 (ms)", [_num(p.latency_p99_ms, ".1f") for p in report.paths]),
        (
            "  audio / video p99 (ms)",
            [
                f"{_num(p.latency_by_kind_ms['audio'][1], '.1f')} / "
                f"{_num(p.latency_by_kind_ms['video'][1], '.1f')}"
                if p.latency_samples
                else "n/a"
                for p in report.paths
            ],
        ),
        ("server RSS (MB)", [_num(p.server_rss_mb, ".0f") for p in report.paths]),
        *(
            [("recorder CPU (cores)", [_num(p.recorder_cores, ".2f") for p in report.paths])]
            if report.recording is not None
            else []
        ),
        *(_attack_rows(report) if report.attack is not None else []),
        ("bench CPU (cores)", [f"{p.bench_cores:.2f}" for p in report.paths]),
        ("other processes (cores)", [_num(p.other_cores, ".2f") for p in report.paths]),
        ("bench loop lag p99 (ms)", [_num(p.loop_lag_p99_ms, ".1f") for p in report.paths]),
        ("setup (s)", [f"{p.setup_seconds:.1f}" for p in report.paths]),
    ]
    headers = [LABELS.get(p.label, p.label) for p in report.paths]
    width = max(len(name) for name, _ in rows) + 2
    col = max(22, *(len(h) + 2 for h in headers))
    lines.append("".ljust(width) + "".join(h.ljust(col) for h in headers))
    for name, values in rows:
        lines.append(name.ljust(width) + "".join(v.ljust(col) for v in values))
    forwarding = report.path("forwarding")
    if forwarding is not None and forwarding.streams_per_core is not None:
        share = forwarding.streams_per_core / TARGET_STREAMS_PER_CORE
        lines.append("")
        lines.append(
            f"forwarding: {forwarding.streams_per_core:.0f} streams per core = "
            f"{100 * share:.0f} % of the target {TARGET_STREAMS_PER_CORE}"
        )
    if report.ratio is not None:
        lines.append(f"baseline / forwarding CPU per stream-second: {report.ratio:.1f}x (same run)")
        baseline = report.path("baseline")
        video = baseline.frames_delivered_by_kind.get("video") if baseline else None
        if report.delivered_ratio is not None and video is not None and video < 0.95:
            lines.append(
                f"  the baseline could not keep up ({100 * video:.0f} % of video frames "
                "arrived), so that is a lower bound; per stream-second delivered: "
                f"{report.delivered_ratio:.1f}x"
            )
    if report.recording is not None:
        lines.append("")
        lines.extend(_format_recording(report))
    if report.attack is not None:
        lines.append("")
        lines.extend(_format_attack(report))
    for path in report.paths:
        for warning in path.warnings:
            lines.append(f"warning [{path.label}]: {warning}")
    if any(p.label == "baseline" for p in report.paths):
        lines.append(
            "note: the baseline re-encodes, so its payloads cannot be matched to the "
            "publishers': packet loss and latency are n/a there; frames delivered "
            "compare both paths."
        )
    for path in report.paths:
        if path.profile:
            lines.append("")
            lines.append(f"[{path.label}] {path.profile}")
    return "\n".join(lines)


def _attack_rows(report: BenchReport) -> list[tuple[str, list[str]]]:
    return [
        ("attacker CPU (cores)", [_num(p.attacker_cores, ".2f") for p in report.paths]),
        (
            "attack answers per second",
            [_num(p.attack_answered_per_second, ".1f") for p in report.paths],
        ),
        (
            "/healthz p50 / p99 / max (ms)",
            [
                f"{_num(p.healthz_p50_ms, '.1f')} / {_num(p.healthz_p99_ms, '.1f')} / "
                f"{_num(p.healthz_max_ms, '.1f')}"
                for p in report.paths
            ],
        ),
    ]


def _format_attack(report: BenchReport) -> list[str]:
    attack = report.attack
    assert attack is not None
    options = report.options
    rate = "as fast as answered" if not options.attack_rate else f"{options.attack_rate:g}/s each"
    lines = [
        f"attack: {options.attack_joined} joined + {options.attack_unjoined} unjoined WebSocket "
        f"connections and {options.attack_http} HTTP client(s), {rate}, for "
        f"{attack['seconds']:.1f} s: {attack['frames_answered']} of {attack['frames_sent']} "
        f"frames and {attack['requests_answered']} of {attack['requests_sent']} requests "
        f"answered; reconnects {attack['reconnects']}",
        f"  answer time p50 / p99 / max: {_num(attack['reply_p50_ms'], '.1f')} / "
        f"{_num(attack['reply_p99_ms'], '.1f')} / {_num(attack['reply_max_ms'], '.1f')} ms",
        "  answers: "
        + ", ".join(f"{k} {v}" for k, v in sorted(attack["answers"].items(), key=lambda x: -x[1])),
    ]
    before, on, after = (report.path(n) for n in ("forwarding", "attack", "after-attack"))
    if before is not None and on is not None:
        for q in (99, 50):
            values = " / ".join(
                _num(getattr(p, f"latency_p{q}_ms"), ".1f") for p in (before, on, after) if p
            )
            a, b = report.attack_ratio("forwarding", q), report.attack_ratio("after-attack", q)
            lines.append(
                f"  added latency p{q} before / with / after the attack: {values} ms; "
                f"with / without = {_num(a, '.2f')}x (vs before), {_num(b, '.2f')}x (vs after)"
            )
        cpu = " / ".join(_num(p.server_cores, ".2f") for p in (before, on, after) if p)
        lines.append(f"  server CPU before / with / after: {cpu} cores")
    for failure in attack.get("failures", [])[:5]:
        lines.append(f"  attacker problem: {failure}")
    return lines


def _format_recording(report: BenchReport) -> list[str]:
    recording = report.recording
    assert recording is not None
    on, off, after = report.path("recording"), report.path("forwarding"), report.path("after")

    def ratio(without: str, q: int) -> str:
        value = report.recording_ratio(without, q)
        return "n/a" if value is None else f"{value:.2f}x"

    lines = [
        f"recording {recording.recording_id}: the window began {recording.warmup:g} s after "
        f"recording_start; recorder pid {_num(recording.recorder_pid, 'd')}",
    ]
    if on is not None:
        lines.append(
            f"  recorder CPU: {_num(on.recorder_cores, '.2f')} cores in the window, "
            f"{_num(recording.recorder_cores, '.2f')} from its start to the stop "
            f"({_num(recording.recorder_cpu, '.1f')} s over {_num(recording.wall_seconds, '.1f')}"
            " s, start-up included)"
        )
    if on is not None and off is not None:
        for q in (99, 50):
            values = " / ".join(
                _num(getattr(p, f"latency_p{q}_ms"), ".1f") for p in (off, on, after) if p
            )
            lines.append(
                f"  added latency p{q} before / with / after the recording: {values} ms; "
                f"with / without = {ratio('forwarding', q)} (vs before), "
                f"{ratio('after', q)} (vs after)"
            )
        cpu = " / ".join(_num(p.server_cores, ".2f") for p in (off, on, after) if p)
        lines.append(f"  server CPU before / with / after: {cpu} cores")
    if recording.ready:
        size = "n/a" if recording.size_bytes is None else f"{recording.size_bytes / 1e6:.1f} MB"
        lines.append(
            f"  recording_ready {_num(recording.ready_seconds, '.1f')} s after the stop: "
            f"{_num(recording.duration_s, '.1f')} s (wall {_num(recording.wall_seconds, '.1f')} s)"
            f", {size}, {'complete' if recording.complete else 'NOT complete'}"
        )
        if recording.video_frames is not None:
            lines.append(
                f"  file: {recording.width}x{recording.height} at {_num(recording.fps, 'g')} fps,"
                f" {recording.video_frames} of {_num(recording.frames_expected, 'd')} video "
                f"frames ({_num(recording.frames_skipped, 'd')} skipped for lack of CPU)"
            )
    else:
        lines.append("  recording_ready did NOT arrive")
    if recording.recorder_exited is False:
        lines.append("  the recorder process was still running after recording_ready")
    if recording.error:
        lines.append(f"  problem: {recording.error}")
    for line in recording.log_lines:
        lines.append(f"  server log: {line}")
    return lines


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Load-test the SFU with aiortc bots sending pre-encoded media.",
    )
    parser.add_argument("--publishers", "-p", type=int, default=2)
    parser.add_argument("--subscribers", "-n", type=int, default=8)
    parser.add_argument(
        "--seconds", "-s", type=float, default=20.0, help="measurement window (default 20)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds between 'all media flowing' and the window (default 3)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the MediaRelay (decode + re-encode) baseline server",
    )
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-url", help="measure this running server instead")
    parser.add_argument(
        "--secret",
        default=DEMO_SECRET,
        help="integration secret of --server-url (default: the demo secret)",
    )
    parser.add_argument("--server-pid", type=int, help="pid of --server-url (for its CPU time)")
    parser.add_argument("--baseline-url", help="a running `python -m bench.baseline serve`")
    parser.add_argument("--baseline-pid", type=int)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--video-kbps", type=int, default=500)
    parser.add_argument("--setup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--late-join",
        action="store_true",
        help="subscribers join after every publisher published (one offer "
        "with all tracks each; see docs/performance.md)",
    )
    parser.add_argument(
        "--bot-address",
        action="append",
        help="address bots gather ICE candidates on (default 127.0.0.1)",
    )
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    parser.add_argument(
        "--profile",
        help="record the forwarding server with py-spy during the "
        "window into this file (raw stacks) and print a summary",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: also sample C frames (py-spy --native; stops the server per sample)",
    )
    parser.add_argument(
        "--recording",
        action="store_true",
        help="also measure with a recording running: windows without, with and again "
        "without one, in the same run (the teacher bot records; see docs/performance.md)",
    )
    parser.add_argument(
        "--recording-warmup",
        type=float,
        default=3.0,
        help="seconds between recording_start and its window (default 3)",
    )
    parser.add_argument(
        "--audio-publishers",
        type=int,
        help="only the first K publishers publish a microphone, the others only a camera "
        "(default: all)",
    )
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="publishers receive nothing (their bots never answer the server's offers); "
        "only the subscribers receive",
    )
    parser.add_argument(
        "--attack",
        action="store_true",
        help="also measure during an attack: windows before, with and after an attacker "
        "replays the worst frames and bodies (bench/attacker.py; see docs/performance.md)",
    )
    parser.add_argument(
        "--attack-joined", type=int, default=2, help="attacker connections joined as students"
    )
    parser.add_argument(
        "--attack-unjoined", type=int, default=2, help="attacker connections that never join"
    )
    parser.add_argument("--attack-http", type=int, default=1, help="attacking HTTP clients")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a UROK_* setting for the server the bench starts (repeatable), e.g. "
        "UROK_LIMITS_PACE_LOOPBACK=1",
    )
    parser.add_argument(
        "--attack-rate",
        type=float,
        default=0.0,
        help="frames or requests a second per attacker connection (default 0: as fast as "
        "the server answers)",
    )
    parser.add_argument(
        "--attack-max-frames",
        type=int,
        default=1_000_000,
        help="the attacker stops after this many frames and requests (default 1000000)",
    )
    parser.add_argument(
        "--attack-warmup",
        type=float,
        default=1.0,
        help="seconds between the attack's start and its window (default 1)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    options = Options(
        publishers=args.publishers,
        subscribers=args.subscribers,
        seconds=args.seconds,
        warmup=args.warmup,
        baseline=args.baseline,
        baseline_only=args.baseline_only,
        server_url=args.server_url.rstrip("/") if args.server_url else None,
        secret=args.secret,
        server_pid=args.server_pid,
        baseline_url=args.baseline_url.rstrip("/") if args.baseline_url else None,
        baseline_pid=args.baseline_pid,
        width=args.width,
        height=args.height,
        fps=args.fps,
        video_kbps=args.video_kbps,
        setup_timeout=args.setup_timeout,
        late_join=args.late_join,
        bot_addresses=tuple(args.bot_address or ["127.0.0.1"]),
        json_path=args.json_path,
        profile=args.profile,
        profile_native=args.profile_native,
        quiet=args.quiet,
        recording=args.recording,
        recording_warmup=args.recording_warmup,
        audio_publishers=args.audio_publishers,
        publish_only=args.publish_only,
        attack=args.attack,
        attack_joined=args.attack_joined,
        attack_unjoined=args.attack_unjoined,
        attack_http=args.attack_http,
        attack_rate=args.attack_rate,
        attack_max_frames=args.attack_max_frames,
        attack_warmup=args.attack_warmup,
        server_env=dict(item.partition("=")[::2] for item in args.server_env),
    )
    problems = []
    if any(not key.startswith("UROK_") for key in options.server_env):
        problems.append("--server-env takes UROK_* settings only")
    if not 1 <= options.publishers <= 50:
        problems.append("--publishers must be 1..50")
    if not 0 <= options.subscribers <= 400:
        problems.append("--subscribers must be 0..400")
    if options.participants < 2:
        problems.append("need at least two participants")
    if not 1 <= options.seconds <= 600:
        problems.append("--seconds must be 1..600")
    if not 0 <= options.warmup <= 60:
        problems.append("--warmup must be 0..60")
    if not 5 <= options.setup_timeout <= 600:
        problems.append("--setup-timeout must be 5..600")
    if not (16 <= options.width <= 1920 and 16 <= options.height <= 1080):
        problems.append("video size must be within 16x16..1920x1080")
    if not 1 <= options.fps <= 60 or not 50 <= options.video_kbps <= 5000:
        problems.append("--fps must be 1..60 and --video-kbps 50..5000")
    if not 0 <= options.recording_warmup <= 60:
        problems.append("--recording-warmup must be 0..60")
    if options.audio_publishers is not None and not 0 <= options.audio_publishers:
        problems.append("--audio-publishers must be 0 or more")
    if options.publish_only and options.subscribers < 1:
        problems.append("--publish-only needs at least one subscriber")
    if options.recording and options.baseline_only:
        problems.append("--recording needs the forwarding server (not --baseline-only)")
    if options.attack and (options.recording or options.baseline_only):
        problems.append("--attack needs the forwarding server and no --recording")
    if not (0 <= options.attack_joined <= 20 and 0 <= options.attack_unjoined <= 20):
        problems.append("--attack-joined and --attack-unjoined must be 0..20")
    if not 0 <= options.attack_http <= 20:
        problems.append("--attack-http must be 0..20")
    if options.attack and options.attack_joined + options.attack_unjoined + options.attack_http < 1:
        problems.append("--attack needs at least one attacker connection")
    if not 0 <= options.attack_rate <= 10_000:
        problems.append("--attack-rate must be 0..10000")
    if not 1 <= options.attack_max_frames <= 10_000_000:
        problems.append("--attack-max-frames must be 1..10000000")
    if not 0 <= options.attack_warmup <= 60:
        problems.append("--attack-warmup must be 0..60")
    if problems:
        parser.error("; ".join(problems))
    return options


async def main(argv: list[str] | None = None) -> int:
    """`urok bench` / `python -m bench.load`: run, print the report, return an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]  # `urok bench -- --publishers 4 ...`
    try:
        options = parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    report = await run_reported(lambda: run_bench(options), "bench", (BenchError,))
    if isinstance(report, int):
        return report
    await publish_report(format_report(report), report.to_json(), options.json_path)
    return 0


if __name__ == "__main__":
    run_main(main)
