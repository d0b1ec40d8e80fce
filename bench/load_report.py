"""The load bench's report as text: the header, a table with a column per window, the summary."""

from __future__ import annotations

from bench.load_figures import TARGET_STREAMS_PER_CORE, BenchReport

LABELS = {
    "forwarding": "forwarding (sfu/)",
    "recording": "recording on",
    "after": "after recording",
    "baseline": "baseline (MediaRelay)",
    "attack": "with the attack",
    "after-attack": "after the attack",
}

Rows = list[tuple[str, list[str]]]


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + unit


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def format_report(report: BenchReport) -> str:
    lines = _header(report)
    headers = [LABELS.get(p.label, p.label) for p in report.paths]
    lines.extend(_table(_rows(report), headers))
    lines.extend(_summary(report))
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


def _header(report: BenchReport) -> list[str]:
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
    return [
        f"Urok load bench: {options.publishers} publishers, {options.subscribers} subscribers, "
        f"{options.seconds:g} s window after {options.warmup:g} s warm-up",
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"aiortc {machine['aiortc']}",
        f"media per publisher: {report.media}",
        f"{streams} (every {who} receives every other publisher's audio and video)",
        "",
    ]


def _rows(report: BenchReport) -> Rows:
    return [
        *_cpu_rows(report),
        *_delivery_rows(report),
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


def _cpu_rows(report: BenchReport) -> Rows:
    return [
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
    ]


def _delivery_rows(report: BenchReport) -> Rows:
    return [
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
    ]


def _table(rows: Rows, headers: list[str]) -> list[str]:
    width = max(len(name) for name, _ in rows) + 2
    col = max(22, *(len(h) + 2 for h in headers))
    lines = ["".ljust(width) + "".join(h.ljust(col) for h in headers)]
    for name, values in rows:
        lines.append(name.ljust(width) + "".join(v.ljust(col) for v in values))
    return lines


def _summary(report: BenchReport) -> list[str]:
    """Forwarding against the target, and the baseline against forwarding."""
    lines: list[str] = []
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
    return lines


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
