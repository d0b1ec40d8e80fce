"""The load bench's attack windows: with an attacker replaying the worst frames, and after it."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.attacker import AttackerProcess, HealthProbe, answered_between
from bench.cli import say
from bench.load_figures import PathReport
from bench.load_options import Options
from bench.load_window import Window, measure
from bench.measure import percentile


async def attack_windows(
    attacker: AttackerProcess, pid: int | None, options: Options, windows: list[Window]
) -> dict[str, Any]:
    """The attack window, then the window after it; what the attacker sent and got."""
    # The attack covers its warm-up, the window and a margin: it stops by itself.
    duration = options.attack_warmup + options.seconds + 1.0
    say(options, f"[attack] replaying the worst frames for {duration:g} s")
    await attacker.go(duration)
    await asyncio.sleep(options.attack_warmup)
    windows.append(await measure("attack", pid, options, attacker_pid=attacker.pid))
    stats = await attacker.stats(timeout=duration + 60)
    say(
        options,
        f"[attack] {stats['frames_answered']} of {stats['frames_sent']} frames and "
        f"{stats['requests_answered']} of {stats['requests_sent']} requests answered; "
        f"warm-up {options.warmup:g} s",
    )
    await asyncio.sleep(options.warmup)
    windows.append(await measure("after-attack", pid, options, attacker_pid=attacker.pid))
    return stats


def attack_figures(
    report: PathReport,
    window: Window,
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
