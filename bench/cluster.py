"""Cluster bench: M lessons of K participants on `urok serve --workers N`, for several N in one run.

    python -m bench.cluster --workers 1,2 --lessons 8 --per-lesson 4 --seconds 20 [--json FILE]

For each worker count the bench starts a real redis-server and a real
`urok serve --workers N` on loopback (bench/cluster_processes.py), creates M
lessons through the journal API on the public port, and asks each lesson's
node (GET /api/v1/lessons/{id}/node: the lesson is placed by load there).
Then K bots per lesson (bench/bot.py, pre-encoded Opus + small VP8, counting
instead of decoding) join and publish. The relay of a WebSocket that lands on
another worker is not there yet, so each bot connects to the lesson's own
worker directly, at the `internal_url` of its node record in Redis: behind one
public URL the relay will do this. Once every bot receives every other bot's
audio and video, and after a warm-up, the bench measures for `--seconds`:

- per node: lessons placed there (the node API's answers), calls and
  forwarded streams (its GET /metrics: urok_calls, urok_consumers), packets
  in and out (urok_media_packets_total), CPU time of the worker process
  (/proc/<pid>/stat; pids are the parent's children, by their `--worker I`);
- the aggregate: streams, server cores (the workers' CPU seconds per wall
  second), streams per core (= streams / server cores), forwarded packets/s,
  frames delivered (marker-bit packets the bots received / frames their peers
  sent x receivers), and the bench's and the machine's CPU.

With `--publishers P` only the first P bots of a lesson publish; with `--sinks`
the media sent to all but `--watchers-per-lesson` bots per lesson is dropped by
nftables on arrival (bench/cluster_sinks.py: the server does all its work, the
bench is spared receiving it; run as root in a network namespace of its own);
with `--per-worker` N workers get N times `--lessons` (bench/cluster_options.py).

The scaling table compares every worker count with the first (a 1,2 run: 2
workers against 1, measured in the same run with the same bots and media).
Everything is bounded: setup by `--setup-timeout`, the window by `--seconds`;
the processes are stopped on exit, Ctrl-C, SIGTERM and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot
from bench.cli import publish_report, run_main, run_reported
from bench.cluster_options import Options, options_json, parse_args
from bench.cluster_processes import ClusterProcess, Scrape, redis_server
from bench.cluster_report import NodeFigures, RunReport, format_report, report_json
from bench.cluster_sinks import (
    SinkError,
    Sinks,
    check_nft,
    packets_sent,
    sinking,
    sunk_packets,
)
from bench.machine import machine_info
from bench.measure import LoopLag, percentile
from bench.preencoded import BenchMedia, PreEncodedTrack, prepare_media
from bench.server import Journal, ServerError, cpu_seconds, machine_busy_seconds
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

JOIN_CONCURRENCY = 6


class BenchError(RuntimeError):
    pass


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


class CountedTrack(PreEncodedTrack):
    """A PreEncodedTrack that tells how many frames (av.Packets) it has handed out."""

    @property
    def frames_sent(self) -> int:
        return self._index


@dataclass
class Member:
    """One bot in a lesson: its tracks and the frames (marker-bit packets) it received.
    `counts`: it processes what it receives (a watcher); with --sinks the others do not."""

    lesson_id: str
    bot: Bot
    counts: bool = True
    sunk: bool = False  # its media is dropped now
    tracks: list[CountedTrack] = field(default_factory=list)
    frames_received: int = 0

    def on_packet(self, _participant_id: str, packet: Any, _now: float) -> None:
        if packet.marker:
            self.frames_received += 1


@dataclass
class Lesson:
    id: str
    node_id: str
    internal_url: str
    members: list[Member] = field(default_factory=list)


async def place_lessons(
    journal: Journal, cluster: ClusterProcess, options: Options
) -> list[Lesson]:
    """Create the lessons, place each through the node API, find its worker's address."""
    records = {record.id: record for record in await cluster.nodes()}
    lessons: list[Lesson] = []
    for number in range(options.lessons):
        students = [f"l{number}-s{i}" for i in range(1, options.per_lesson)]
        lesson_id = await journal.create_lesson(f"l{number}-t", students)
        answer = await journal.call("GET", f"/api/v1/lessons/{lesson_id}/node")
        node_id = answer["node"]["id"]
        if node_id not in records:
            raise BenchError(f"lesson {lesson_id} placed on {node_id}, not a worker of the run")
        lessons.append(Lesson(lesson_id, node_id, records[node_id].internal_url))
    return lessons


async def join_lessons(
    journal: Journal, lessons: list[Lesson], media: BenchMedia, options: Options
) -> None:
    """K bots per lesson, each connected to its lesson's worker; each publishes at once."""
    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(lesson: Lesson, user_id: str, role: str, index: int) -> None:
        async with limit:
            token = await journal.token(lesson.id, user_id, role)
            bot = Bot(lesson.internal_url, token, decode=False)
            member = Member(lesson.id, bot, counts=options.counts(index))
            member.bot.on_packet = member.on_packet
            lesson.members.append(member)  # before connecting: cleanup must see it
            await member.bot.connect(timeout=options.setup_timeout)
            if not options.publishes(index):
                return
            member.tracks = [CountedTrack(media.audio), CountedTrack(media.video)]
            await member.bot.publish(
                [(member.tracks[0], "microphone"), (member.tracks[1], "camera")],
                timeout=options.setup_timeout,
            )

    async def join_lesson(number: int, lesson: Lesson) -> None:
        await join(lesson, f"l{number}-t", "teacher", 0)
        for i in range(1, options.per_lesson):
            await join(lesson, f"l{number}-s{i}", "student", i)

    await asyncio.gather(*(join_lesson(n, lesson) for n, lesson in enumerate(lessons)))


def _missing(lesson: Lesson, receiver: Member) -> list[tuple[str, str, str]]:
    """(receiver, publisher, kind) of every stream to `receiver` no packet arrived on yet."""
    missing = []
    for publisher in lesson.members:
        if publisher is receiver or not publisher.tracks:
            continue
        for kind in ("audio", "video"):
            if receiver.bot.packet_counts.get((publisher.bot.id, kind), 0) == 0:
                missing.append((receiver.bot.id, publisher.bot.id, kind))
    return missing


def missing_media(lessons: list[Lesson]) -> list[tuple[str, str, str]]:
    """(receiver, publisher, kind) of every stream to a bot that counts (all of them but
    the sinks) no packet arrived on yet."""
    return [
        item
        for lesson in lessons
        for m in lesson.members
        if m.counts
        for item in _missing(lesson, m)
    ]


async def sink_on_join(lessons: list[Lesson], sinks: Sinks, options: Options) -> None:
    """Each sink gets the media sent to it dropped from the moment its subscriber
    connection has a port (the bench never receives the whole load, not even while
    joining); returns when all have."""
    sinks_in_all = (options.per_lesson - options.watchers) * len(lessons)
    while len(sinks.bots) < sinks_in_all:
        ready = [
            member
            for lesson in lessons
            for member in lesson.members
            if not member.counts and not member.sunk and Bot.udp_ports(member.bot.subscriber)
        ]
        sinks.add([member.bot for member in ready])
        for member in ready:
            member.sunk = True
        await asyncio.sleep(0.1)


def closed_publishers(lessons: list[Lesson]) -> list[str]:
    """Publishers whose publisher connection is no longer connected (e.g. ICE consent lost
    while the machine starved the bench or the server)."""
    return [
        m.bot.id
        for lesson in lessons
        for m in lesson.members
        if m.tracks and m.bot.publisher and m.bot.publisher.connectionState != "connected"
    ]


async def wait_for_media(lessons: list[Lesson], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while missing := missing_media(lessons):
        if time.monotonic() > deadline:
            raise BenchError(f"{len(missing)} streams without media after {timeout:.0f} s, "
                             f"e.g. {missing[:3]}; publishers' connections not connected: "
                             f"{closed_publishers(lessons)}")  # fmt: skip
        await asyncio.sleep(0.1)


@dataclass
class Snapshot:
    at: float
    scrapes: dict[str, Scrape]
    cpu: dict[str, float]
    supervisor_cpu: float
    bench_cpu: float
    machine_cpu: float | None
    frames_sent: int  # by all publishers x their receivers that count (watchers)
    frames_received: int  # by the bots that count
    packets_received: int  # by all bots, every kind
    packets_sent: int  # RTP by the publishers (aiortc's stats)
    sunk: int  # media packets to the sinks, dropped by nftables


def _frames_sent(lesson: Lesson) -> int:
    """Frames the lesson's publishers sent x those of their receivers that count."""
    counting = [m for m in lesson.members if m.counts]
    return sum(
        track.frames_sent * sum(1 for r in counting if r is not m)
        for m in lesson.members
        for track in m.tracks
    )


def _bench_cpu() -> float:
    """This process's CPU seconds: the bots'."""
    times = os.times()
    return times.user + times.system


async def snapshot(
    http: aiohttp.ClientSession, cluster: ClusterProcess, lessons: list[Lesson], sinks: bool
) -> Snapshot:
    pids = cluster.worker_pids()
    records = {record.id: record for record in await cluster.nodes()}
    scrapes = {n: await cluster.scrape(http, r.internal_url) for n, r in records.items()}
    members = [m for lesson in lessons for m in lesson.members]
    sent = await packets_sent([m.bot for m in members if m.tracks])
    assert cluster.process is not None
    return Snapshot(
        at=time.monotonic(),
        scrapes=scrapes,
        cpu={node: cpu_seconds(pid) for node, pid in pids.items()},
        # With one worker the process is the node itself: no supervisor apart.
        supervisor_cpu=cpu_seconds(cluster.process.pid) if cluster.workers > 1 else 0.0,
        bench_cpu=_bench_cpu(),
        machine_cpu=machine_busy_seconds(),
        frames_sent=sum(_frames_sent(lesson) for lesson in lessons),
        frames_received=sum(m.frames_received for m in members if m.counts),
        packets_received=sum(sum(m.bot.packet_counts.values()) for m in members),
        packets_sent=sent,
        sunk=sunk_packets() if sinks else 0,
    )


def figures(
    options: Options,
    workers: int,
    lessons: list[Lesson],
    before: Snapshot,
    after: Snapshot,
    streams: dict[str, int],
    lag: LoopLag,
) -> RunReport:
    wall = after.at - before.at
    nodes = []
    for node_id in sorted(after.scrapes):
        start, end = before.scrapes[node_id], after.scrapes[node_id]
        cpu = after.cpu[node_id] - before.cpu[node_id]
        nodes.append(
            NodeFigures(
                node_id=node_id,
                lessons=sum(1 for lesson in lessons if lesson.node_id == node_id),
                calls=end.calls,
                participants=end.participants,
                streams=end.streams,
                record_streams=streams.get(node_id, 0),
                cores=cpu / wall,
                packets_in_per_second=(end.packets_in - start.packets_in) / wall,
                packets_out_per_second=(end.packets_out - start.packets_out) / wall,
                forwarded_packets=end.packets_out - start.packets_out,
            )
        )
    sent = after.frames_sent - before.frames_sent
    machine = (
        None
        if after.machine_cpu is None or before.machine_cpu is None
        else (after.machine_cpu - before.machine_cpu) / wall
    )
    return RunReport(
        workers=workers,
        seconds=wall,
        placement={lesson.id: lesson.node_id for lesson in lessons},
        nodes=nodes,
        supervisor_cores=(after.supervisor_cpu - before.supervisor_cpu) / wall,
        bench_cores=(after.bench_cpu - before.bench_cpu) / wall,
        machine_cores=machine,
        frames_delivered=(after.frames_received - before.frames_received) / sent if sent else None,
        received_per_second=(after.packets_received - before.packets_received) / wall,
        bench_loop_lag_p99_ms=_ms(percentile(lag.between(before.at, after.at), 99)),
        fan_out=options.fan_out,
        offered_per_second=(after.packets_sent - before.packets_sent) / wall,
        sunk_per_second=(after.sunk - before.sunk) / wall,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


async def _leave(lessons: list[Lesson]) -> None:
    async def leave(member: Member) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(member.bot.leave(), 15)

    await asyncio.gather(*(leave(m) for lesson in lessons for m in lesson.members))


async def window(
    http: aiohttp.ClientSession, cluster: ClusterProcess, lessons: list[Lesson], options: Options
) -> RunReport:
    """The measured window: a snapshot before and after `options.seconds`."""
    lag = LoopLag()
    lag.start()
    before = await snapshot(http, cluster, lessons, options.sinks)
    await asyncio.sleep(options.seconds)
    after = await snapshot(http, cluster, lessons, options.sinks)
    await lag.stop()
    if closed := closed_publishers(lessons):
        raise BenchError(
            f"{len(closed)} publishers' connections closed in the window: {closed[:3]}"
        )
    streams = {record.id: record.load.streams for record in await cluster.nodes()}
    report = figures(options, cluster.workers, lessons, before, after, streams, lag)
    report.holders = {lesson.id: await cluster.placement.holder(lesson.id) for lesson in lessons}
    return report


async def join_with_sinks(
    journal: Journal, lessons: list[Lesson], media: BenchMedia, options: Options,
    sinks: Sinks | None,
) -> None:  # fmt: skip
    """Join everybody and wait until all media flows; the sinks' is dropped as it does."""
    sinker = None
    if sinks is not None:
        sinker = asyncio.create_task(sink_on_join(lessons, sinks, options))
    try:
        await asyncio.wait_for(join_lessons(journal, lessons, media, options),
                               options.setup_timeout)  # fmt: skip
        await wait_for_media(lessons, options.setup_timeout)
        if sinker is not None:
            await asyncio.wait_for(asyncio.shield(sinker), options.setup_timeout)
    finally:
        if sinker is not None:
            sinker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sinker


async def measure_cluster(
    cluster: ClusterProcess, media: BenchMedia, options: Options
) -> RunReport:
    """Lessons, bots, media, the window: on a cluster that is up."""
    lessons: list[Lesson] = []
    async with aiohttp.ClientSession() as http:
        journal = Journal(cluster.public_url, DEMO_SECRET, http)
        try:
            lessons = await place_lessons(journal, cluster, options)
            _say(options, f"[{cluster.workers}] placed: " + ", ".join(
                f"{node}: {sum(1 for lesson in lessons if lesson.node_id == node)}"
                for node in sorted({lesson.node_id for lesson in lessons})
            ))  # fmt: skip
            with sinking() if options.sinks else contextlib.nullcontext() as sinks:
                await join_with_sinks(journal, lessons, media, options, sinks)
                _say(options, f"[{cluster.workers}] media flows "
                              f"({len(sinks.bots) if sinks else 0} sinks); "
                              f"warm-up {options.warmup:g} s")  # fmt: skip
                await asyncio.sleep(options.warmup)
                return await window(http, cluster, lessons, options)
        finally:
            await _leave(lessons)


async def run_workers(
    workers: int, media: BenchMedia, options: Options, workdir: Path
) -> RunReport:
    async with redis_server(workdir / f"redis-{workers}") as redis_url:
        cluster = ClusterProcess(workers, redis_url, workdir, max_lessons=options.lessons)
        try:
            _say(options, f"[{workers}] starting urok serve --workers {workers}")
            await cluster.start(options.setup_timeout)
            report = await measure_cluster(cluster, media, options)
            _say(options, f"[{workers}] forwarded {report.forwarded_per_second:.0f} pkt/s "
                 f"(x{report.fan_out_ratio or 0:.3f} the fan-out of what was read), cores "
                 + ", ".join(f"{node.cores:.2f}" for node in report.nodes))  # fmt: skip
            if not cluster.running:
                raise ServerError(f"urok serve exited during the run:\n{cluster.log_tail()}")
            return report
        except (BenchError, ServerError) as exc:
            raise BenchError(f"[{workers} workers] {exc}\nlog tail:\n{cluster.log_tail()}") from exc
        finally:
            await cluster.stop()


async def run_bench(options: Options) -> dict[str, Any]:
    if options.sinks:
        check_nft()
    restrict_host_addresses(["127.0.0.1"])
    # Short clips that loop: nothing here matches payloads, so they may repeat.
    media = await asyncio.to_thread(
        prepare_media,
        audio_seconds=4.0,
        width=options.width,
        height=options.height,
        fps=options.fps,
        video_seconds=2.0,
        video_bitrate=options.video_kbps * 1000,
    )
    _say(options, f"media: {media.describe()}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="urok-cluster-bench-") as tmp:
        for workers in options.workers:
            # --per-worker: the load grows with the workers (M lessons per worker).
            run = (
                replace(options, lessons=options.lessons * workers)
                if options.per_worker
                else options
            )
            runs.append(await run_workers(workers, media, run, Path(tmp)))
    return report_json(options_json(options), media.describe(), machine_info(), runs)


async def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv, __doc__.split("\n", 1)[0])
    except SystemExit as exc:
        return int(exc.code or 0)
    result = await run_reported(
        lambda: run_bench(options), "cluster bench", (BenchError, SinkError)
    )
    if isinstance(result, int):
        return result
    await publish_report(format_report(result), result, options.json_path)
    return 0


if __name__ == "__main__":
    run_main(main)
