"""The load bench's run: the scenario against each server (started here or already running)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.attacker import AttackerProcess, HealthProbe
from bench.cli import say
from bench.load_attack import attack_figures, attack_windows
from bench.load_bots import Participant, join_all, leave_all, wait_for_media
from bench.load_figures import BenchReport, PathReport, RecordingReport
from bench.load_options import BenchError, Options
from bench.load_recording import inspect_recording, record, recording_log_lines
from bench.load_window import Window, measure, window_report, window_warnings
from bench.machine import machine_info
from bench.measure import LoopLag
from bench.preencoded import BenchMedia, prepare_media
from bench.server import Journal, ServerProcess
from sfu.aiortc_hooks import restrict_host_addresses

GRACE_SECONDS = 1.0  # after the window, for packets in flight and retransmissions
ATTACKER_IDS = "bench-attacker"  # + index: rostered students the attacker joins as


@dataclass
class _Run:
    """One pass of the scenario against one server: what its steps share and its cleanup undoes."""

    label: str
    base_url: str
    pid: int | None
    options: Options
    attacking: bool
    attacker: AttackerProcess | None
    health: HealthProbe | None
    user_ids: list[str] = field(default_factory=list)
    participants: list[Participant] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    lesson_id: str | None = None
    profiler: asyncio.Task[str] | None = None
    recording: RecordingReport | None = None
    attack_stats: dict[str, Any] | None = None


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
    attacking = options.attack and label == "forwarding"
    run = _Run(
        label,
        base_url,
        pid,
        options,
        attacking,
        AttackerProcess() if attacking else None,
        HealthProbe(base_url) if attacking else None,
    )
    async with aiohttp.ClientSession() as http:
        journal = Journal(base_url, options.secret, http)
        try:
            setup_seconds = await _set_up(run, journal, http, media)
            profile_text = await _measure_windows(run, http, profile_path)
        finally:
            await _tear_down(run, journal)
            await lag.stop()

    reports = _reports(run, lag, match_payloads, setup_seconds, profile_text)
    attack_stats = run.attack_stats
    if attacking and attack_stats is not None:
        # Kept for the report; the per-bucket counts were only for the windows.
        attack_stats = {k: v for k, v in attack_stats.items() if k != "buckets"}
    return reports, run.recording, attack_stats


async def _set_up(
    run: _Run, journal: Journal, http: aiohttp.ClientSession, media: BenchMedia
) -> float:
    """The lesson, everybody in it receiving everybody (and the attacker ready): its seconds."""
    options, label = run.options, run.label
    started = time.monotonic()
    run.user_ids = user_ids = [f"bench-p{i}" for i in range(options.publishers)] + [
        f"bench-s{i}" for i in range(options.subscribers)
    ]
    attacker_ids = [f"{ATTACKER_IDS}{i}" for i in range(options.attack_joined)]
    # The first publisher is the lesson's teacher: a host (it may record).
    run.lesson_id = lesson_id = await journal.create_lesson(
        user_ids[0], user_ids[1:] + (attacker_ids if run.attacking else [])
    )
    async with asyncio.timeout(options.setup_timeout):
        await join_all(journal, lesson_id, run.base_url, user_ids, media, options, run.participants)
        await wait_for_media(run.participants, options)
        if run.attacker is not None:
            # Its students join now, so every window has the same people in the call.
            await run.attacker.start(
                run.base_url,
                options.secret,
                [await journal.token(lesson_id, a, "student") for a in attacker_ids],
                options.attack_unjoined,
                options.attack_http,
                options.attack_rate,
                options.attack_max_frames,
            )
    if run.health is not None:
        run.health.start(http)
    setup_seconds = time.monotonic() - started
    say(
        options,
        f"[{label}] {len(run.participants)} participants connected and receiving "
        f"in {setup_seconds:.1f} s; warm-up {options.warmup:g} s",
    )
    return setup_seconds


async def _measure_windows(
    run: _Run, http: aiohttp.ClientSession, profile_path: Path | None
) -> str | None:
    """After the warm-up, the window (profiled when asked), then the recording's or the
    attack's; the profile's summary."""
    options, label, pid = run.options, run.label, run.pid
    await asyncio.sleep(options.warmup)

    if profile_path is not None and pid is not None:
        from bench import profile

        run.profiler = asyncio.ensure_future(
            profile.record(pid, options.seconds, profile_path, options.profile_native)
        )
    attacker_pid = run.attacker.pid if run.attacker is not None else None
    run.windows.append(await measure(label, pid, options, attacker_pid=attacker_pid))
    profile_text = None
    if run.profiler is not None:
        from bench import profile

        await run.profiler
        assert profile_path is not None
        profile_text = profile.summarize(profile_path)
    host = None
    if options.recording and label == "forwarding":
        host = next(p for p in run.participants if p.user_id == run.user_ids[0])
        run.recording = RecordingReport(warmup=options.recording_warmup)
        await record(host, pid, options, run.windows, run.recording)
    if run.attacker is not None:
        run.attack_stats = await attack_windows(run.attacker, pid, options, run.windows)
    await asyncio.sleep(GRACE_SECONDS)
    if host is not None and run.recording is not None and run.recording.ready:
        await inspect_recording(http, run.base_url, host.bot, run.recording)
    return profile_text


async def _tear_down(run: _Run, journal: Journal) -> None:
    if run.health is not None:
        await run.health.stop()
    if run.attacker is not None:
        await run.attacker.stop()
    profiler = run.profiler
    if profiler is not None and not profiler.done():
        profiler.cancel()  # py-spy is killed with it
        with contextlib.suppress(BaseException):
            await profiler
    await leave_all(run.participants)
    if run.lesson_id is not None:
        with contextlib.suppress(Exception):
            await journal.end_lesson(run.lesson_id)


def _reports(
    run: _Run, lag: LoopLag, match_payloads: bool, setup_seconds: float, profile_text: str | None
) -> list[PathReport]:
    participants, windows = run.participants, run.windows
    publishers = {p.bot.id: p.send_log for p in participants if p.send_log is not None}
    receivers = {p.bot.id: p.log for p in participants if p.receives}
    wrapped = any(t.wrapped for p in participants for t in p.tracks if t.kind == "audio")
    reports = []
    for window in windows:
        report = window_report(
            window, run.base_url, publishers, receivers, lag, match_payloads, setup_seconds
        )
        if window is windows[0]:
            report.profile = profile_text
        if wrapped:
            report.warnings.append(
                "the audio clip ran out and looped: audio loss/latency unreliable"
            )
        if run.attacking:
            attack_figures(report, window, run.health, run.attack_stats)
        report.warnings.extend(window_warnings(report))
        reports.append(report)
    return reports


async def _managed_path(
    label: str, module: str, media: BenchMedia, options: Options, logs: Path
) -> tuple[list[PathReport], RecordingReport | None, dict[str, Any] | None]:
    # Its files (recordings) go into the bench's temporary directory, removed afterwards.
    server = ServerProcess(
        module, logs / f"{label}.log", data_dir=logs / f"{label}-data", env=options.server_env
    )
    try:
        say(options, f"[{label}] starting {module} on {server.base_url}")
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
            recording.log_lines = recording_log_lines(server.log_path)
        return reports, recording, attack
    finally:
        await server.stop()


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
    say(options, f"media: {media.describe()}")
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
