"""Weak-link bench: one subscriber behind an emulated home link, in a lesson of N cameras.

    python -m bench.weak_link --rate 1500 --subscriber chromium
    python -m bench.weak_link --rate 1000 --subscriber bot
    python -m bench.weak_link --rate 50000 --loss 3 --subscriber bot
    python -m bench.weak_link --rate 1500 --publisher-kind encoder   (PLIs vs bitrate)

Run as root in a network namespace of its own (e.g. `unshare -n`, loopback up):
the subscriber's host is a namespace behind veth + tbf + nftables (bench/links.py).

1. The observed server (bench/observed_server.py: `urok serve` plus counters of
   what it sends each subscriber) starts as its own process, listening on the
   server side of the subscriber's link.
2. N publishers (bots in this process, publish only) send ~500 kbit/s of VP8
   and Opus each: pre-encoded (`--publisher-kind preencoded`, cheap and
   fixed: their bitrate cannot react to keyframe requests) or encoded by
   aiortc (`encoder`: a real encoder that answers every PLI with a keyframe;
   see bench/media.py TextureVideoTrack for why its bitrate then shows what
   the keyframes cost).
3. One subscriber joins on the test host: Chromium (`--subscriber chromium`,
   no devices, getStats) or a decoding bot (`bot`, bench/link_subscriber.py).
4. Once it decodes every camera, a warm-up, then two windows with the same
   people: **control** (the link at `--control-rate`, no loss) and, after the
   link is changed in place and `--settle` seconds, **shaped** (`--rate`,
   `--loss`, `--queue-ms`).

Per window: the subscriber's audio loss (and concealment in Chromium), video
frames decoded per stream, what the server sent it (the link's counters on the
server side, before shaping; and the RTP it protected, with how many times
each video packet went out), the server's consumer counters, the server
process's CPU, and the publishers' video bitrate, keyframes and keyframe
requests as the server received or sent them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiortc import MediaStreamTrack
from aiortc.codecs import vpx

from bench.bot import Bot
from bench.chromium import (
    CHROMIUM,
    ChromiumError,
    chromium_page,
    join_without_devices,
    subscriber_stats,
)
from bench.cli import publish_report, run_main, run_reported
from bench.links import Host, LinkError, LinkSpec, Testbed
from bench.load import machine_info
from bench.media import TextureVideoTrack
from bench.observed_server import ROUTE
from bench.preencoded import EncodedClip, PreEncodedTrack, encode_audio, encode_video
from bench.server import (
    REPO_ROOT,
    Journal,
    ServerProcess,
    cpu_times,
    machine_busy_seconds,
    server_env,
)
from bench.weak_figures import Sample, WindowFigures, describe_link, table, window_figures
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

SUBSCRIBER_ID = "weak-pupil"
ENCODER_FPS = 15  # publishers that encode (--publisher-kind encoder)


class WeakLinkError(RuntimeError):
    pass


@dataclass
class Options:
    rate_kbit: int | None = 1500
    loss_percent: float = 0.0
    queue_ms: int = 100
    control_rate_kbit: int | None = 50_000
    publishers: int = 4
    publisher_kind: str = "preencoded"  # or "encoder"
    subscriber: str = "chromium"  # or "bot"
    seconds: float = 15.0
    warmup: float = 3.0
    settle: float = 3.0
    video_kbps: int = 500
    setup_timeout: float = 60.0
    json_path: str | None = None
    quiet: bool = False

    @property
    def control(self) -> LinkSpec:
        return LinkSpec(rate_kbit=self.control_rate_kbit, queue_ms=self.queue_ms)

    @property
    def shaped(self) -> LinkSpec:
        return LinkSpec(
            rate_kbit=self.rate_kbit, queue_ms=self.queue_ms, loss_percent=self.loss_percent
        )


@dataclass
class WeakLinkReport:
    options: Options
    machine: dict[str, Any]
    media: str
    control: WindowFigures
    shaped: WindowFigures
    setup_seconds: float

    @property
    def server_cpu_ratio(self) -> float | None:
        """Server CPU in the shaped window / in the control window."""
        if self.control.server_cores <= 0:
            return None
        return self.shaped.server_cores / self.control.server_cores

    @property
    def publisher_bitrate_ratio(self) -> float | None:
        """Publishers' video bitrate (mean) in the shaped window / in the control."""
        a, b = self.control.publisher_video_kbit_s_mean, self.shaped.publisher_video_kbit_s_mean
        return b / a if a and b is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "options": dataclasses.asdict(self.options),
            "machine": self.machine,
            "media": self.media,
            "setup_seconds": self.setup_seconds,
            "windows": [self.control.to_json(), self.shaped.to_json()],
            "server_cpu_ratio": self.server_cpu_ratio,
            "publisher_bitrate_ratio": self.publisher_bitrate_ratio,
        }

    def text(self) -> str:
        o = self.options
        lines = [
            f"Weak link: {o.publishers} publishers ({o.publisher_kind}), {o.subscriber} "
            f"subscriber; {o.seconds:g} s windows; media {self.media}",
            table([self.control, self.shaped]),
            f"server CPU shaped / control: {_ratio(self.server_cpu_ratio)}; "
            f"publishers' video bitrate shaped / control: {_ratio(self.publisher_bitrate_ratio)}",
        ]
        return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- subscribers


class Subscriber(Protocol):
    participant_id: str

    async def stats(self) -> dict[str, dict[str, float]]:
        """kind -> counter -> cumulative value (packets_received, packets_lost,
        frames_decoded, streams, ...)."""
        ...


@dataclass
class BotSubscriber:
    """bench/link_subscriber.py in a process on the test host."""

    process: asyncio.subprocess.Process
    participant_id: str

    async def stats(self) -> dict[str, dict[str, float]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"stats\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise WeakLinkError("the subscriber bot exited")
        return dict(json.loads(line))


# Chromium's getStats names -> the bench's.
_CHROMIUM_NAMES = {
    "packetsReceived": "packets_received",
    "packetsLost": "packets_lost",
    "concealedSamples": "concealed_samples",
    "totalSamplesReceived": "samples_received",
    "framesDecoded": "frames_decoded",
    "nackCount": "nacks_sent",
    "pliCount": "plis_sent",
    "firCount": "firs_sent",
    "freezeCount": "freezes",
    "totalFreezesDuration": "freeze_seconds",
    "framesDropped": "frames_dropped",
    "keyFramesDecoded": "keyframes_decoded",
}


@dataclass
class ChromiumSubscriber:
    page: Any  # playwright Page
    participant_id: str

    async def stats(self) -> dict[str, dict[str, float]]:
        raw = await subscriber_stats(self.page) or {}
        return {
            kind: {_CHROMIUM_NAMES.get(k, k): float(v) for k, v in values.items()}
            for kind, values in raw.items()
        }


@asynccontextmanager
async def bot_subscriber(host: Host, base_url: str, token: str) -> AsyncIterator[BotSubscriber]:
    command = host.command([sys.executable, "-m", "bench.link_subscriber", base_url, token])
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=server_env(),
        cwd=str(REPO_ROOT),
    )
    try:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise WeakLinkError("the subscriber bot exited before joining")
        yield BotSubscriber(process, str(json.loads(line)["joined"]))
    finally:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                assert process.stdin is not None
                process.stdin.write(b"leave\n")
                await process.stdin.drain()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def chromium_subscriber(
    host: Host, base_url: str, url: str
) -> AsyncIterator[ChromiumSubscriber]:
    executable = host.executable(CHROMIUM)
    async with chromium_page(executable, origin=base_url, fake_devices=False) as page:
        yield ChromiumSubscriber(page, await join_without_devices(page, url))


async def wait_for_media(subscriber: Subscriber, publishers: int, timeout: float) -> None:
    """Until the subscriber decodes every camera (and keeps decoding) and hears audio."""
    deadline = time.monotonic() + timeout
    previous = -1.0
    stats: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline:
        stats = await subscriber.stats()
        video, audio = stats.get("video", {}), stats.get("audio", {})
        frames = video.get("frames_decoded", 0)
        if video.get("streams", 0) >= publishers and audio.get("packets_received", 0) > 0:
            if frames > previous >= 10 * publishers:
                return
            previous = frames
        await asyncio.sleep(0.5)
    raise WeakLinkError(f"the subscriber did not decode {publishers} cameras: {stats}")


# --------------------------------------------------------------------------- publishers


ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


class PublishOnlyBot(Bot):
    """Never answers the server's subscribe offers: the server forwards it nothing.

    With fixed_bitrate, it offers no abs-send-time header extension: the server
    then has nothing to estimate bandwidth from and sends no REMB, so an aiortc
    encoder keeps its starting target (aiortc rebuilds its encoder, with a
    keyframe, whenever REMB moves the target by over 10 %)."""

    def __init__(self, *args: Any, fixed_bitrate: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_bitrate = fixed_bitrate

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] != "subscribe_offer":
            await super()._on_message(message)

    async def send(self, message: dict[str, Any]) -> None:
        if self.fixed_bitrate and message.get("type") == "publish":
            lines = message["sdp"].split("\r\n")
            sdp = "\r\n".join(line for line in lines if ABS_SEND_TIME not in line)
            message = {**message, "sdp": sdp}
        await super().send(message)


@contextlib.contextmanager
def encoder_headroom(on: bool) -> Iterator[None]:
    """aiortc's VP8 encoders made meanwhile start at the top of aiortc's range (1.5
    Mbit/s) instead of 500 kbit/s: with REMB off (PublishOnlyBot) they stay there,
    above what TextureVideoTrack needs, so their bitrate is the picture's plus the
    keyframes they are asked for, as a browser's under a generous estimate. (At a
    target the picture fills, libvpx's CBR pays for each keyframe with lower quality
    and the bitrate would not show them.)"""
    if not on:
        yield
        return
    original = vpx.DEFAULT_BITRATE
    vpx.DEFAULT_BITRATE = vpx.MAX_BITRATE
    try:
        yield
    finally:
        vpx.DEFAULT_BITRATE = original


@dataclass(frozen=True)
class PublisherMedia:
    audio: EncodedClip
    video: EncodedClip | None  # None: the publishers encode (TextureVideoTrack)

    def describe(self) -> str:
        audio = f"Opus {self.audio.bitrate / 1000:.0f} kbit/s (pre-encoded)"
        if self.video is None:
            return (
                f"VP8 encoded by aiortc, 320x180@{ENCODER_FPS} texture, target "
                f"{vpx.MAX_BITRATE // 1000} kbit/s, no REMB + {audio}"
            )
        return f"VP8 640x360@30 {self.video.bitrate / 1000:.0f} kbit/s (pre-encoded) + {audio}"


def prepare_publisher_media(options: Options) -> PublisherMedia:
    # A short audio clip is enough: nothing here matches payloads, so it may loop.
    audio = encode_audio(10.0)
    if options.publisher_kind == "encoder":
        return PublisherMedia(audio, None)
    return PublisherMedia(audio, encode_video(seconds=2.0, bitrate=options.video_kbps * 1000))


def _video_track(media: PublisherMedia) -> MediaStreamTrack:
    if media.video is None:
        return TextureVideoTrack(fps=ENCODER_FPS)
    return PreEncodedTrack(media.video)


async def start_publishers(
    stack: AsyncExitStack,
    journal: Journal,
    lesson_id: str,
    options: Options,
    media: PublisherMedia,
) -> list[Bot]:
    bots: list[Bot] = []
    for index in range(options.publishers):
        role = "teacher" if index == 0 else "student"
        token = await journal.token(lesson_id, f"weak-p{index}", role)
        encoder = options.publisher_kind == "encoder"
        bot = PublishOnlyBot(journal.base_url, token, decode=False, fixed_bitrate=encoder)
        stack.push_async_callback(bot.leave)
        await bot.connect()
        tracks: list[tuple[MediaStreamTrack, str]] = [
            (PreEncodedTrack(media.audio), "microphone"),
            (_video_track(media), "camera"),
        ]
        await bot.publish(tracks)
        bots.append(bot)
    return bots


# --------------------------------------------------------------------------- windows


async def _observed(http: aiohttp.ClientSession, base_url: str, start: bool) -> dict[str, Any]:
    method = "POST" if start else "GET"
    async with http.request(method, base_url + ROUTE) as response:
        if response.status != 200:
            raise WeakLinkError(f"{method} {ROUTE}: {response.status}")
        return dict(await response.json())


def _bench_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _sample(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    host: Host,
    subscriber: Subscriber,
    start: bool,
) -> Sample:
    observed = await _observed(http, server.base_url, start)
    return Sample(
        time=time.monotonic(),
        server_cpu=cpu_times(server.pid),
        machine_busy=machine_busy_seconds(),
        bench_cpu=_bench_cpu(),
        link=host.counters(),
        observed=observed,
        subscriber=await subscriber.stats(),
    )


async def measure_window(
    label: str,
    spec: LinkSpec,
    options: Options,
    sample: Callable[[bool], Awaitable[Sample]],
    subscriber_id: str,
) -> WindowFigures:
    _say(options, f"[{label}] {describe_link(spec)}: measuring for {options.seconds:g} s")
    first = await sample(True)
    await asyncio.sleep(options.seconds)
    last = await sample(False)
    return window_figures(label, spec, subscriber_id, first, last)


# --------------------------------------------------------------------------- the run


async def _join_url(journal: Journal, lesson_id: str, user_id: str) -> tuple[str, str]:
    body = await journal.call(
        "POST",
        f"/api/v1/lessons/{lesson_id}/tokens",
        {"user": {"id": user_id, "name": user_id}, "role": "student"},
    )
    return str(body["token"]), str(body["url"])


async def _subscriber(
    stack: AsyncExitStack, host: Host, journal: Journal, lesson_id: str, options: Options
) -> Subscriber:
    token, url = await _join_url(journal, lesson_id, SUBSCRIBER_ID)
    if options.subscriber == "bot":
        return await stack.enter_async_context(bot_subscriber(host, journal.base_url, token))
    return await stack.enter_async_context(chromium_subscriber(host, journal.base_url, url))


async def _start_server(
    stack: AsyncExitStack, host: Host, logs: Path, options: Options
) -> ServerProcess:
    server = ServerProcess(
        "bench.observed_server",
        logs / "server.log",
        data_dir=logs / "data",
        host=host.gateway,
        ice_addresses=("127.0.0.1", host.gateway),
    )
    stack.push_async_callback(server.stop)
    _say(options, f"starting the observed server on {server.base_url}")
    await server.start()
    return server


async def run(options: Options) -> WeakLinkReport:
    """The whole run; raises on failure (WeakLinkError, BotError, ...)."""
    if options.publisher_kind not in ("preencoded", "encoder"):
        raise WeakLinkError(f"unknown publisher kind {options.publisher_kind!r}")
    if options.subscriber not in ("chromium", "bot"):
        raise WeakLinkError(f"unknown subscriber kind {options.subscriber!r}")
    started = time.monotonic()
    media_task = asyncio.ensure_future(asyncio.to_thread(prepare_publisher_media, options))
    restrict_host_addresses(["127.0.0.1"])  # the publishers, in this process: loopback
    try:
        with (
            Testbed() as bed,
            tempfile.TemporaryDirectory(prefix="urok-weak-") as logs,
            encoder_headroom(options.publisher_kind == "encoder"),
        ):
            host = bed.add_host(options.control)
            async with AsyncExitStack() as stack:
                server = await _start_server(stack, host, Path(logs), options)
                return await _run_lesson(stack, server, host, await media_task, options, started)
    finally:
        restrict_host_addresses(None)
        if not media_task.done():
            media_task.cancel()


async def _run_lesson(
    stack: AsyncExitStack,
    server: ServerProcess,
    host: Host,
    media: PublisherMedia,
    options: Options,
    started: float,
) -> WeakLinkReport:
    http = await stack.enter_async_context(aiohttp.ClientSession())
    journal = Journal(server.base_url, DEMO_SECRET, http)
    ids = [f"weak-p{i}" for i in range(options.publishers)]
    lesson_id = await journal.create_lesson(ids[0], [*ids[1:], SUBSCRIBER_ID])
    async with asyncio.timeout(options.setup_timeout):
        await start_publishers(stack, journal, lesson_id, options, media)
        subscriber = await _subscriber(stack, host, journal, lesson_id, options)
        await wait_for_media(subscriber, options.publishers, options.setup_timeout)
    setup = time.monotonic() - started
    _say(options, f"set up in {setup:.1f} s; warm-up {options.warmup:g} s")
    await asyncio.sleep(options.warmup)

    async def sample(start: bool) -> Sample:
        return await _sample(http, server, host, subscriber, start)

    who = subscriber.participant_id
    control = await measure_window("control", options.control, options, sample, who)
    host.shape(options.shaped)
    await asyncio.sleep(options.settle)
    shaped = await measure_window("shaped", options.shaped, options, sample, who)
    return WeakLinkReport(options, machine_info(), media.describe(), control, shaped, setup)


# --------------------------------------------------------------------------- CLI


def _rate(value: str) -> int | None:
    return None if value in ("none", "0") else int(value)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.weak_link", description=__doc__)
    parser.add_argument("--rate", type=_rate, default=1500, help="kbit/s of the shaped link")
    parser.add_argument("--loss", type=float, default=0.0, help="random loss towards it, %%")
    parser.add_argument("--queue-ms", type=int, default=100)
    parser.add_argument("--control-rate", type=_rate, default=50_000, help="kbit/s, or none")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--publisher-kind", choices=("preencoded", "encoder"), default="preencoded")
    parser.add_argument("--subscriber", choices=("chromium", "bot"), default="chromium")
    parser.add_argument("--seconds", type=float, default=15.0, help="each window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=3.0, help="after shaping the link")
    parser.add_argument("--video-kbps", type=int, default=500, help="pre-encoded video")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    return Options(
        rate_kbit=args.rate,
        loss_percent=args.loss,
        queue_ms=args.queue_ms,
        control_rate_kbit=args.control_rate,
        publishers=args.publishers,
        publisher_kind=args.publisher_kind,
        subscriber=args.subscriber,
        seconds=args.seconds,
        warmup=args.warmup,
        settle=args.settle,
        video_kbps=args.video_kbps,
        json_path=args.json_path,
        quiet=args.quiet,
    )


async def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    report = await run_reported(
        lambda: run(options), "weak-link bench", (WeakLinkError, LinkError, ChromiumError)
    )
    if isinstance(report, int):
        return report
    await publish_report(report.text(), report.to_json(), options.json_path)
    return 0


if __name__ == "__main__":
    run_main(main)
