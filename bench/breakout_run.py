"""The breakout bench's run: set up, warm up, open the rooms, observe until isolated, measure."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.breakout_close import Closing, close_rooms
from bench.breakout_cpu import SAMPLE_INTERVAL, CpuSampler
from bench.breakout_figures import Report, member_figures, missing, ms
from bench.breakout_members import Member
from bench.breakout_options import BenchError, Options
from bench.breakout_report import add_warnings
from bench.breakout_setup import error_messages, leave_all, plan, set_up_lesson
from bench.breakout_witness import Witness
from bench.cli import say
from bench.machine import machine_info
from bench.measure import LoopLag, percentile
from bench.preencoded import BenchMedia, prepare_media
from bench.server import Journal, ServerProcess
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

METRICS_TOKEN = secrets.token_urlsafe(16)
LAG_METRIC = "urok_event_loop_lag_recent_max_seconds"


@dataclass
class _Scenario:
    """One run's state: what its phases share, and what its cleanup undoes."""

    options: Options
    pid: int
    server: ServerProcess
    members: list[Member]
    lag: LoopLag
    sampler: CpuSampler
    witness: Witness
    lesson_id: str | None = None
    profiler: asyncio.Task[str] | None = None
    profile_text: str | None = None
    setup_seconds: float = 0.0
    setup_offers: int = 0
    warmed: float = 0.0  # the warm-up's start (the first CPU sample)
    errors_before: int = 0  # error messages before the open
    t0: float = 0.0  # the open
    isolated: bool = False
    overall: float | None = None
    observed: float = 0.0
    server_lag: float | None = None
    settled: float = 0.0  # the end of observation: the rooms as they stay
    closing: Closing | None = None  # the rooms closed again (bench/breakout_close.py)
    log: list[str] = field(default_factory=list)


async def run_scenario(
    base_url: str, pid: int, media: BenchMedia, options: Options, server: ServerProcess
) -> Report:
    members = plan(options)
    run = _Scenario(options, pid, server, members, LoopLag(), CpuSampler(pid), Witness())
    async with aiohttp.ClientSession() as http:
        journal = Journal(base_url, DEMO_SECRET, http)
        try:
            await _set_up(run, journal, base_url, media)
            await _warm_up_and_open(run)
            await _observe_rooms(run, http, base_url)
            if run.isolated:
                _start_profiler(run, "close")
                run.closing = await close_rooms(members, run.options)
                run.closing.server_loop_lag_ms = ms(await _server_loop_lag(http, base_url))
                await _finish_profile(run)
        finally:
            if run.profiler is not None and not run.profiler.done():
                run.profiler.cancel()
                with contextlib.suppress(BaseException):
                    await run.profiler
            await run.sampler.stop()
            await run.lag.stop()
            await leave_all(members)
            await run.witness.stop(journal)
            if run.lesson_id is not None:
                with contextlib.suppress(Exception):
                    await journal.end_lesson(run.lesson_id)
    return _report(run, media)


async def _set_up(run: _Scenario, journal: Journal, base_url: str, media: BenchMedia) -> None:
    options, members = run.options, run.members
    started = time.monotonic()
    async with asyncio.timeout(options.setup_timeout):
        await run.witness.start(journal, base_url)
        run.lesson_id = await set_up_lesson(members, journal, base_url, media, options)
    run.setup_seconds = setup_seconds = time.monotonic() - started
    run.setup_offers = sum(len(m.bot.offers) for m in members if m.bot is not None)
    say(
        options,
        f"main room ready in {setup_seconds:.1f} s ({run.setup_offers} subscribe offers); "
        f"rooms configured and assigned; opening in {options.warmup:g} s",
    )


async def _warm_up_and_open(run: _Scenario) -> None:
    """The warm-up in the main room, then everybody starts talking and the teacher opens."""
    options, members, sampler = run.options, run.members, run.sampler
    sampler.start()
    run.lag.start()
    run.warmed = members[0].ledger.warm_from = sampler.samples[0][0]
    await asyncio.sleep(options.warmup)
    run.errors_before = len(error_messages(members))
    teacher = members[0]
    assert teacher.bot is not None
    sampler.sample()
    run.t0 = t0 = sampler.samples[-1][0]
    for m in members:
        m.opened_at = t0
    for m in members:
        if m.switch is not None:
            m.switch.loud.set()
    _start_profiler(run, "open")
    await teacher.bot.send({"type": "breakout_open"})


async def _observe_rooms(run: _Scenario, http: aiohttp.ClientSession, base_url: str) -> None:
    """Until isolated (or the timeout), then --after seconds in the rooms as they stay."""
    options, members, t0 = run.options, run.members, run.t0
    run.isolated, run.overall = await _observe(members, options, t0)
    run.observed = time.monotonic() - t0
    run.server_lag = await _server_loop_lag(http, base_url)
    for m in members:
        m.observing = False
    # Rooms as they stay: what the server spends once the moves are done.
    run.settled = time.monotonic()
    _start_profiler(run, "rooms")
    await asyncio.sleep(options.after)
    # Leaving makes its own log noise: look at the log as it is now.
    run.log = run.server.log_tail(100_000).splitlines()
    await run.sampler.stop()
    await run.lag.stop()
    await _finish_profile(run)
    say(
        options,
        f"isolated after {run.overall:.2f} s" if run.isolated else "not isolated in time",
    )


async def _finish_profile(run: _Scenario) -> None:
    """The profile started for this phase, if any: recorded to its end and summarized."""
    if run.profiler is not None and run.profile_text is None:
        from bench import profile

        await run.profiler
        run.profile_text = profile.summarize(run.options.profile or "")


def _start_profiler(run: _Scenario, phase: str) -> None:
    options = run.options
    if options.profile and options.profile_phase == phase:
        from bench import profile

        run.profiler = asyncio.ensure_future(
            profile.record(run.pid, options.profile_seconds, Path(options.profile))
        )


def _report(run: _Scenario, media: BenchMedia) -> Report:
    members, t0 = run.members, run.t0
    t_end = t0 + (run.overall if run.overall is not None else run.observed)
    report = Report(
        options=run.options,
        machine=machine_info(),
        media=media.describe(),
        setup_seconds=run.setup_seconds,
        setup_offers=run.setup_offers,
        isolated=run.isolated,
        overall_seconds=run.overall,
        observed_seconds=run.observed,
        server_loop_lag_ms=ms(run.server_lag),
        missing=[] if run.isolated else missing(members, t0),
        warnings=[],
        profile=run.profile_text,
        **member_figures(members, t0, t0 - run.warmed),
        **_cpu_figures(run, t_end),
    )
    add_warnings(report, error_messages(members)[run.errors_before :], run.log)
    closing = run.closing
    if closing is not None:
        back = [b for b in closing.back if b is not None]
        end = closing.t0 + (max(back) if back else run.options.timeout)
        closing.witness_gap_ms = ms(run.witness.max_gap(closing.t0, end))
        report.close = closing.figures()
    return report


def _cpu_figures(run: _Scenario, t_end: float) -> dict[str, Any]:
    """The Report's CPU and delay figures: from the open to t_end, the warm-up, the rooms."""
    sampler, t0, warmed = run.sampler, run.t0, run.warmed
    span = sampler.between(t0, t_end)
    warm = sampler.between(warmed, t0)
    rooms = sampler.between(run.settled, run.settled + run.options.after)
    p99_lag = percentile(run.lag.between(t0, t_end), 99)
    return {
        "server_cpu": span.server,
        "server_system_cpu": span.server_system,
        "bench_cpu": span.bench,
        "others_cores": span.cores(span.others),
        "loop_lag_p99_ms": None if p99_lag is None else 1000 * p99_lag,
        "warmup_server_cores": warm.cores(warm.server),
        "warmup_bench_cores": warm.cores(warm.bench),
        "warmup_others_cores": warm.cores(warm.others),
        "rooms_server_cores": rooms.cores(rooms.server),
        "rooms_bench_cores": rooms.cores(rooms.bench),
        "witness_gap_before_ms": ms(run.witness.max_gap(warmed, t0)),
        "witness_gap_ms": ms(run.witness.max_gap(t0, t_end)),
    }


async def _observe(members: list[Member], options: Options, t0: float) -> tuple[bool, float | None]:
    """Until isolation (and `settle` quiet seconds after it) or the timeout."""
    deadline = t0 + options.timeout
    while True:
        now = time.monotonic()
        isolated = [m.isolated_at(t0) for m in members]
        if all(t is not None for t in isolated):
            latest = max(t for t in isolated if t is not None)
            last_outsider = max((m.last_outsider or t0 for m in members), default=t0)
            if now - max(latest, last_outsider) >= options.settle:
                return True, latest - t0
        if now >= deadline:
            return False, None
        await asyncio.sleep(SAMPLE_INTERVAL)


async def _server_loop_lag(http: aiohttp.ClientSession, base_url: str) -> float | None:
    try:
        async with http.get(
            f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ) as response:
            text = await response.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith(LAG_METRIC + " "):
            return float(line.split()[1])
    return None


async def run_bench(options: Options) -> Report:
    restrict_host_addresses(["127.0.0.1"])
    media = await asyncio.to_thread(
        prepare_media,
        audio_seconds=120,  # payloads repeat when it loops: long enough to tell sends apart
        width=options.width,
        height=options.height,
        fps=options.fps,
        video_bitrate=options.video_kbps * 1000,
    )
    say(options, f"media: {media.describe()}")
    with tempfile.TemporaryDirectory(prefix="urok-breakout-") as tmp:
        slots = options.audio_slots
        env = {"UROK_METRICS_TOKEN": METRICS_TOKEN}
        if slots is not None:
            env["UROK_MEDIA_AUDIO_SLOTS"] = str(slots)
        server = ServerProcess("signalling.cli", Path(tmp) / "server.log", env=env)
        try:
            say(options, f"starting the server on {server.base_url}")
            await server.start()
            try:
                report = await run_scenario(server.base_url, server.pid, media, options, server)
            except Exception as exc:
                raise BenchError(
                    f"{type(exc).__name__}: {exc}\nserver log tail:\n{server.log_tail()}"
                ) from exc
            if not server.running:
                raise BenchError(f"the server exited during the run:\n{server.log_tail()}")
            return report
        finally:
            await server.stop()
            if options.server_log:
                with contextlib.suppress(OSError):
                    shutil.copyfile(server.log_path, options.server_log)
