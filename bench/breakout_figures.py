"""The breakout bench's figures: per bot and for the run, read from the members, and their JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.breakout_members import Member
from bench.breakout_options import Options
from bench.measure import percentile

TARGET_SECONDS = 3.0


@dataclass
class Report:
    options: Options
    machine: dict[str, Any]
    media: str
    participants: int
    publishers: int
    main_room_tracks: int
    main_room_streams: int
    setup_seconds: float
    setup_offers: int
    isolated: bool
    overall_seconds: float | None  # open -> the last bot isolated
    observed_seconds: float  # open -> the end of observation
    per_bot: dict[str, list[float | None]]  # metric -> seconds after the open, per bot
    offers_after_open: list[int]
    m_sections_after_open_max: int
    offer_bytes_after_open_max: int
    outsider_packets: int
    outsider_packets_by_bot_max: int
    # Outsider packets sent after the first bot heard that rooms were open: by then the
    # server had moved everybody, so these would be real leaks.
    leaked_packets: int
    transit_warm_ms: tuple[float | None, float | None, float | None]  # p50, p99, max
    transit_after_ms: tuple[float | None, float | None, float | None]
    mislabeled_packets: int
    ambiguous_packets: int
    unattributed_packets: int
    server_cpu: float | None
    server_system_cpu: float | None
    bench_cpu: float | None
    others_cores: float | None  # other processes on the machine in that interval
    loop_lag_p99_ms: float | None
    # CPU in the main room before the open (the warm-up), in cores.
    warmup_server_cores: float | None
    warmup_bench_cores: float | None
    warmup_others_cores: float | None
    # CPU once everybody is in the rooms (--after seconds after observation), in cores.
    rooms_server_cores: float | None
    rooms_bench_cores: float | None
    # The largest gap between packets in another lesson on the server: before, during.
    witness_gap_before_ms: float | None
    witness_gap_ms: float | None
    missing: list[str]
    warnings: list[str]
    profile: str | None = None
    # The server's own event loop: the longest it woke up late over the last 5 s,
    # read just after the observation (GET /metrics; None if unavailable).
    server_loop_lag_ms: float | None = None
    # RTP payload kbit/s each bot received in the main room (warm-up): p50, max.
    main_room_downlink_kbps: tuple[float | None, float | None] = (None, None)
    # The rooms closed again at once (bench/breakout_close.py): who was back when.
    close: dict[str, Any] | None = None

    @property
    def server_cores(self) -> float | None:
        if self.server_cpu is None or not self.overall_seconds:
            return None
        return self.server_cpu / self.overall_seconds

    @property
    def bench_cores(self) -> float | None:
        if self.bench_cpu is None or not self.overall_seconds:
            return None
        return self.bench_cpu / self.overall_seconds

    @property
    def target_met(self) -> bool:
        return self.overall_seconds is not None and self.overall_seconds < TARGET_SECONDS

    def stat(self, metric: str, q: float) -> float | None:
        return percentile((v for v in self.per_bot[metric] if v is not None), q)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            server_cores=self.server_cores,
            bench_cores=self.bench_cores,
            target_seconds=TARGET_SECONDS,
            target_met=self.target_met,
            summary={
                metric: {"p50": self.stat(metric, 50), "max": self.stat(metric, 100)}
                for metric in self.per_bot
            },
        )
        return out


def metrics(members: list[Member], t0: float) -> dict[str, list[float | None]]:
    def rel(value: float | None) -> float | None:
        return None if value is None else value - t0

    def first_offer(m: Member) -> float | None:
        offers = m.offers_after(t0)
        return offers[0].started if offers else None

    return {
        "told_room": [rel(m.told_at(t0)) for m in members],
        "first_offer": [rel(first_offer(m)) for m in members],
        "labels_right": [rel(m.labels_right_at(t0)) for m in members],
        "answer_took": [
            offers[-1].answered - offers[-1].started if offers else None
            for offers in (m.offers_after(t0) for m in members)
        ],
        "roommates_fresh": [
            rel(max(m.first_fresh.values())) if m.first_fresh else None
            for m in members
            if m.publishing_roommates
        ],
        "last_outsider_packet": [rel(m.last_outsider) for m in members],
        "isolated": [rel(m.isolated_at(t0)) for m in members],
    }


def missing(members: list[Member], t0: float) -> list[str]:
    out = []
    for m in members:
        problems = []
        if m.labels_right_at(t0) is None:
            offers = m.offers_after(t0)
            problems.append(
                f"no offer labelling its room ({len(offers)} offers after the open"
                + (f", the last with {len(offers[-1].tracks)} tracks" if offers else "")
                + ")"
            )
        absent = m.publishing_roommates - m.first_fresh.keys()
        if absent:
            problems.append(f"no fresh media from {len(absent)} roommate(s)")
        if problems:
            out.append(f"{m.user_id}: " + "; ".join(problems))
    return out


def main_room_streams(members: list[Member], t0: float) -> int:
    """The m-sections of each bot's last offer before the open, summed: the streams
    the main room forwards (with audio slots, fewer than its tracks x people)."""
    total = 0
    for m in members:
        before = [o for o in m.bot.offers if o.started < t0] if m.bot is not None else []
        total += before[-1].m_sections if before else 0
    return total


def downlink_kbps(members: list[Member], seconds: float) -> tuple[float | None, float | None]:
    rates = [8 * m.warm_bytes / seconds / 1000 for m in members] if seconds > 0 else []
    return percentile(rates, 50), max(rates, default=None)


def leaked(members: list[Member], t0: float) -> int:
    told = [t for t in (m.told_at(t0) for m in members) if t is not None]
    if not told:
        return sum(len(m.outsider_sent) for m in members)
    moved = min(told)
    return sum(1 for m in members for sent in m.outsider_sent if sent > moved)


def spread(seconds: list[float]) -> tuple[float | None, float | None, float | None]:
    return (
        ms(percentile(seconds, 50)),
        ms(percentile(seconds, 99)),
        ms(max(seconds, default=None)),
    )


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def member_figures(members: list[Member], t0: float, warm_seconds: float) -> dict[str, Any]:
    """The Report's figures read from the members (t0: the open; the warm-up before it)."""
    publishers = [m for m in members if m.kinds]
    after = [m.offers_after(t0) for m in members]
    return {
        "participants": len(members),
        "publishers": len(publishers),
        "main_room_tracks": sum(len(m.kinds) for m in publishers),
        "main_room_streams": main_room_streams(members, t0),
        "main_room_downlink_kbps": downlink_kbps(members, warm_seconds),
        "per_bot": metrics(members, t0),
        "offers_after_open": [len(offers) for offers in after],
        "m_sections_after_open_max": max((o.m_sections for a in after for o in a), default=0),
        "offer_bytes_after_open_max": max((o.sdp_bytes for a in after for o in a), default=0),
        "outsider_packets": sum(m.outsider_packets for m in members),
        "outsider_packets_by_bot_max": max(m.outsider_packets for m in members),
        "leaked_packets": leaked(members, t0),
        "transit_warm_ms": spread(members[0].ledger.transit_warm),
        "transit_after_ms": spread(members[0].ledger.transit_after),
        "mislabeled_packets": sum(m.mislabeled for m in members),
        "ambiguous_packets": sum(m.ambiguous for m in members),
        "unattributed_packets": sum(m.unattributed for m in members),
    }
