"""The cluster bench's figures: per node, per worker count, and the scaling between counts.

Definitions (docs/performance.md, "Cluster: one machine, 1 and 2 workers"):

- server cores: the workers' CPU seconds per wall second of the window (the
  supervising parent apart: it only polls its children);
- streams per core = forwarded streams / server cores: what a fully busy core
  carries at the measured cost (the aggregate over all workers);
- streams at one core for the busiest worker = streams / the busiest worker's
  cores: how many streams this spread of lessons would carry before any worker
  needs more than one core (N evenly loaded workers: N x streams per core). A
  projection: it holds while every worker has a core of its own, which the bots
  on the same machine take part of (the report shows the bench's and the
  machine's cores next to it);
- frames delivered: marker-bit packets the bots received / frames their peers
  sent x receivers, in the window, and received pkt/s next to forwarded pkt/s:
  did the machine keep up (the bench's event loop lag says whether the bots did).
  With --sinks only the watchers count frames (bench/cluster_sinks.py);
- forwarded against the fan-out = forwarded pkt/s / (pkt/s in x receivers per
  track): 1.0 when every packet the server read went to every receiver, under
  1 when it held videos back or could not keep up with its own sending;
  offered pkt/s (what the publishers sent) against pkt/s in says whether it
  kept up with reading.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class NodeFigures:
    node_id: str
    lessons: int  # placed here (the node API's answers)
    calls: int  # calls running here (its urok_calls)
    participants: int
    streams: int  # forwarded streams (its urok_consumers) at the window's end
    record_streams: int  # the same as its node record in Redis says
    cores: float  # the worker's CPU seconds per wall second
    packets_in_per_second: float
    packets_out_per_second: float
    forwarded_packets: int  # in the window

    @property
    def streams_per_core(self) -> float | None:
        return self.streams / self.cores if self.cores > 0 else None


@dataclass
class RunReport:
    workers: int
    seconds: float
    placement: dict[str, str]  # lesson id -> node id, as the node API answered
    nodes: list[NodeFigures]
    supervisor_cores: float
    bench_cores: float
    machine_cores: float | None
    frames_delivered: float | None
    received_per_second: float  # packets the bots received, every kind
    bench_loop_lag_p99_ms: float | None
    fan_out: int = 0  # receivers of each published track
    offered_per_second: float = 0.0  # RTP the publishers sent (aiortc's stats)
    sunk_per_second: float = 0.0  # media to the sinks dropped by nftables
    holders: dict[str, str | None] = field(default_factory=dict)  # lesson -> lease holder

    @property
    def streams(self) -> int:
        return sum(node.streams for node in self.nodes)

    @property
    def server_cores(self) -> float:
        return sum(node.cores for node in self.nodes)

    @property
    def streams_per_core(self) -> float | None:
        return self.streams / self.server_cores if self.server_cores > 0 else None

    @property
    def busiest_worker_cores(self) -> float:
        return max((node.cores for node in self.nodes), default=0.0)

    @property
    def streams_at_full_busiest(self) -> float | None:
        busiest = self.busiest_worker_cores
        return self.streams / busiest if busiest > 0 else None

    @property
    def forwarded_per_second(self) -> float:
        return sum(node.packets_out_per_second for node in self.nodes)

    @property
    def in_per_second(self) -> float:
        return sum(node.packets_in_per_second for node in self.nodes)

    @property
    def fan_out_ratio(self) -> float | None:
        """Forwarded / (read x receivers per track)."""
        expected = self.in_per_second * self.fan_out
        return self.forwarded_per_second / expected if expected > 0 else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for node, figures in zip(data["nodes"], self.nodes, strict=True):
            node["streams_per_core"] = figures.streams_per_core
        data |= {
            "streams": self.streams,
            "server_cores": self.server_cores,
            "streams_per_core": self.streams_per_core,
            "busiest_worker_cores": self.busiest_worker_cores,
            "streams_at_full_busiest": self.streams_at_full_busiest,
            "forwarded_per_second": self.forwarded_per_second,
            "in_per_second": self.in_per_second,
            "fan_out_ratio": self.fan_out_ratio,
        }
        return data


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def scaling(runs: list[RunReport]) -> list[dict[str, Any]]:
    """Every run against the first (e.g. 2 workers against 1)."""
    if not runs:
        return []
    base = runs[0]
    return [
        {
            "workers": run.workers,
            "against": base.workers,
            "streams_per_core": _ratio(run.streams_per_core, base.streams_per_core),
            "streams_at_full_busiest": _ratio(
                run.streams_at_full_busiest, base.streams_at_full_busiest
            ),
            "forwarded_per_second": _ratio(run.forwarded_per_second, base.forwarded_per_second),
            "server_cores": _ratio(run.server_cores, base.server_cores),
            "busiest_worker_cores": _ratio(run.busiest_worker_cores, base.busiest_worker_cores),
        }
        for run in runs[1:]
    ]


def report_json(
    options: dict[str, Any], media: str, machine: dict[str, Any], runs: list[RunReport]
) -> dict[str, Any]:
    return {
        "options": options,
        "media": media,
        "machine": machine,
        "runs": [run.to_json() for run in runs],
        "scaling": scaling(runs),
    }


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _short(node_id: str) -> str:
    """`w<i>` of a worker's node id; one process (`--workers 1`) has no suffix."""
    suffix = node_id.rsplit("-", 1)[-1]
    return suffix if suffix.startswith("w") else "single"


def _node_rows(run: dict[str, Any]) -> list[str]:
    rows = []
    for node in run["nodes"]:
        rows.append(
            f"| {run['workers']} | {_short(node['node_id'])} | {node['lessons']} "
            f"| {node['calls']} | {node['participants']} | {node['streams']} "
            f"({node['record_streams']}) | {node['cores']:.2f} "
            f"| {_num(node['streams_per_core'], '.0f')} "
            f"| {node['packets_in_per_second']:.0f} | {node['packets_out_per_second']:.0f} |"
        )
    return rows


def format_report(data: dict[str, Any]) -> str:
    options, machine = data["options"], data["machine"]
    watchers = options.get("watchers_per_lesson")
    sinks = f", {watchers} watching, the others sinks" if options.get("sinks") else ""
    per_worker = " per worker" if options.get("per_worker") else ""
    out = [
        f"cluster bench: {options['lessons']} lessons{per_worker} x {options['per_lesson']} "
        "participants "
        f"({options.get('publishers_per_lesson', options['per_lesson'])} publishing{sinks}"
        f"; {options['expected_streams']} streams), window {options['seconds']:g} s, "
        f"workers {','.join(map(str, options['workers']))}",
        f"machine: {machine['cpus']} CPUs, {machine['cpu_model']}; media: {data['media']}",
        "",
        "| workers | node | lessons | calls | people | streams (record) | cores "
        "| streams/core | pkt/s in | pkt/s out |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in data["runs"]:
        out.extend(_node_rows(run))
    out += [
        "",
        "| workers | streams | server cores | streams/core | busiest worker "
        "| streams at 1 core for the busiest | forwarded pkt/s | received pkt/s "
        "| frames delivered | bench cores (loop lag p99) | machine cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in data["runs"]:
        delivered = run["frames_delivered"]
        out.append(
            f"| {run['workers']} | {run['streams']} | {run['server_cores']:.2f} "
            f"| {_num(run['streams_per_core'], '.0f')} | {run['busiest_worker_cores']:.2f} "
            f"| {_num(run['streams_at_full_busiest'], '.0f')} "
            f"| {run['forwarded_per_second']:.0f} | {run['received_per_second']:.0f} "
            f"| {'n/a' if delivered is None else f'{100 * delivered:.1f} %'} "
            f"| {run['bench_cores']:.2f} ({_num(run['bench_loop_lag_p99_ms'], '.0f')} ms) "
            f"| {_num(run['machine_cores'], '.2f')} |"
        )
    out += [
        "",
        "| workers | offered pkt/s | pkt/s in | forwarded pkt/s | forwarded / (in x "
        f"{options.get('fan_out', 'n/a')}) | dropped to sinks pkt/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in data["runs"]:
        out.append(
            f"| {run['workers']} | {run['offered_per_second']:.0f} | {run['in_per_second']:.0f} "
            f"| {run['forwarded_per_second']:.0f} | {_num(run['fan_out_ratio'], '.3f')} "
            f"| {run['sunk_per_second']:.0f} |"
        )
    for row in data["scaling"]:
        out.append(
            f"\n{row['workers']} workers against {row['against']}: streams/core "
            f"x{_num(row['streams_per_core'], '.2f')}, streams at one core for the busiest "
            f"worker x{_num(row['streams_at_full_busiest'], '.2f')}, forwarded packets/s "
            f"x{_num(row['forwarded_per_second'], '.2f')}, server cores "
            f"x{_num(row['server_cores'], '.2f')}, busiest worker's cores "
            f"x{_num(row['busiest_worker_cores'], '.2f')}"
        )
    return "\n".join(out)
