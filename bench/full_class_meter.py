"""What bench/full_class.py reads over a window: the server's CPU (from /proc), its
packets in and out (GET /metrics), what the sinks were sent, what the receivers got."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench import profile
from bench.cluster_processes import parse_metrics
from bench.cluster_sinks import sunk_packets
from bench.full_class_report import Receiver, Window
from bench.server import ServerProcess, cpu_seconds


class Meter:
    """The server's CPU and forwarded packets over a window, and what the receivers got."""

    def __init__(self, server: ServerProcess, http: aiohttp.ClientSession, token: str) -> None:
        self.server, self.http, self.token = server, http, token
        self.sinks = 0  # subscribers whose media nftables drops (their packets counted)
        self.profiles: dict[str, Path] = {}  # phase -> py-spy recording of its window

    async def packets(self) -> tuple[int, int, int]:
        """Media packets the server received, forwarded, and its pacers dropped."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.get(self.server.base_url + "/metrics", headers=headers) as response:
            text = await response.text()
        scrape = parse_metrics(text)
        dropped = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "urok_pacer_dropped_packets_total"
        )
        return scrape.packets_in, scrape.packets_out, int(dropped)

    async def window(
        self, name: str, seconds: float, receivers: list[Receiver], people: int
    ) -> Window:
        for receiver in receivers:
            receiver.reset()
        cpu, (p_in, p_out, dropped) = cpu_seconds(self.server.pid), await self.packets()
        sunk = sunk_packets() if self.sinks else 0
        started, bench_cpu = time.monotonic(), time.process_time()
        to = self.profiles.get(name)
        if to is None:
            await asyncio.sleep(seconds)
        else:  # py-spy for exactly the window (its sampling costs the server a little CPU)
            await profile.record(self.server.pid, seconds, to)
            print(profile.summarize(to))
        elapsed = time.monotonic() - started
        bench_cpu = time.process_time() - bench_cpu
        cpu = cpu_seconds(self.server.pid) - cpu
        sunk = (sunk_packets() - sunk) if self.sinks else 0
        p_in2, p_out2, dropped2 = await self.packets()
        return Window(
            name,
            people,
            len(receivers),
            server_cores=cpu / elapsed,
            bench_cores=bench_cpu / elapsed,
            packets_in_per_s=(p_in2 - p_in) / elapsed,
            packets_out_per_s=(p_out2 - p_out) / elapsed,
            paced_drops_per_s=(dropped2 - dropped) / elapsed,
            sinks=self.sinks,
            sunk_per_s=sunk / elapsed,
            downlink_kbps=[r.bytes * 8 / 1000 / elapsed for r in receivers],
            packets_per_s=[r.packets / elapsed for r in receivers],
            sizes=_sizes_seen(receivers),
            heard_min=min((len(r.heard) for r in receivers), default=0),
        )


def _sizes_seen(receivers: list[Receiver]) -> dict[str, list[str]]:
    """The resolutions the receivers got from the teacher and from the pupils."""
    teacher: set[str] = set()
    pupils: set[str] = set()
    for receiver in receivers:
        for source, sizes in receiver.sizes.items():
            (teacher if source == receiver.teacher_id else pupils).update(sizes)
    return {"teacher": sorted(teacher), "pupils": sorted(pupils)}
