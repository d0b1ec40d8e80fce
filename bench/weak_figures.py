"""The figures of one weak-link window (bench/weak_link.py), from samples taken at its edges.

A `Sample` is everything read at one instant: the server process's CPU time,
the link's counters (what the server put on the subscriber's link, measured
before the shaping, bench/links.py), the observed server's snapshot
(bench/observed_server.py) and the subscriber's own statistics. A window's
figures are differences between its two samples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.links import Counters, LinkSpec


@dataclass
class Sample:
    time: float  # monotonic
    server_cpu: tuple[float, float]  # user, system seconds of the server process
    machine_busy: float | None  # CPU seconds the whole machine was busy
    bench_cpu: float  # this process (the publishers)
    link: Counters
    observed: dict[str, Any]  # bench/observed_server.py snapshot
    subscriber: dict[str, dict[str, float]]  # kind -> counter -> cumulative value


@dataclass
class WindowFigures:
    label: str
    link: str
    link_kbit: int | None
    seconds: float
    # At the subscriber.
    audio_loss: float | None  # packets lost / expected (its RTP sequence accounting)
    audio_concealed: float | None  # concealed samples / samples (Chromium only)
    video_loss: float | None  # packets lost after retransmissions / expected
    video_fps: float | None  # frames decoded per second, per video stream
    video_streams: int
    subscriber: dict[str, float]  # other counters over the window (NACKs, PLIs, freezes)
    # What the server sent the subscriber.
    sent_mbit_s: float  # IP bytes on the link's server side (nftables)
    sent_packets_s: float
    dropped_by_loss_rule: int
    rtp_mbit_s: float | None  # RTP bytes its consumers sent (observed server), before SRTP
    rtp_packets_s: float | None
    video_packets_sent: int | None
    video_distinct: int | None
    video_copies_max: int | None
    audio_copies_max: int | None
    consumers: dict[str, int]  # the server's consumer counters over the window, per kind
    # The server.
    server_cores: float
    server_system_cores: float
    machine_cores: float | None
    bench_cores: float
    # The publishers, as the server received them.
    publisher_video_kbit_s: dict[str, float] = field(default_factory=dict)
    publisher_keyframes_s: dict[str, float] = field(default_factory=dict)
    publisher_fps: dict[str, float] = field(default_factory=dict)
    publisher_keyframe_requests_s: dict[str, float] = field(default_factory=dict)
    # The server's estimate of the subscriber's video bandwidth (sfu/bandwidth.py): at
    # the window's end, and REMBs received over it; videos held back at its end.
    bandwidth: dict[str, float] = field(default_factory=dict)

    @property
    def sent_over_link_rate(self) -> float | None:
        if not self.link_kbit:
            return None
        return self.sent_mbit_s * 1000 / self.link_kbit

    @property
    def video_copies_mean(self) -> float | None:
        if not self.video_distinct or self.video_packets_sent is None:
            return None
        return self.video_packets_sent / self.video_distinct

    @property
    def publisher_video_kbit_s_mean(self) -> float | None:
        return _mean(self.publisher_video_kbit_s.values())

    @property
    def publisher_fps_mean(self) -> float | None:
        return _mean(self.publisher_fps.values())

    @property
    def publisher_keyframes_s_mean(self) -> float | None:
        return _mean(self.publisher_keyframes_s.values())

    @property
    def publisher_keyframe_requests_s_mean(self) -> float | None:
        return _mean(self.publisher_keyframe_requests_s.values())

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in (
            "sent_over_link_rate",
            "video_copies_mean",
            "publisher_video_kbit_s_mean",
            "publisher_keyframes_s_mean",
            "publisher_fps_mean",
            "publisher_keyframe_requests_s_mean",
        ):
            out[name] = getattr(self, name)
        return out


def _mean(values: Any) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def describe_link(spec: LinkSpec) -> str:
    rate = f"{spec.rate_kbit / 1000:g} Mbit/s" if spec.rate_kbit else "unshaped"
    loss = f", {spec.loss_percent:g} % loss" if spec.loss_percent else ""
    return f"{rate}{loss}"


def _delta(a: dict[str, float], b: dict[str, float], key: str) -> float:
    return float(b.get(key, 0) - a.get(key, 0))


def _loss(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Packets lost / expected over the window (lost after any retransmission)."""
    lost = _delta(a, b, "packets_lost")
    received = _delta(a, b, "packets_received")
    return lost / (lost + received) if lost + received > 0 else None


def _subscriber_figures(a: Sample, b: Sample, seconds: float) -> dict[str, Any]:
    audio_a, audio_b = a.subscriber.get("audio", {}), b.subscriber.get("audio", {})
    video_a, video_b = a.subscriber.get("video", {}), b.subscriber.get("video", {})
    samples = _delta(audio_a, audio_b, "samples_received")
    streams = int(video_b.get("streams", 0))
    frames = _delta(video_a, video_b, "frames_decoded")
    return {
        "audio_loss": _loss(audio_a, audio_b),
        "audio_concealed": (
            _delta(audio_a, audio_b, "concealed_samples") / samples if samples else None
        ),
        "video_loss": _loss(video_a, video_b),
        "video_fps": frames / seconds / streams if streams and seconds > 0 else None,
        "video_streams": streams,
        "subscriber": {
            f"{kind}.{key}": _delta(a.subscriber.get(kind, {}), values, key)
            for kind, values in b.subscriber.items()
            for key in values
            if key != "streams"
        },
    }


def _consumer_deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, int]:
    """Per kind, each consumer counter's change (consumers matched by their producer)."""
    before = {(c["kind"], c["producer"]): c["counters"] for c in a.get("consumers", [])}
    out: dict[str, int] = {}
    for consumer in b.get("consumers", []):
        old = before.get((consumer["kind"], consumer["producer"]), {})
        for name, value in consumer["counters"].items():
            key = f"{consumer['kind']}.{name}"
            out[key] = out.get(key, 0) + int(value) - int(old.get(name, 0))
    return out


def _publisher_rates(
    a: dict[str, Any], b: dict[str, Any], subscriber_id: str, seconds: float
) -> dict[str, dict[str, float]]:
    """Per figure, per publisher (user id) of video: kbit/s received, frames/s,
    keyframes/s, keyframe requests/s."""
    kbit: dict[str, float] = {}
    fps: dict[str, float] = {}
    keyframes: dict[str, float] = {}
    requests: dict[str, float] = {}
    for producer_id, now in b["producers"].items():
        old = a["producers"].get(producer_id)
        if old is None or now["kind"] != "video" or now["participant_id"] == subscriber_id:
            continue
        user = str(now["user_id"])
        kbit[user] = (now["bytes_received"] - old["bytes_received"]) * 8 / 1000 / seconds
        fps[user] = ((now["frames"] or 0) - (old["frames"] or 0)) / seconds
        keyframes[user] = ((now["keyframes"] or 0) - (old["keyframes"] or 0)) / seconds
        requests[user] = (now["keyframe_requests"] - old["keyframe_requests"]) / seconds
    return {"kbit": kbit, "fps": fps, "keyframes": keyframes, "requests": requests}


def window_figures(
    label: str, spec: LinkSpec, subscriber_id: str, a: Sample, b: Sample
) -> WindowFigures:
    seconds = b.time - a.time
    sub_a = a.observed["subscribers"].get(subscriber_id, {})
    sub_b = b.observed["subscribers"].get(subscriber_id, {})
    wire = sub_b.get("wire") or {}
    by_kind = wire.get("by_kind", {})
    video, audio = by_kind.get("video", {}), by_kind.get("audio", {})
    sent_bytes = b.link.bytes_to_host - a.link.bytes_to_host
    publishers = _publisher_rates(a.observed, b.observed, subscriber_id, seconds)
    return WindowFigures(
        label=label,
        link=describe_link(spec),
        link_kbit=spec.rate_kbit,
        seconds=seconds,
        **_subscriber_figures(a, b, seconds),
        sent_mbit_s=sent_bytes * 8 / 1e6 / seconds,
        sent_packets_s=(b.link.packets_to_host - a.link.packets_to_host) / seconds,
        dropped_by_loss_rule=b.link.dropped_to_host - a.link.dropped_to_host,
        rtp_mbit_s=wire["bytes"] * 8 / 1e6 / seconds if wire else None,
        rtp_packets_s=wire["packets"] / seconds if wire else None,
        video_packets_sent=video.get("packets"),
        video_distinct=video.get("distinct"),
        video_copies_max=video.get("max_copies"),
        audio_copies_max=audio.get("max_copies"),
        consumers=_consumer_deltas(sub_a, sub_b),
        server_cores=(sum(b.server_cpu) - sum(a.server_cpu)) / seconds,
        server_system_cores=(b.server_cpu[1] - a.server_cpu[1]) / seconds,
        machine_cores=(
            (b.machine_busy - a.machine_busy) / seconds
            if a.machine_busy is not None and b.machine_busy is not None
            else None
        ),
        bench_cores=(b.bench_cpu - a.bench_cpu) / seconds,
        publisher_video_kbit_s=publishers["kbit"],
        publisher_keyframes_s=publishers["keyframes"],
        publisher_keyframe_requests_s=publishers["requests"],
        publisher_fps=publishers["fps"],
        bandwidth=_bandwidth(sub_a.get("bandwidth") or {}, sub_b.get("bandwidth") or {}),
    )


def _bandwidth(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    if not b:
        return {}
    out = {k: float(v) for k, v in b.items() if isinstance(v, int | float) and v is not None}
    out["rembs_received"] = float(b.get("rembs_received", 0) - a.get("rembs_received", 0))
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def _kbit(bps: float | None) -> str:
    return "n/a" if bps is None else f"{bps / 1000:,.0f}"


def table(windows: list[WindowFigures]) -> str:
    """The issue's table: one column per window."""
    rows: list[tuple[str, list[str]]] = [
        ("link", [w.link for w in windows]),
        ("audio loss", [_pct(w.audio_loss) for w in windows]),
        ("audio concealed", [_pct(w.audio_concealed) for w in windows]),
        ("video decoded, fps per stream", [_num(w.video_fps) for w in windows]),
        ("video packets lost (after NACK)", [_pct(w.video_loss) for w in windows]),
        ("sent to the subscriber, Mbit/s", [_num(w.sent_mbit_s, 2) for w in windows]),
        ("  packets/s", [_num(w.sent_packets_s, 0) for w in windows]),
        ("  x link rate", [_num(w.sent_over_link_rate, 2) for w in windows]),
        ("copies of each video packet, mean", [_num(w.video_copies_mean, 2) for w in windows]),
        ("  max", [_num(w.video_copies_max, 0) for w in windows]),
        ("  audio max", [_num(w.audio_copies_max, 0) for w in windows]),
        ("server CPU, cores", [_num(w.server_cores, 3) for w in windows]),
        (
            "publishers' video, kbit/s (mean)",
            [_num(w.publisher_video_kbit_s_mean, 0) for w in windows],
        ),
        ("  frames/s per publisher", [_num(w.publisher_fps_mean) for w in windows]),
        ("  keyframes/s per publisher", [_num(w.publisher_keyframes_s_mean, 2) for w in windows]),
        (
            "  keyframe requests/s per publisher",
            [_num(w.publisher_keyframe_requests_s_mean, 2) for w in windows],
        ),
        ("estimate at the end, kbit/s", [_kbit(w.bandwidth.get("estimate_bps")) for w in windows]),
        ("  REMBs in the window", [_num(w.bandwidth.get("rembs_received"), 0) for w in windows]),
        ("  videos held back at the end", [_num(w.bandwidth.get("held"), 0) for w in windows]),
        ("machine busy, cores", [_num(w.machine_cores, 2) for w in windows]),
    ]
    width = max(len(name) for name, _ in rows)
    columns = [max(12, len(w.label), *(len(r[1][i]) for r in rows)) for i, w in enumerate(windows)]
    lines = [
        " " * width
        + "  "
        + "  ".join(w.label.rjust(c) for w, c in zip(windows, columns, strict=True))
    ]
    for name, values in rows:
        cells = "  ".join(v.rjust(c) for v, c in zip(values, columns, strict=True))
        lines.append(f"{name.ljust(width)}  {cells}")
    return "\n".join(lines)
