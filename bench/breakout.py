"""Breakout bench: how long until everybody gets only their room's media after `breakout_open`.

    python -m bench.breakout --rooms 50 --per-room 3 [--publish audio|video|both]
                             [--publishers N] [--main-every N] [--timeout S] [--json FILE]

The bench starts the server itself (bench/server.py, as bench/load.py does),
creates a lesson with rooms x per-room students, and joins a teacher bot (the
host) and one bot per student, all in this process:

1. The teacher publishes Opus audio; `--publishers` students (default: all)
   publish `--publish` media, spread one per room first (room 1's first
   student, room 2's, ..., then second students). Publishers join and
   publish first, the others join after them (one offer each).
2. In the main room everybody is silent: a track sends only every
   `--main-every`-th packet or frame (20: one Opus packet per 400 ms, the
   cadence of Opus DTX in silence). Everybody in the main room receives
   everybody, so P publishers at the full rate would be P x (participants - 1)
   streams: 151 audio publishers are 22,650 streams, far beyond two cores.
   At the moment the bench sends `breakout_open` every track switches to the
   full rate (people start talking in their rooms), so roommates' media
   shows up within one packet time (20 ms) once it flows.
3. Once every bot receives every other publisher, the teacher configures
   `--rooms` rooms and assigns `--per-room` students to each (while closed,
   nothing moves). After `--warmup` seconds it sends `breakout_open`, and the
   clock starts. The teacher stays in the main room, alone.

Who sent a packet is known for sure, not from the server's labels: every
publisher's payloads carry its own 2-byte tag, and a wrapper around its DTLS
transport's `_send_rtp` records payload hash -> (publisher, send time). The
SFU forwards payloads byte-identical, so a receiver looks its packets up
there (nobody decodes, so the tag is harmless). Per bot the bench records,
from the open on: the `breakout` message telling it its room; every
`subscribe_offer` (arrival, answer sent, which tracks it labels); the first
packet from each publishing roommate sent after the bot heard of its room
(so after the server had moved everybody: the room's router forwarded it);
every packet from an outsider (anyone not in its room); every packet its
current labels (the latest offer's `tracks`, or none) put on the wrong person.

A bot is isolated at the latest of: the answer to the post-open offer from
which on its offers label exactly its roommates' tracks (a client shows the
right people), the first fresh packet from each publishing roommate, its last
packet from an outsider and its last wrongly labelled packet. The run is
isolated when every bot is and nothing from outsiders arrived for `--settle`
seconds; the overall time is the latest bot's. CPU (/proc: the server
process, this process, the whole machine) is sampled every 20 ms and read for
the warm-up, for [open, overall isolation] and for `--after` seconds in the
rooms afterwards. A second lesson on the same server (a teacher talking to
one student) runs in a process of its own (`--witness`): the largest gap
between its packets shows how long the server stopped forwarding for everybody.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from bench.bot import Bot
from bench.cli import publish_report, run_main, run_reported
from bench.machine import machine_info
from bench.measure import LoopLag, SendLog, percentile, rtp_payload
from bench.preencoded import (
    BenchMedia,
    EncodedClip,
    PreEncodedTrack,
    encode_audio,
    prepare_media,
)
from bench.server import (
    _CLK_TCK,
    REPO_ROOT,
    Journal,
    ServerProcess,
    _die_with_parent,
    cpu_times,
    server_env,
)
from sfu.aiortc_hooks import SendRtp, restrict_host_addresses
from signalling.config import DEMO_SECRET

TARGET_SECONDS = 3.0
MAX_ROSTER = 500  # the journal API's cap on a lesson's roster
JOIN_CONCURRENCY = 8
SAMPLE_INTERVAL = 0.02
SOURCES = {"audio": "microphone", "video": "camera"}
AMBIGUOUS = ("", 0.0)  # a payload two publishers sent (VP8 fragments can coincide)


class BenchError(RuntimeError):
    pass


@dataclass
class Options:
    rooms: int = 50
    per_room: int = 3
    publish: str = "audio"  # audio | video | both
    publishers: int | None = None  # students that publish; None: all
    main_every: int = 20
    room_every: int = 1  # in the rooms (after the open): every Nth packet/frame
    # Students who also publish a camera, sent at its full rate in the main room too
    # (a large call with a few cameras on), one per room first.
    cameras: int = 0
    timeout: float = 30.0
    settle: float = 1.0
    warmup: float = 2.0
    after: float = 3.0
    setup_timeout: float = 180.0
    width: int = 320
    height: int = 180
    fps: int = 15
    video_kbps: int = 150
    json_path: str | None = None
    server_log: str | None = None
    profile: str | None = None
    profile_seconds: float = 10.0
    profile_phase: str = "open"  # from the open on, or "rooms": once they have settled
    quiet: bool = False
    # The server's `[media] audio_slots`; None: its default (bounded audio on).
    audio_slots: int | None = None

    @property
    def students(self) -> int:
        return self.rooms * self.per_room

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("audio", "video") if self.publish == "both" else (self.publish,)

    @property
    def publisher_count(self) -> int:
        return self.students if self.publishers is None else self.publishers


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- media


class _Switch:
    """Flipped once, at the open: silent students start talking."""

    def __init__(self, loud: bool = False) -> None:
        self.loud = asyncio.Event()
        if loud:
            self.loud.set()


class RoomTrack(PreEncodedTrack):
    """A PreEncodedTrack that tags its payloads and sends sparsely until its switch flips."""

    def __init__(
        self, clip: EncodedClip, tag: bytes, switch: _Switch, every: int, loud_every: int = 1
    ) -> None:
        super().__init__(clip)
        self.tag = tag
        self.switch = switch
        self.every = max(1, every)
        self.loud_every = max(1, loud_every)

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        if self.switch.loud.is_set() and self.loud_every > 1:
            kept = -(-self._index // self.loud_every) * self.loud_every
            delay = self._start + kept * self._clip.period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._index = kept
        elif not self.switch.loud.is_set() and self.every > 1:
            # Skip to the next kept packet, but wake at once when the switch flips.
            kept = -(-self._index // self.every) * self.every
            delay = self._start + kept * self._clip.period - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.switch.loud.wait(), delay)
            if self.switch.loud.is_set():  # resume in real time, without a burst
                now_index = int((time.monotonic() - self._start) / self._clip.period)
                self._index = max(self._index, now_index)
            else:
                self._index = kept
        packet = await super().recv()
        tagged = av.Packet(bytes(packet) + self.tag)
        tagged.pts = packet.pts
        tagged.time_base = packet.time_base
        return tagged


class _RegistryLog(SendLog):
    """SendLog's hook on a publisher's `_send_rtp`, recording payload hash -> (sender, time)."""

    def __init__(self, sender: str, registry: dict[int, tuple[str, float]]) -> None:
        super().__init__()
        self.sender = sender
        self.registry = registry

    def _wrap(self, send: SendRtp, kinds: dict[int, str]) -> SendRtp:
        sender, registry = self.sender, self.registry

        async def send_rtp(data: bytes) -> None:
            payload = rtp_payload(data)
            if payload is not None and int.from_bytes(data[8:12], "big") in kinds:
                key = hash(payload)
                known = registry.get(key)
                if known is None or known[0] == sender:
                    registry[key] = (sender, time.monotonic())
                else:
                    registry[key] = AMBIGUOUS
            await send(data)

        return send_rtp


# --------------------------------------------------------------------------- bots


@dataclass
class Offer:
    started: float  # the bot began handling it (it arrived)
    answered: float  # the answer was sent
    tracks: frozenset[tuple[str, str]]  # (participant id, kind) it labels
    m_sections: int
    sdp_bytes: int


class _Bot(Bot):
    """A counting bot that timestamps its offers and breakout notices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offers: list[Offer] = []
        self.rooms_told: list[tuple[float, str | None, bool]] = []  # (time, room, opened)

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "breakout":
            self.rooms_told.append(
                (time.monotonic(), message.get("room"), bool(message["state"]["opened"]))
            )
        await super()._on_message(message)

    def _make_counter(self, mid: str) -> Callable[[RtpPacket, RTCRtpCodecParameters], Any]:
        # The base counter ignores packets on an m-section the latest offer does not
        # label; the bench must see those too (as labelled by nobody).
        count = super()._make_counter(mid)

        async def observe(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            if self.track_info.get(mid) is None and self.on_packet is not None:
                self.on_packet("", packet, time.monotonic())
            else:
                await count(packet, codec)

        return observe

    async def _answer(self, message: dict[str, Any]) -> None:
        started = time.monotonic()
        await super()._answer(message)
        sdp = message["sdp"]
        self.offers.append(
            Offer(
                started,
                time.monotonic(),
                # An audio slot names nobody (docs/protocol.md "Audio slots").
                frozenset(
                    (t["participant_id"], t["kind"])
                    for t in message["tracks"].values()
                    if t.get("participant_id")
                ),
                sdp.count("\nm=") + sdp.startswith("m="),
                len(sdp),
            )
        )


@dataclass
class Ledger:
    """Shared by all bots: who sent which payload when, and packets' transit times."""

    registry: dict[int, tuple[str, float]] = field(default_factory=dict)
    warm_from: float | None = None  # transit is recorded from here (the warm-up) on
    transit_warm: list[float] = field(default_factory=list)  # before the open
    transit_after: list[float] = field(default_factory=list)  # after it


@dataclass
class Member:
    """One participant: its bot, its room, and what it received after the open."""

    user_id: str
    room: str | None  # None: the host, in the main room
    kinds: tuple[str, ...]  # what it publishes
    ledger: Ledger
    bot: _Bot | None = None
    roommates: frozenset[str] = frozenset()  # participant ids in its room, itself excluded
    publishing_roommates: frozenset[str] = frozenset()
    expected_tracks: frozenset[tuple[str, str]] = frozenset()
    opened_at: float | None = None  # set at the open: from then on packets are examined
    first_fresh: dict[str, float] = field(default_factory=dict)
    outsider_packets: int = 0
    outsiders: set[str] = field(default_factory=set)
    last_outsider: float | None = None
    outsider_sent: list[float] = field(default_factory=list)  # when outsiders sent them
    mislabeled: int = 0
    last_mislabel: float | None = None
    ambiguous: int = 0
    unattributed: int = 0
    received: int = 0
    switch: _Switch | None = None
    told: float | None = None  # when the bot heard that the rooms were open
    observing: bool = True  # off at the end of observation (leaving is not measured)
    camera_on: bool = False  # publishes a camera at its full rate in the main room
    warm_bytes: int = 0  # RTP payload bytes received during the warm-up (main room)

    @property
    def id(self) -> str:
        assert self.bot is not None
        return self.bot.id

    def on_packet(self, label: str, packet: RtpPacket, now: float) -> None:
        if not self.observing:
            return
        ledger, opened = self.ledger, self.opened_at
        if opened is None:
            if ledger.warm_from is not None:
                self.warm_bytes += len(packet.payload)
                info = ledger.registry.get(hash(packet.payload))
                if info is not None and info is not AMBIGUOUS:
                    ledger.transit_warm.append(now - info[1])
            return
        self.received += 1
        info = ledger.registry.get(hash(packet.payload))
        if info is None:
            self.unattributed += 1
            return
        if info is AMBIGUOUS:
            self.ambiguous += 1
            return
        sender, sent_at = info
        ledger.transit_after.append(now - sent_at)
        if sender in self.roommates:
            if sender not in self.first_fresh:
                told = self.told
                if told is None:
                    told = self.told = self.told_at(opened)
                # Sent after this bot heard of its room, so after the server moved everybody:
                # the room's router forwarded it.
                if told is not None and sent_at > told:
                    self.first_fresh[sender] = now
        else:
            self.outsider_packets += 1
            self.outsiders.add(sender)
            self.last_outsider = now
            self.outsider_sent.append(sent_at)
        if label != sender:
            self.mislabeled += 1
            self.last_mislabel = now

    def offers_after(self, t0: float) -> list[Offer]:
        assert self.bot is not None
        return [o for o in self.bot.offers if o.started >= t0]

    def labels_right_at(self, t0: float) -> float | None:
        """When the bot answered the first offer from which on all label its room exactly
        (t0: the offers it had already did, and none came after)."""
        assert self.bot is not None
        before = [o for o in self.bot.offers if o.started < t0]
        offers = self.offers_after(t0)
        at = t0 if before and before[-1].tracks == self.expected_tracks else None
        for offer in offers:
            if offer.tracks == self.expected_tracks:
                at = offer.answered if at is None else at
            else:
                at = None
        return at

    def told_at(self, t0: float) -> float | None:
        assert self.bot is not None
        return next((t for t, room, opened in self.bot.rooms_told if t >= t0 and opened), None)

    def isolated_at(self, t0: float) -> float | None:
        labels = self.labels_right_at(t0)
        if labels is None or not self.publishing_roommates <= self.first_fresh.keys():
            return None
        return max(
            labels,
            *self.first_fresh.values(),
            self.last_outsider or t0,
            self.last_mislabel or t0,
        )


# --------------------------------------------------------------------------- scenario


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


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


@dataclass
class CpuSpan:
    """CPU seconds spent in an interval."""

    seconds: float
    server: float | None
    server_system: float | None
    bench: float
    machine: float  # every process on the machine, the two above included

    @property
    def others(self) -> float | None:
        """What the rest of the machine used (other work on a shared box)."""
        if self.server is None:
            return None
        return max(0.0, self.machine - self.server - self.bench)

    def cores(self, value: float | None) -> float | None:
        return None if value is None or self.seconds <= 0 else value / self.seconds


class _Sampler:
    """(time, server CPU, bench CPU, machine CPU) every 20 ms: CPU for any interval afterwards."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, tuple[float, float] | None, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        try:
            server: tuple[float, float] | None = cpu_times(self.pid)
        except OSError:
            server = None
        times = os.times()
        self.samples.append((time.monotonic(), server, times.user + times.system, _machine_busy()))

    def start(self) -> None:
        self.sample()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.sample()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    def between(self, t0: float, t1: float) -> CpuSpan:
        """From the first sample at >= t0 to the first at >= t1."""
        first = next((s for s in self.samples if s[0] >= t0), self.samples[0])
        last = next((s for s in self.samples if s[0] >= t1), self.samples[-1])
        server = server_system = None
        if first[1] is not None and last[1] is not None:
            server = sum(last[1]) - sum(first[1])
            server_system = last[1][1] - first[1][1]
        return CpuSpan(
            last[0] - first[0], server, server_system, last[2] - first[2], last[3] - first[3]
        )


def plan(options: Options) -> list[Member]:
    """The teacher, then the students room by room; publishers spread one per room first."""
    ledger = Ledger()
    teacher = Member("bench-t", None, ("audio",), ledger)
    students = [
        Member(f"bench-r{room + 1}-s{seat + 1}", f"r{room + 1}", (), ledger)
        for room in range(options.rooms)
        for seat in range(options.per_room)
    ]
    order = sorted(range(len(students)), key=lambda i: (i % options.per_room, i))
    for i in order[: options.publisher_count]:
        students[i].kinds = options.kinds
    for i in order[: options.cameras]:
        students[i].kinds = tuple(dict.fromkeys((*students[i].kinds, "video")))
        students[i].camera_on = True
    return [teacher, *students]


async def _join(member: Member, journal: Journal, lesson_id: str, base_url: str, role: str) -> None:
    token = await journal.token(lesson_id, member.user_id, role)
    member.bot = _Bot(base_url, token, decode=False, on_packet=member.on_packet)
    await member.bot.connect()


async def _publish(
    member: Member, media: BenchMedia, index: int, every: int, room_every: int = 1
) -> None:
    bot = member.bot
    assert bot is not None
    member.switch = _Switch()
    clips = {"audio": media.audio, "video": media.video}
    tag = index.to_bytes(2, "big")

    def sparse(kind: str) -> int:  # a camera that is on sends every frame
        return 1 if kind == "video" and member.camera_on else every

    tracks = [
        (RoomTrack(clips[k], tag, member.switch, sparse(k), room_every), SOURCES[k])
        for k in member.kinds
    ]
    await bot.publish(tracks)  # type: ignore[arg-type]
    assert bot.publisher is not None
    _RegistryLog(bot.id, member.ledger.registry).install(bot.publisher)


def _errors(members: list[Member]) -> list[str]:
    out = []
    for m in members:
        if m.bot is None:
            continue
        for message in m.bot.messages:
            if message["type"] == "error":
                text = str(message.get("message"))
                text = text if len(text) <= 100 else text[:100] + "..."
                out.append(f"{m.user_id}: {message.get('code')}: {text}")
    return out


def _missing_main_room(members: list[Member]) -> list[tuple[str, str, str]]:
    """(receiver, publisher, kind) not received yet. A bot whose offers carry audio
    slots (docs/protocol.md "Audio slots") hears the students through them, by the
    loudest, not each one: it waits for the teacher's audio (a host's is its own
    m-section) and every video only."""
    bots = [(m.user_id, m.bot, m.kinds) for m in members if m.bot is not None]
    host = bots[0][1].id if bots else None
    publishers = [(bot.id, kind) for _, bot, kinds in bots for kind in kinds]
    unslotted = [(pid, kind) for pid, kind in publishers if kind != "audio" or pid == host]
    missing = []
    for user_id, bot, _ in bots:
        slotted = any(info.get("slot") for info in bot.track_info.values())
        counts, own = bot.packet_counts, bot.id
        for pid, kind in unslotted if slotted else publishers:
            if pid != own and counts.get((pid, kind), 0) == 0:
                missing.append((user_id, pid, kind))
    return missing


def _describe_missing(missing: list[tuple[str, str, str]]) -> str:
    receivers = {r for r, _, _ in missing}
    return f"{len(missing)} (receiver, publisher, kind) missing at {len(receivers)} receivers; " + (
        ", ".join(f"{r} <- {p} {k}" for r, p, k in missing[:3])
    )


async def _until(
    check: Callable[[], bool],
    members: list[Member],
    what: str,
    interval: float = 0.1,
    progress: Callable[[], str] | None = None,
) -> None:
    said = time.monotonic()
    while not check():
        if progress is not None and time.monotonic() - said >= 10:
            said = time.monotonic()
            print(f"  still {what}: {progress()}", flush=True)
        errors = _errors(members)
        if errors:
            raise BenchError(
                f"{len(errors)} error message(s) from the server while {what}; first: "
                + "; ".join(errors[:3])
            )
        for m in members:
            if m.bot is not None and m.bot.closed_by_server.is_set():
                raise BenchError(f"the server closed {m.user_id}'s WebSocket while {what}")
        await asyncio.sleep(interval)


async def _setup(
    members: list[Member],
    journal: Journal,
    base_url: str,
    media: BenchMedia,
    options: Options,
) -> str:
    teacher, students = members[0], members[1:]
    lesson_id = await journal.create_lesson(teacher.user_id, [s.user_id for s in students])
    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(member: Member, role: str, index: int) -> None:
        async with limit:
            await _join(member, journal, lesson_id, base_url, role)
            if member.kinds:
                await _publish(member, media, index, options.main_every, options.room_every)

    await join(teacher, "teacher", 0)
    publishing = [(i, m) for i, m in enumerate(members) if m.kinds and m is not teacher]
    silent = [m for m in students if not m.kinds]
    # Publishers first (their offers coalesce), then the rest: one offer each with every track.
    await asyncio.gather(*(join(m, "student", i) for i, m in publishing))
    _say(options, f"{len(publishing)} publishing students joined; the others are joining")
    await asyncio.gather(*(join(m, "student", 0) for m in silent))
    _say(options, f"{len(members)} joined; waiting until everybody receives every publisher")
    try:
        await _until(
            lambda: not _missing_main_room(members),
            members,
            "setting up",
            interval=0.5,
            progress=lambda: _describe_missing(_missing_main_room(members)),
        )
    except asyncio.CancelledError:
        missing = _missing_main_room(members)
        _say(options, f"still missing media for {len(missing)} (receiver, publisher, kind)")
        raise

    rooms: dict[str, list[Member]] = {}
    for m in students:
        assert m.room is not None
        rooms.setdefault(m.room, []).append(m)
    for m in members:
        mates = [] if m.room is None else [o for o in rooms[m.room] if o is not m]
        m.roommates = frozenset(o.id for o in mates)
        m.publishing_roommates = frozenset(o.id for o in mates if o.kinds)
        m.expected_tracks = frozenset((o.id, k) for o in mates for k in o.kinds)
    assert teacher.bot is not None
    reply = await teacher.bot.request(
        {"type": "breakout_configure", "count": options.rooms},
        lambda msg: msg["type"] == "breakout",
    )
    if reply["type"] == "error":
        raise BenchError(f"breakout_configure: {reply['code']}: {reply['message']}")
    assignments = {m.id: m.room for m in students}
    reply = await teacher.bot.request(
        {"type": "breakout_assign", "assignments": assignments},
        lambda msg: msg["type"] == "breakout" and bool(msg["state"]["assignments"]),
    )
    if reply["type"] == "error":
        raise BenchError(f"breakout_assign: {reply['code']}: {reply['message']}")
    state_rooms = [r["id"] for r in reply["state"]["rooms"]]
    if sorted(rooms) != sorted(state_rooms):
        raise BenchError(f"the server made rooms {state_rooms}, expected {sorted(rooms)}")
    return lesson_id


def _metrics(members: list[Member], t0: float) -> dict[str, list[float | None]]:
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


def _missing(members: list[Member], t0: float) -> list[str]:
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


def _main_room_streams(members: list[Member], t0: float) -> int:
    """The m-sections of each bot's last offer before the open, summed: the streams
    the main room forwards (with audio slots, fewer than its tracks x people)."""
    total = 0
    for m in members:
        before = [o for o in m.bot.offers if o.started < t0] if m.bot is not None else []
        total += before[-1].m_sections if before else 0
    return total


def _downlink_kbps(members: list[Member], seconds: float) -> tuple[float | None, float | None]:
    rates = [8 * m.warm_bytes / seconds / 1000 for m in members] if seconds > 0 else []
    return percentile(rates, 50), max(rates, default=None)


METRICS_TOKEN = secrets.token_urlsafe(16)
LAG_METRIC = "urok_event_loop_lag_recent_max_seconds"


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


async def run_scenario(
    base_url: str, pid: int, media: BenchMedia, options: Options, server: ServerProcess
) -> Report:
    members = plan(options)
    lesson_id: str | None = None
    lag = LoopLag()
    sampler = _Sampler(pid)
    witness = _Witness()
    profiler: asyncio.Task[str] | None = None
    profile_text: str | None = None
    async with aiohttp.ClientSession() as http:
        journal = Journal(base_url, DEMO_SECRET, http)
        try:
            started = time.monotonic()
            async with asyncio.timeout(options.setup_timeout):
                await witness.start(journal, base_url)
                lesson_id = await _setup(members, journal, base_url, media, options)
            setup_seconds = time.monotonic() - started
            setup_offers = sum(len(m.bot.offers) for m in members if m.bot is not None)
            _say(
                options,
                f"main room ready in {setup_seconds:.1f} s ({setup_offers} subscribe offers); "
                f"rooms configured and assigned; opening in {options.warmup:g} s",
            )
            sampler.start()
            lag.start()
            warmed = members[0].ledger.warm_from = sampler.samples[0][0]
            await asyncio.sleep(options.warmup)
            errors_before = len(_errors(members))
            teacher = members[0]
            assert teacher.bot is not None
            sampler.sample()
            t0 = sampler.samples[-1][0]
            for m in members:
                m.opened_at = t0
            for m in members:
                if m.switch is not None:
                    m.switch.loud.set()
            if options.profile and options.profile_phase == "open":
                from bench import profile

                profiler = asyncio.ensure_future(
                    profile.record(pid, options.profile_seconds, Path(options.profile))
                )
            await teacher.bot.send({"type": "breakout_open"})
            isolated, overall = await _observe(members, options, t0)
            observed = time.monotonic() - t0
            server_lag = await _server_loop_lag(http, base_url)
            for m in members:
                m.observing = False
            # Rooms as they stay: what the server spends once the moves are done.
            settled = time.monotonic()
            if options.profile and options.profile_phase == "rooms":
                from bench import profile

                profiler = asyncio.ensure_future(
                    profile.record(pid, options.profile_seconds, Path(options.profile))
                )
            await asyncio.sleep(options.after)
            # Leaving makes its own log noise: look at the log as it is now.
            log = server.log_tail(100_000).splitlines()
            await sampler.stop()
            await lag.stop()
            if profiler is not None:
                from bench import profile

                await profiler
                profile_text = profile.summarize(options.profile or "")
            _say(
                options,
                f"isolated after {overall:.2f} s" if isolated else "not isolated in time",
            )
        finally:
            if profiler is not None and not profiler.done():
                profiler.cancel()
                with contextlib.suppress(BaseException):
                    await profiler
            await sampler.stop()
            await lag.stop()
            await _leave(members)
            await witness.stop(journal)
            if lesson_id is not None:
                with contextlib.suppress(Exception):
                    await journal.end_lesson(lesson_id)

    t_end = t0 + (overall if overall is not None else observed)
    span = sampler.between(t0, t_end)
    warm = sampler.between(warmed, t0)
    rooms = sampler.between(settled, settled + options.after)
    lags = lag.between(t0, t_end)
    p99_lag = percentile(lags, 99)
    publishers = [m for m in members if m.kinds]
    tracks = sum(len(m.kinds) for m in publishers)
    participants = len(members)
    after = [m.offers_after(t0) for m in members]
    report = Report(
        options=options,
        machine=machine_info(),
        media=media.describe(),
        participants=participants,
        publishers=len(publishers),
        main_room_tracks=tracks,
        main_room_streams=_main_room_streams(members, t0),
        main_room_downlink_kbps=_downlink_kbps(members, t0 - warmed),
        setup_seconds=setup_seconds,
        setup_offers=setup_offers,
        isolated=isolated,
        overall_seconds=overall,
        observed_seconds=observed,
        per_bot=_metrics(members, t0),
        offers_after_open=[len(offers) for offers in after],
        m_sections_after_open_max=max((o.m_sections for a in after for o in a), default=0),
        offer_bytes_after_open_max=max((o.sdp_bytes for a in after for o in a), default=0),
        outsider_packets=sum(m.outsider_packets for m in members),
        outsider_packets_by_bot_max=max(m.outsider_packets for m in members),
        leaked_packets=_leaked(members, t0),
        transit_warm_ms=_spread(members[0].ledger.transit_warm),
        transit_after_ms=_spread(members[0].ledger.transit_after),
        mislabeled_packets=sum(m.mislabeled for m in members),
        ambiguous_packets=sum(m.ambiguous for m in members),
        unattributed_packets=sum(m.unattributed for m in members),
        server_cpu=span.server,
        server_system_cpu=span.server_system,
        bench_cpu=span.bench,
        others_cores=span.cores(span.others),
        loop_lag_p99_ms=None if p99_lag is None else 1000 * p99_lag,
        warmup_server_cores=warm.cores(warm.server),
        warmup_bench_cores=warm.cores(warm.bench),
        warmup_others_cores=warm.cores(warm.others),
        rooms_server_cores=rooms.cores(rooms.server),
        rooms_bench_cores=rooms.cores(rooms.bench),
        witness_gap_before_ms=_ms(witness.max_gap(warmed, t0)),
        witness_gap_ms=_ms(witness.max_gap(t0, t_end)),
        server_loop_lag_ms=_ms(server_lag),
        missing=[] if isolated else _missing(members, t0),
        warnings=[],
        profile=profile_text,
    )
    errors = _errors(members)[errors_before:]
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
    return report


async def _leave(members: list[Member]) -> None:
    await asyncio.gather(*(_leave_bot(m.bot) for m in members if m.bot is not None))


async def _leave_bot(bot: Bot) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(bot.leave(), 15)
    if bot.session is not None and not bot.session.closed:
        await bot.session.close()


class _Witness:
    """Another lesson on the same server, a teacher talking to one student: rooms don't touch it.

    Its two bots run in a process of their own (`--witness`), so the bench's busy
    event loop does not delay them: the largest gap between the student's
    packets shows how long the server held up forwarding for everybody.
    """

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.lesson_id: str | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, journal: Journal, base_url: str) -> None:
        self.lesson_id = await journal.create_lesson("bench-w-t", ["bench-w-s"])
        tokens = [
            await journal.token(self.lesson_id, "bench-w-t", "teacher"),
            await journal.token(self.lesson_id, "bench-w-s", "student"),
        ]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.breakout",
            "--witness",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=server_env(),
            cwd=str(REPO_ROOT),
            preexec_fn=_die_with_parent,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        # The tokens go through stdin, not the command line (which `ps` shows).
        self.process.stdin.write(json.dumps([base_url, *tokens]).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise BenchError(f"the witness process did not start: {line!r}")

    def max_gap(self, t0: float, t1: float) -> float | None:
        # From the last packet before t0 on, so a stall that begins at t0 counts whole.
        before = [t for t in self.arrivals if t < t0][-1:]
        times = before + [t for t in self.arrivals if t0 <= t <= t1]
        if len(times) < 2:
            return None
        return max(b - a for a, b in itertools.pairwise(times))

    async def stop(self, journal: Journal) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # end of input: it leaves and prints its arrival times
            try:
                out, _ = await asyncio.wait_for(process.communicate(), 30)
                self.arrivals = json.loads(out.decode().splitlines()[-1])
            except (TimeoutError, ValueError, IndexError):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self.lesson_id is not None:
            with contextlib.suppress(Exception):
                await journal.end_lesson(self.lesson_id)


async def witness_main() -> int:
    """The witness process: publish and receive until stdin ends, then print arrival times.

    stdin's first line is JSON: [server URL, teacher token, student token].
    """
    restrict_host_addresses(["127.0.0.1"])
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    base_url, teacher_token, student_token = json.loads(await reader.readline())
    arrivals: list[float] = []
    audio = await asyncio.to_thread(encode_audio, 10)
    teacher = Bot(base_url, teacher_token, decode=False)
    student = Bot(
        base_url, student_token, decode=False, on_packet=lambda p, k, now: arrivals.append(now)
    )
    try:
        await teacher.connect()
        await student.connect()
        track = RoomTrack(audio, b"\xff\xff", _Switch(loud=True), 1)
        await teacher.publish([(track, "microphone")])
        print("ready", flush=True)
        await reader.read()
    finally:
        await asyncio.gather(_leave_bot(teacher), _leave_bot(student))
    print(json.dumps(arrivals), flush=True)
    return 0


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
    _say(options, f"media: {media.describe()}")
    with tempfile.TemporaryDirectory(prefix="urok-breakout-") as tmp:
        slots = options.audio_slots
        env = {"UROK_METRICS_TOKEN": METRICS_TOKEN}
        if slots is not None:
            env["UROK_MEDIA_AUDIO_SLOTS"] = str(slots)
        server = ServerProcess("signalling.cli", Path(tmp) / "server.log", env=env)
        try:
            _say(options, f"starting the server on {server.base_url}")
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


# --------------------------------------------------------------------------- report


def _leaked(members: list[Member], t0: float) -> int:
    told = [t for t in (m.told_at(t0) for m in members) if t is not None]
    if not told:
        return sum(len(m.outsider_sent) for m in members)
    moved = min(told)
    return sum(1 for m in members for sent in m.outsider_sent if sent > moved)


def _spread(seconds: list[float]) -> tuple[float | None, float | None, float | None]:
    return (
        _ms(percentile(seconds, 50)),
        _ms(percentile(seconds, 99)),
        _ms(max(seconds, default=None)),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_report(report: Report) -> str:
    o, machine = report.options, report.machine
    lines = [
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
    names = {
        "told_room": "breakout message (its room)",
        "first_offer": "first subscribe_offer arrived",
        "labels_right": "offer labelling its room answered",
        "roommates_fresh": "fresh media from every roommate",
        "last_outsider_packet": "last packet from an outsider",
        "isolated": "isolated (latest of the above)",
        "answer_took": "the bot took to answer (last offer)",
    }
    for metric, name in names.items():
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
    offers = report.offers_after_open
    lines += [
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
    for problem in report.missing[:10]:
        lines.append(f"missing: {problem}")
    if len(report.missing) > 10:
        lines.append(f"missing: ... and {len(report.missing) - 10} more bots")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    if report.profile:
        when = "from the open on" if o.profile_phase == "open" else "in the rooms"
        lines += ["", f"server profile {when}: {report.profile}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.breakout",
        description="Time from breakout_open until every bot receives only its room's media.",
    )
    parser.add_argument("--rooms", type=int, default=50, help="breakout rooms, 1..50")
    parser.add_argument("--per-room", type=int, default=3, help="students per room")
    parser.add_argument("--publish", choices=("audio", "video", "both"), default="audio")
    parser.add_argument(
        "--publishers",
        type=int,
        help="how many students publish (default all), one per room first",
    )
    parser.add_argument(
        "--main-every",
        type=int,
        default=20,
        help="in the main room students send every Nth packet/frame (default 20)",
    )
    parser.add_argument(
        "--room-every",
        type=int,
        default=1,
        help="in the rooms (from the open on) every Nth packet/frame (default 1: all); "
        "more than 1 when the bench process cannot carry everybody at full rate",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds after the open to give up (30)"
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="quiet seconds that confirm isolation (1)"
    )
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--after", type=float, default=3.0, help="seconds of CPU measured in the rooms (3)"
    )
    parser.add_argument("--setup-timeout", type=float, default=180.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--video-kbps", type=int, default=150)
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    parser.add_argument("--server-log", help="keep the server's log here")
    parser.add_argument(
        "--profile",
        help="record the server with py-spy from the open on into this file and print a summary",
    )
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument(
        "--profile-phase",
        choices=("open", "rooms"),
        default="open",
        help="profile from the open on, or in the rooms once isolated (for --after seconds)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--cameras",
        type=int,
        default=0,
        help="students who also publish a camera at its full rate in the main room",
    )
    parser.add_argument(
        "--audio-slots",
        type=int,
        help="the server's [media] audio_slots (default: its own, 6; 0: every microphone "
        "forwarded to everyone, as before bounded audio)",
    )
    args = parser.parse_args(argv)
    options = Options(
        rooms=args.rooms,
        per_room=args.per_room,
        publish=args.publish,
        publishers=args.publishers,
        main_every=args.main_every,
        room_every=args.room_every,
        timeout=args.timeout,
        settle=args.settle,
        warmup=args.warmup,
        after=args.after,
        setup_timeout=args.setup_timeout,
        width=args.width,
        height=args.height,
        fps=args.fps,
        video_kbps=args.video_kbps,
        json_path=args.json_path,
        server_log=args.server_log,
        profile=args.profile,
        profile_seconds=args.profile_seconds,
        profile_phase=args.profile_phase,
        quiet=args.quiet,
        audio_slots=args.audio_slots,
        cameras=args.cameras,
    )
    problems = []
    if not 1 <= options.rooms <= 50:
        problems.append("--rooms must be 1..50")
    if options.per_room < 1 or options.students > MAX_ROSTER:
        problems.append(f"--per-room must be at least 1, and rooms x per-room at most {MAX_ROSTER}")
    if options.publishers is not None and not 0 <= options.publishers <= options.students:
        problems.append("--publishers must be 0..rooms x per-room")
    if not 1 <= options.main_every <= 1000 or not 1 <= options.room_every <= 1000:
        problems.append("--main-every and --room-every must be 1..1000")
    if not 1 <= options.timeout <= 300 or not 0 <= options.settle <= 30:
        problems.append("--timeout must be 1..300 and --settle 0..30")
    if not 0 <= options.after <= 60:
        problems.append("--after must be 0..60")
    if not 0 <= options.warmup <= 60 or not 10 <= options.setup_timeout <= 600:
        problems.append("--warmup must be 0..60 and --setup-timeout 10..600")
    if not (16 <= options.width <= 1920 and 16 <= options.height <= 1080):
        problems.append("video size must be within 16x16..1920x1080")
    if not 1 <= options.fps <= 60 or not 50 <= options.video_kbps <= 5000:
        problems.append("--fps must be 1..60 and --video-kbps 50..5000")
    if not 0 <= options.cameras <= options.students:
        problems.append("--cameras must be 0..rooms x per-room")
    if options.audio_slots is not None and not 0 <= options.audio_slots <= 50:
        problems.append("--audio-slots must be 0..50")
    if problems:
        parser.error("; ".join(problems))
    return options


async def main(argv: list[str] | None = None) -> int:
    """`python -m bench.breakout`: run, print the report; 0 when isolation was reached."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--witness"]:
        return await witness_main()
    try:
        options = parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    report = await run_reported(lambda: run_bench(options), "breakout bench", (BenchError,))
    if isinstance(report, int):
        return report
    await publish_report(format_report(report), report.to_json(), options.json_path)
    return 0 if report.isolated else 3


if __name__ == "__main__":
    run_main(main)
