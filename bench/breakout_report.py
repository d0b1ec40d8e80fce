"""The breakout bench's report as text: timings per bot, the run's figures, its warnings."""

from __future__ import annotations

from bench.breakout_figures import TARGET_SECONDS, Report
from bench.measure import percentile

METRIC_NAMES = {
    "told_room": "breakout message (its room)",
    "first_offer": "first subscribe_offer arrived",
    "labels_right": "offer labelling its room answered",
    "roommates_fresh": "fresh media from every roommate",
    "last_outsider_packet": "last packet from an outsider",
    "isolated": "isolated (latest of the above)",
    "answer_took": "the bot took to answer (last offer)",
}


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_report(report: Report) -> str:
    o = report.options
    lines = _header(report) + _timings(report) + _summary(report)
    for problem in report.missing[:10]:
        lines.append(f"missing: {problem}")
    if len(report.missing) > 10:
        lines.append(f"missing: ... and {len(report.missing) - 10} more bots")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    if report.profile:
        when = {"open": "from the open on", "close": "from the close on"}.get(
            o.profile_phase, "in the rooms"
        )
        lines += ["", f"server profile {when}: {report.profile}"]
    return "\n".join(lines)


def _header(report: Report) -> list[str]:
    o, machine = report.options, report.machine
    return [
        f"Urok breakout bench: {o.rooms} rooms x {o.per_room} students + 1 teacher "
        f"= {report.participants} participants",
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"aiortc {machine['aiortc']}",
        f"publishing: the teacher (audio) and {report.publishers - 1} students ({o.publish}); "
        f"every {o.main_every}th packet/frame in the main room, "
        + ("all of them" if o.room_every == 1 else f"every {o.room_every}th")
        + " from the open",
        f"cameras on in the main room: {o.cameras}; audio slots: "
        f"{'the server default' if o.audio_slots is None else o.audio_slots}",
        f"main room before the open: {report.main_room_tracks} tracks, "
        f"{report.main_room_streams} forwarded streams; set up in {report.setup_seconds:.1f} s "
        f"with {report.setup_offers} subscribe offers",
        "",
        f"{'seconds after breakout_open':34}{'p50':>8}{'max':>8}",
    ]


def _timings(report: Report) -> list[str]:
    """Seconds after the open, p50 and max over the bots, per step."""
    lines: list[str] = []
    for metric, name in METRIC_NAMES.items():
        values = report.per_bot[metric]
        count = sum(v is not None for v in values)
        p50, top = _s(report.stat(metric, 50)), _s(report.stat(metric, 100))
        if metric == "last_outsider_packet":
            suffix = f"  ({count} of {len(values)} bots got any)"
            if count == 0:
                p50 = top = "none"
        else:
            suffix = "" if count == len(values) else f"  ({count} of {len(values)} bots)"
        lines.append(f"{name:34}{p50:>8}{top:>8}{suffix}")
    return lines


def _summary(report: Report) -> list[str]:
    o = report.options
    offers = report.offers_after_open
    return [
        "",
        f"overall (every bot isolated): {_s(report.overall_seconds)} s"
        + (
            f" -> target {TARGET_SECONDS:g} s {'met' if report.target_met else 'NOT met'}"
            if report.isolated
            else f" -> NOT isolated within {o.timeout:g} s"
        ),
        f"server CPU in that interval: {_s(report.server_cpu)} s "
        f"(system {_s(report.server_system_cpu)} s) = {_s(report.server_cores)} cores; "
        f"bench {_s(report.bench_cpu)} s = {_s(report.bench_cores)} cores; "
        f"other processes {_s(report.others_cores)} cores; "
        f"bench loop lag p99 {_s(report.loop_lag_p99_ms)} ms",
        f"subscribe_offers per bot after the open: min {min(offers)}, "
        f"p50 {percentile(offers, 50):.0f}, max {max(offers)}; largest: "
        f"{report.m_sections_after_open_max} m-sections, {report.offer_bytes_after_open_max} bytes",
        f"another lesson on the server (audio, 20 ms packets): largest gap "
        f"{_s(report.witness_gap_ms)} ms (before the open: {_s(report.witness_gap_before_ms)} ms)",
        f"the server's event loop over the last 5 s: woke up at most "
        f"{_s(report.server_loop_lag_ms)} ms late (timer every 0.25 s)",
        *_closing(report),
        f"main room before the open: server {_s(report.warmup_server_cores)} cores, "
        f"bench {_s(report.warmup_bench_cores)} cores, other processes "
        f"{_s(report.warmup_others_cores)} cores; in the rooms afterwards: server "
        f"{_s(report.rooms_server_cores)} cores, bench {_s(report.rooms_bench_cores)} cores",
        f"each bot received in the main room (RTP payloads): p50 "
        f"{_s(report.main_room_downlink_kbps[0])} kbit/s, max "
        f"{_s(report.main_room_downlink_kbps[1])} kbit/s",
        "packet transit publisher -> server -> receiver (ms, p50/p99/max): before the open "
        + "/".join(_s(v) for v in report.transit_warm_ms)
        + ", after it "
        + "/".join(_s(v) for v in report.transit_after_ms),
        f"packets after the open: from outsiders {report.outsider_packets} "
        f"(max {report.outsider_packets_by_bot_max} to one bot; sent after the server had "
        f"moved everybody: {report.leaked_packets}), labelled as the wrong person "
        f"{report.mislabeled_packets}, ambiguous {report.ambiguous_packets}, "
        f"unknown {report.unattributed_packets}",
    ]


def _closing(report: Report) -> list[str]:
    close = report.close
    if close is None:
        return ["rooms not closed (not isolated)"]
    met = close["everyone_back"] and (close["back_max_s"] or 0.0) <= TARGET_SECONDS
    verdict = "met" if met else "NOT met"
    return [
        f"closing the rooms: {close['back_count']} of {close['pupils']} back in the main room "
        f"(told, answered, hearing the teacher), p50 {_s(close['back_p50_s'])} s, max "
        f"{_s(close['back_max_s'])} s -> target {TARGET_SECONDS:g} s {verdict}; "
        f"the other lesson's largest gap {_s(close['witness_gap_ms'])} ms; the server's loop "
        f"woke up at most {_s(close['server_loop_lag_ms'])} ms late",
    ]


def add_warnings(report: Report, errors: list[str], log: list[str]) -> None:
    """What makes the figures doubtful: errors after the open (messages, the server log),
    a shared or overloaded machine."""
    if errors:
        report.warnings.append(f"{len(errors)} error messages after the open, e.g. {errors[0]}")
    problems = [line for line in log if " ERROR " in line]
    if problems:
        report.warnings.append(
            f"{len(problems)} errors in the server log up to the end of observation, "
            f"e.g. {problems[0]}"
        )
    for when, others in (("before", report.warmup_others_cores), ("after", report.others_cores)):
        if others is not None and others > 0.3:
            report.warnings.append(
                f"other processes used {others:.2f} cores {when} the open: the machine was shared"
            )
    warm_p99 = report.transit_warm_ms[1]
    if warm_p99 is None or warm_p99 > 200:
        report.warnings.append(
            f"packets took {_s(warm_p99)} ms (p99) before the open: the main room was more "
            "than server + bots could carry here, so the times measure a backlog"
        )
    if report.bench_cores is not None and report.bench_cores > 0.85:
        report.warnings.append(
            f"the bench process used {report.bench_cores:.2f} cores (one event loop): "
            "the bots' own delays are part of the times"
        )
