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
   `--loss`, `--queue-ms`); then one more window per `--then-loss` (the same
   rate, that loss), each after `--settle` seconds.

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
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.chromium import ChromiumError
from bench.cli import publish_report, run_main, run_reported
from bench.links import Host, LinkError, LinkSpec, Testbed
from bench.machine import machine_info
from bench.observed_server import ROUTE
from bench.server import Journal, ServerProcess, cpu_times, machine_busy_seconds
from bench.weak_figures import Sample, WindowFigures, describe_link, table, window_figures
from bench.weak_publishers import (
    PublisherMedia,
    encoder_headroom,
    prepare_publisher_media,
    start_publishers,
)
from bench.weak_subscribers import (
    Subscriber,
    WeakLinkError,
    bot_subscriber,
    chromium_subscriber,
    wait_for_media,
)
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

SUBSCRIBER_ID = "weak-pupil"


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
    # After the shaped window, one more per loss rate here (the same link rate), each
    # after `settle`: several loss rates in one run, against one control window.
    then_losses: tuple[float, ...] = ()
    video_kbps: int = 500
    setup_timeout: float = 60.0
    json_path: str | None = None
    quiet: bool = False

    @property
    def control(self) -> LinkSpec:
        return LinkSpec(rate_kbit=self.control_rate_kbit, queue_ms=self.queue_ms)

    @property
    def shaped(self) -> LinkSpec:
        return self.with_loss(self.loss_percent)

    def with_loss(self, loss_percent: float) -> LinkSpec:
        return LinkSpec(rate_kbit=self.rate_kbit, queue_ms=self.queue_ms, loss_percent=loss_percent)


@dataclass
class WeakLinkReport:
    options: Options
    machine: dict[str, Any]
    media: str
    control: WindowFigures
    shaped: WindowFigures
    setup_seconds: float
    then: list[WindowFigures] = dataclasses.field(default_factory=list)  # then_losses'

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
            "windows": [w.to_json() for w in (self.control, self.shaped, *self.then)],
            "server_cpu_ratio": self.server_cpu_ratio,
            "publisher_bitrate_ratio": self.publisher_bitrate_ratio,
        }

    def text(self) -> str:
        o = self.options
        lines = [
            f"Weak link: {o.publishers} publishers ({o.publisher_kind}), {o.subscriber} "
            f"subscriber; {o.seconds:g} s windows; media {self.media}",
            table([self.control, self.shaped, *self.then]),
            f"server CPU shaped / control: {_ratio(self.server_cpu_ratio)}; "
            f"publishers' video bitrate shaped / control: {_ratio(self.publisher_bitrate_ratio)}",
        ]
        return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


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
    await server.start(timeout=options.setup_timeout)  # a busy machine starts it slowly
    return server


async def run(options: Options) -> WeakLinkReport:
    """The whole run; raises on failure (WeakLinkError, BotError, ...)."""
    if options.publisher_kind not in ("preencoded", "encoder"):
        raise WeakLinkError(f"unknown publisher kind {options.publisher_kind!r}")
    if options.subscriber not in ("chromium", "bot"):
        raise WeakLinkError(f"unknown subscriber kind {options.subscriber!r}")
    started = time.monotonic()
    encoder = options.publisher_kind == "encoder"
    media_task = asyncio.ensure_future(
        asyncio.to_thread(prepare_publisher_media, encoder, options.video_kbps)
    )
    restrict_host_addresses(["127.0.0.1"])  # the publishers, in this process: loopback
    try:
        with (
            Testbed() as bed,
            tempfile.TemporaryDirectory(prefix="urok-weak-") as logs,
            encoder_headroom(encoder),
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
        await start_publishers(stack, journal, lesson_id, options.publishers, media)
        subscriber = await _subscriber(stack, host, journal, lesson_id, options)
    # Apart: when it times out, it says what the subscriber did get.
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
    then = []
    for loss in options.then_losses:
        spec = options.with_loss(loss)
        host.shape(spec)
        await asyncio.sleep(options.settle)
        then.append(await measure_window(f"loss {loss:g} %", spec, options, sample, who))
    return WeakLinkReport(options, machine_info(), media.describe(), control, shaped, setup, then)


# --------------------------------------------------------------------------- CLI


def _rate(value: str) -> int | None:
    return None if value in ("none", "0") else int(value)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.weak_link", description=__doc__)
    parser.add_argument("--rate", type=_rate, default=1500, help="kbit/s of the shaped link")
    parser.add_argument("--loss", type=float, default=0.0, help="random loss towards it, %%")
    parser.add_argument(
        "--then-loss",
        type=float,
        action="append",
        default=[],
        help="one more window at this loss (%%), after the shaped one; repeatable",
    )
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
        then_losses=tuple(args.then_loss),
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
