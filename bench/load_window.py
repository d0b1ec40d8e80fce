"""The load bench's measurement windows: CPU counters at both ends, then the window's figures."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from bench.cli import say
from bench.load_figures import PathReport
from bench.load_options import BenchError, Options
from bench.measure import KINDS, LoopLag, ReceiveLog, SendLog, percentile, tally
from bench.server import cpu_times, machine_busy_seconds, rss_bytes
from recording.process import cpu_seconds as recorder_cpu_seconds


@dataclass
class Window:
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


async def measure(
    label: str,
    pid: int | None,
    options: Options,
    recorder_pid: int | None = None,
    attacker_pid: int | None = None,
) -> Window:
    say(options, f"[{label}] measuring for {options.seconds:g} s")
    recorder0, machine0 = recorder_cpu(recorder_pid), machine_busy_seconds()
    attacker0 = recorder_cpu(attacker_pid)
    t0, server0, bench0 = time.monotonic(), _server_cpu(pid), _bench_cpu()
    await asyncio.sleep(options.seconds)
    t1, server1, bench1 = time.monotonic(), _server_cpu(pid), _bench_cpu()
    recorder1, machine1 = recorder_cpu(recorder_pid), machine_busy_seconds()
    attacker1 = recorder_cpu(attacker_pid)
    recorder = None if recorder0 is None or recorder1 is None else recorder1 - recorder0
    machine = None if machine0 is None or machine1 is None else machine1 - machine0
    attacker = None if attacker0 is None or attacker1 is None else attacker1 - attacker0
    rss = rss_bytes(pid) if pid is not None else None
    return Window(
        label, t0, t1, server0, server1, bench1 - bench0, recorder, machine, rss, attacker
    )


def window_report(
    window: Window,
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


def recorder_cpu(pid: int | None) -> float | None:
    """CPU seconds of a process beside the server (the recorder, the attacker); None once gone."""
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


def window_warnings(report: PathReport) -> list[str]:
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


def _bench_cpu() -> float:
    times = os.times()
    return times.user + times.system
