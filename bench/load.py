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

To measure a server that is already running, pass --server-url, --secret
(an integration secret of that server) and --server-pid (same machine; without
it CPU figures are n/a).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot
from bench.cli import run_reported
from bench.measure import KINDS, LoopLag, ReceiveLog, SendLog, percentile, tally
from bench.preencoded import BenchMedia, PreEncodedTrack, prepare_media
from bench.server import Journal, ServerProcess, cpu_times, rss_bytes
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

TARGET_STREAMS_PER_CORE = 500
GRACE_SECONDS = 1.0  # after the window, for packets in flight and retransmissions
JOIN_CONCURRENCY = 4


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

    @property
    def participants(self) -> int:
        return self.publishers + self.subscribers

    @property
    def streams(self) -> int:
        return 2 * self.publishers * (self.participants - 1)


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

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(
            cpu_per_stream_second=self.cpu_per_stream_second,
            streams_per_core=self.streams_per_core,
            server_cores=self.server_cores,
            bench_cores=self.bench_cores,
            cpu_per_delivered_stream_second=self.cpu_per_delivered_stream_second,
        )
        return out


@dataclass
class BenchReport:
    options: Options
    media: str
    machine: dict[str, Any]
    paths: list[PathReport]

    def path(self, label: str) -> PathReport | None:
        return next((p for p in self.paths if p.label == label), None)

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
    def __init__(self, bot: Bot, log: ReceiveLog, user_id: str) -> None:
        self.bot = bot
        self.log = log
        self.user_id = user_id
        self.send_log: SendLog | None = None
        self.tracks: list[PreEncodedTrack] = []


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


async def run_path(
    label: str,
    base_url: str,
    pid: int | None,
    media: BenchMedia,
    options: Options,
    profile_path: Path | None = None,
) -> PathReport:
    """Run the scenario once against the server at `base_url` (its process is `pid`)."""
    match_payloads = label == "forwarding"
    lag = LoopLag()
    lag.start()
    participants: list[_Participant] = []
    lesson_id: str | None = None
    profiler: asyncio.Task[str] | None = None
    async with aiohttp.ClientSession() as http:
        journal = Journal(base_url, options.secret, http)
        try:
            started = time.monotonic()
            user_ids = [f"bench-p{i}" for i in range(options.publishers)] + [
                f"bench-s{i}" for i in range(options.subscribers)
            ]
            lesson_id = await journal.create_lesson(user_ids[0], user_ids[1:])
            async with asyncio.timeout(options.setup_timeout):
                await _join_all(
                    journal, lesson_id, base_url, user_ids, media, options, participants
                )
                await _wait_for_media(participants, options)
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
            _say(options, f"[{label}] measuring for {options.seconds:g} s")
            t0, server0, bench0 = time.monotonic(), _server_cpu(pid), _bench_cpu()
            await asyncio.sleep(options.seconds)
            t1, server1, bench1 = time.monotonic(), _server_cpu(pid), _bench_cpu()
            rss = rss_bytes(pid) if pid is not None else None
            await asyncio.sleep(GRACE_SECONDS)
            profile_text = None
            if profiler is not None:
                from bench import profile

                await profiler
                assert profile_path is not None
                profile_text = profile.summarize(profile_path)
        finally:
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
    receivers = {p.bot.id: p.log for p in participants}
    counted = tally(publishers, receivers, t0, t1, match_payloads)
    total = counted.total
    window = t1 - t0
    server_cpu = server_system = None
    if server0 is not None and server1 is not None:
        server_cpu = sum(server1) - sum(server0)
        server_system = server1[1] - server0[1]
    latencies_ms = [1000 * v for v in counted.latencies]
    lags = lag.between(t0, t1)
    p99_lag = percentile(lags, 99)
    report = PathReport(
        label=label,
        server=base_url,
        streams=total.streams,
        streams_by_kind={k: counted.kinds[k].streams for k in KINDS},
        window=window,
        server_cpu=server_cpu,
        server_system_cpu=server_system,
        bench_cpu=bench1 - bench0,
        server_rss_mb=None if rss is None else rss / 2**20,
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
        profile=profile_text,
    )
    if any(t.wrapped for p in participants for t in p.tracks if t.kind == "audio"):
        report.warnings.append("the audio clip ran out and looped: audio loss/latency unreliable")
    report.warnings.extend(_warnings(report))
    return report


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
    if server_cores is not None and report.label == "forwarding" and server_cores > 0.9:
        out.append(
            f"the server used {server_cores:.2f} cores: its one event-loop thread is "
            "saturated, so this measures its ceiling"
        )
    if report.bench_cores > 0.85:
        out.append(
            f"the bench process used {report.bench_cores:.2f} cores (one event loop): "
            "loss and latency may come from the bots, not the server"
        )
    if server_cores is not None and server_cores + report.bench_cores > 0.9 * cores:
        out.append(
            f"server + bench used {server_cores + report.bench_cores:.2f} of {cores} "
            "cores: the machine was saturated"
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
    async def join(user_id: str, role: str) -> _Participant:
        token = await journal.token(lesson_id, user_id, role)
        log = ReceiveLog()
        bot = Bot(base_url, token, decode=False, on_packet=log.on_packet)
        log.connection = lambda: bot.subscriber
        participant = _Participant(bot, log, user_id)
        participants.append(participant)  # before connecting: cleanup must see it
        await bot.connect()
        return participant

    async def publish(participant: _Participant) -> None:
        participant.tracks = [PreEncodedTrack(media.audio), PreEncodedTrack(media.video)]
        await participant.bot.publish(
            [(participant.tracks[0], "microphone"), (participant.tracks[1], "camera")]
        )
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
        for user_id, role in zip(user_ids[: options.publishers], roles, strict=False):
            await publish(await join(user_id, role))
        await asyncio.gather(*(join_limited(u, "student") for u in user_ids[options.publishers :]))
        return
    # Everybody joins first, then publishers publish one at a time, each once the
    # previous one reaches everybody: every offer then adds at most one m-section
    # per kind (see the note on BUNDLE in docs/performance.md).
    joined = await asyncio.gather(
        *(join_limited(u, r) for u, r in zip(user_ids, roles, strict=True))
    )
    for participant in joined[: options.publishers]:
        await publish(participant)
        await _wait_for_media(participants, options, [participant.bot.id])


async def _wait_for_media(
    participants: list[_Participant], options: Options, publisher_ids: list[str] | None = None
) -> None:
    """Until every participant receives audio and video from every (other) publisher."""
    if publisher_ids is None:
        publisher_ids = [p.bot.id for p in participants if p.send_log is not None]
    while True:
        missing = [
            (p.user_id, pub, kind)
            for p in participants
            for pub in publisher_ids
            if pub != p.bot.id
            for kind in KINDS
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
) -> PathReport:
    server = ServerProcess(module, logs / f"{label}.log")
    try:
        _say(options, f"[{label}] starting {module} on {server.base_url}")
        await server.start()
        profile_path = Path(options.profile) if options.profile and label == "forwarding" else None
        try:
            report = await run_path(
                label, server.base_url, server.pid, media, options, profile_path
            )
        except Exception as exc:
            tail = server.log_tail()
            raise BenchError(
                f"[{label}] {type(exc).__name__}: {exc}\nserver log tail:\n{tail}"
            ) from exc
        if not server.running:
            raise BenchError(f"[{label}] the server exited during the run:\n{server.log_tail()}")
        report.server = f"{module} (pid {server.pid})"
        return report
    finally:
        await server.stop()


async def run_bench(options: Options) -> BenchReport:
    restrict_host_addresses(list(options.bot_addresses))
    # Audio must not loop during a run (payloads identify packets): cover the worst case.
    audio_seconds = options.setup_timeout + options.warmup + options.seconds + GRACE_SECONDS + 10
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
    with tempfile.TemporaryDirectory(prefix="urok-bench-") as tmp:
        logs = Path(tmp)
        if not options.baseline_only:
            if options.server_url:
                paths.append(
                    await run_path(
                        "forwarding",
                        options.server_url,
                        options.server_pid,
                        media,
                        options,
                        Path(options.profile) if options.profile else None,
                    )
                )
            else:
                paths.append(
                    await _managed_path("forwarding", "signalling.cli", media, options, logs)
                )
        if options.baseline or options.baseline_only:
            if options.baseline_url:
                paths.append(
                    await run_path(
                        "baseline", options.baseline_url, options.baseline_pid, media, options
                    )
                )
            elif options.server_url:
                raise BenchError("--baseline with --server-url needs --baseline-url too")
            else:
                paths.append(
                    await _managed_path("baseline", "bench.baseline", media, options, logs)
                )
    return BenchReport(options, media.describe(), machine_info(), paths)


# --------------------------------------------------------------------------- report


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + unit


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def format_report(report: BenchReport) -> str:
    options = report.options
    machine = report.machine
    lines = [
        f"Urok load bench: {options.publishers} publishers, {options.subscribers} subscribers, "
        f"{options.seconds:g} s window after {options.warmup:g} s warm-up",
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"aiortc {machine['aiortc']}",
        f"media per publisher: {report.media}",
        f"forwarded streams = 2 x P x (N + P - 1) = {options.streams} "
        "(every participant receives every other publisher's audio and video)",
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
        ("bench CPU (cores)", [f"{p.bench_cores:.2f}" for p in report.paths]),
        ("bench loop lag p99 (ms)", [_num(p.loop_lag_p99_ms, ".1f") for p in report.paths]),
        ("setup (s)", [f"{p.setup_seconds:.1f}" for p in report.paths]),
    ]
    headers = [
        "forwarding (sfu/)" if p.label == "forwarding" else "baseline (MediaRelay)"
        for p in report.paths
    ]
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
    )
    problems = []
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
    print(format_report(report), flush=True)
    if options.json_path:
        text = json.dumps(report.to_json(), indent=2)
        await asyncio.to_thread(Path(options.json_path).write_text, text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
