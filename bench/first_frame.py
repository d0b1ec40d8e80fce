"""First frame at join: how long each subscriber waits for each publisher's first picture.

    python -m bench.first_frame [--participants 9] [--width 160] [--height 120]
                                [--fps 15] [--keyframe-interval S] [--timeout 15]
                                [--json FILE] [--quiet]

The bench starts the server itself (bench/server.py, as bench/load.py does),
creates a lesson and joins `--participants` bots one after another, each
publishing a camera of its own colour and subscribing to everybody else.
Publishers encode with aiortc's own VP8 encoder, which makes a keyframe only
when asked (a keyframe every 3000 frames otherwise), as a browser answers a
PLI: every first picture depends on the server asking for a keyframe and
forwarding it. Subscribers decode every slot with one libvpx decoder per
m-section (bench/slot_video.py) until its first picture.

Per (subscriber, publisher) pair: from the moment the subscriber sent the
answer to the first offer naming that publisher (media starts then, never
before) to the moment its first picture of that publisher was decoded. Who
sent a frame is known from its payload (the SFU forwards payloads
byte-identical), and the picture is checked to be that publisher's colour.
Issue 15 found 12 of 72 pairs in a call of 9 waiting up to 0.69 s: the report
gives the median, p95 and max, and how many pairs waited over 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import colorsys
import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.cli import publish_report, run_main, run_reported
from bench.machine import machine_info
from bench.measure import LoopLag, SendLog, percentile
from bench.media import PatternVideoTrack
from bench.server import Journal, ServerProcess
from bench.slot_video import RGB, SlotBot, senders
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

SLOW = 0.5  # seconds: a pair that waits longer than this is counted


class BenchError(RuntimeError):
    pass


@dataclass
class Options:
    participants: int = 9
    width: int = 160
    height: int = 120
    fps: int = 15
    keyframe_interval: float | None = None  # the server's media.keyframe_interval_s
    timeout: float = 15.0
    json_path: str | None = None
    server_log: str | None = None
    quiet: bool = False


@dataclass
class Pair:
    subscriber: str
    publisher: str
    wait: float | None  # answer -> first picture decoded, seconds; None: none came
    # The keyframe path: from when both ends were ready (the latest of the answer, the
    # subscriber's connection up, the publisher's first packet sent) to when the
    # publisher sent the keyframe that became the first picture (0: it was on its way).
    # A newcomer's own connection setup is left out: this is the server's part.
    keyframe_wait: float | None
    # The delivery: that keyframe sent -> decoded (the server's forwarding and the
    # bench's own backlog: a busy bench shows here, not in keyframe_wait).
    delivery: float | None
    keyframe: bool  # the first picture was a keyframe (what the server must send first)
    right_picture: bool  # it showed the publisher's colour


def spread(values: list[float]) -> dict[str, float | None]:
    """Median, p95 and max in ms, and how many were over SLOW."""
    return {
        "median_ms": _ms(percentile(values, 50)),
        "p95_ms": _ms(percentile(values, 95)),
        "max_ms": _ms(max(values, default=None)),
        "over_half_second": sum(v > SLOW for v in values),
    }


@dataclass
class Report:
    participants: int
    video: str
    pairs: list[Pair]
    seconds: float
    loop_lag_p99_ms: float | None  # how late the bench's own event loop woke
    load_average: tuple[float, float]  # the machine's 1-minute load at the start and the end
    machine: dict[str, Any] = field(default_factory=machine_info)

    def values(self, name: str) -> list[float]:
        return [v for v in (getattr(p, name) for p in self.pairs) if v is not None]

    @property
    def missing(self) -> int:
        return sum(p.wait is None for p in self.pairs)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and all(p.keyframe and p.right_picture for p in self.pairs)

    def to_json(self) -> dict[str, Any]:
        seen = [p for p in self.pairs if p.wait is not None]
        return {
            "participants": self.participants,
            "video": self.video,
            "pair_count": len(self.pairs),
            "missing": self.missing,
            "keyframe_first": sum(p.keyframe for p in seen),
            "right_picture": sum(p.right_picture for p in seen),
            "from_answer": spread(self.values("wait")),
            "keyframe_wait": spread(self.values("keyframe_wait")),
            "delivery": spread(self.values("delivery")),
            "ok": self.ok,
            "seconds": self.seconds,
            "loop_lag_p99_ms": self.loop_lag_p99_ms,
            "load_average": self.load_average,
            "machine": self.machine,
            "pairs": [asdict(p) for p in self.pairs],
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def _line(label: str, figures: dict[str, Any], count: int) -> str:
    return (
        f"{label}: median {figures['median_ms']} ms, p95 {figures['p95_ms']} ms, max "
        f"{figures['max_ms']} ms; over {SLOW} s: {figures['over_half_second']} of {count}"
    )


def format_report(report: Report) -> str:
    data = report.to_json()
    count = data["pair_count"]
    return "\n".join(
        [
            f"first frame at join: {report.participants} participants, each publishing "
            f"{report.video}",
            f"pairs: {count}, with a first picture: {count - data['missing']}, a keyframe "
            f"first: {data['keyframe_first']}, the right person: {data['right_picture']}",
            _line("answer -> first picture decoded", data["from_answer"], count),
            _line(
                "  the keyframe path: both ends ready -> the keyframe shown first was sent",
                data["keyframe_wait"],
                count,
            ),
            _line("  its delivery: sent -> decoded", data["delivery"], count),
            f"run: {report.seconds:.1f} s; bench event loop late by {report.loop_lag_p99_ms} ms "
            f"(p99); machine: {report.machine['cpus']} CPUs, {report.machine['cpu_model']}, "
            f"load average {report.load_average[0]:.1f} at the start, "
            f"{report.load_average[1]:.1f} at the end",
        ]
    )


def palette(count: int) -> list[tuple[int, int, int]]:
    """`count` colours around the hue circle, far apart."""
    colours = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb(i / count, 0.8, 0.85)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def nearest(rgb: RGB, colours: dict[str, tuple[int, int, int]]) -> str:
    return min(
        colours, key=lambda who: sum((a - b) ** 2 for a, b in zip(rgb, colours[who], strict=True))
    )


def measure_pairs(
    bots: list[SlotBot], logs: dict[str, SendLog], colours: dict[str, tuple[int, int, int]]
) -> list[Pair]:
    origin = senders(logs)
    pairs = []
    for subscriber in bots:
        for publisher in colours:
            if publisher != subscriber.id:
                pairs.append(_pair(subscriber, publisher, logs[publisher], origin, colours))
    return pairs


def _pair(
    subscriber: SlotBot,
    publisher: str,
    log: SendLog,
    origin: dict[int, str],
    colours: dict[str, tuple[int, int, int]],
) -> Pair:
    pair = Pair(subscriber.id, publisher, None, None, None, False, False)
    answer, mid = next(
        ((a, m) for a in subscriber.answers for m, p in a.video.items() if p == publisher),
        (None, None),
    )
    if answer is None or mid is None:
        return pair
    first = next(
        (
            f
            for f in subscriber.frames_after(mid, answer.answered_at)
            if origin.get(f.payload) == publisher and f.rgb is not None
        ),
        None,
    )
    if first is None or first.rgb is None:
        return pair
    pair.wait = first.decoded_at - answer.answered_at
    sending = log.sent["video"][0][0]  # it has sent, since a picture of it came
    connected = subscriber.subscriber_connected_at or answer.answered_at
    ready = max(answer.answered_at, sending, connected)
    sent_at = next(t for t, payload, _ in log.sent["video"] if payload == first.payload)
    pair.keyframe_wait = max(0.0, sent_at - ready)
    pair.delivery = first.decoded_at - sent_at
    pair.keyframe = first.keyframe
    pair.right_picture = nearest(first.rgb, colours) == publisher
    return pair


async def run_call(base_url: str, options: Options) -> Report:
    started, load = time.monotonic(), os.getloadavg()[0]
    lag = LoopLag()
    lag.start()
    bots: list[SlotBot] = []
    logs: dict[str, SendLog] = {}
    colours: dict[str, tuple[int, int, int]] = {}
    async with aiohttp.ClientSession() as http:
        journal = Journal(base_url, DEMO_SECRET, http)
        users = ["ff-teacher"] + [f"ff-s{i}" for i in range(1, options.participants)]
        lesson = await journal.create_lesson(users[0], users[1:])
        try:
            for user, colour in zip(users, palette(len(users)), strict=True):
                token = await journal.token(lesson, user, "teacher" if not bots else "student")
                bot = SlotBot(base_url, token, pictures_per_slot=1)
                bots.append(bot)
                await bot.connect()
                track = PatternVideoTrack(colour, options.width, options.height, options.fps)
                await bot.publish([(track, "camera")])
                assert bot.publisher is not None
                logs[bot.id] = log = SendLog()
                log.install(bot.publisher)
                colours[bot.id] = colour
                _say(options, f"{user} joined and publishes")
            deadline = time.monotonic() + options.timeout
            pairs = measure_pairs(bots, logs, colours)
            while any(p.wait is None for p in pairs) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                pairs = measure_pairs(bots, logs, colours)
        finally:
            await lag.stop()
            await asyncio.gather(*(bot.leave() for bot in bots), return_exceptions=True)
    video = (
        f"VP8 {options.width}x{options.height}@{options.fps} (aiortc's encoder: keyframes "
        "when asked)"
    )
    if options.keyframe_interval is not None:
        video += f"; server keyframe floor {options.keyframe_interval} s"
    seconds, loads = time.monotonic() - started, (load, os.getloadavg()[0])
    lag_p99 = _ms(percentile((late for _, late in lag.samples), 99))
    return Report(options.participants, video, pairs, seconds, lag_p99, loads)


async def run_bench(options: Options) -> Report:
    restrict_host_addresses(["127.0.0.1"])
    with tempfile.TemporaryDirectory(prefix="urok-first-frame-") as tmp:
        env = {}
        if options.keyframe_interval is not None:
            config = Path(tmp) / "urok.toml"
            config.write_text(f"[media]\nkeyframe_interval_s = {options.keyframe_interval}\n")
            env["UROK_CONFIG"] = str(config)
        server = ServerProcess("signalling.cli", Path(tmp) / "server.log", env=env)
        try:
            _say(options, f"starting the server on {server.base_url}")
            await server.start()
            try:
                return await run_call(server.base_url, options)
            except Exception as exc:
                raise BenchError(
                    f"{type(exc).__name__}: {exc}\nserver log tail:\n{server.log_tail()}"
                ) from exc
        finally:
            await server.stop()
            if options.server_log:
                with contextlib.suppress(OSError):
                    shutil.copyfile(server.log_path, options.server_log)


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.first_frame", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--participants", type=int, default=9, help="bots in the call, 2..30")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--keyframe-interval",
        type=float,
        help="the server's keyframe floor, seconds (media.keyframe_interval_s; default its own)",
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="wait for first pictures")
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    parser.add_argument("--server-log", help="keep the server's log here")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    options = Options(**vars(args))
    if not 2 <= options.participants <= 30:
        parser.error("--participants must be 2..30")
    if not (16 <= options.width <= 1280 and 16 <= options.height <= 720):
        parser.error("video size must be within 16x16..1280x720")
    if not 1 <= options.fps <= 60:
        parser.error("--fps must be 1..60")
    if not 1 <= options.timeout <= 120:
        parser.error("--timeout must be 1..120")
    return options


async def main(argv: list[str] | None = None) -> int:
    """`python -m bench.first_frame`: 0 when every pair saw the right first picture."""
    try:
        options = parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    report = await run_reported(lambda: run_bench(options), "first-frame bench", (BenchError,))
    if isinstance(report, int):
        return report
    await publish_report(format_report(report), report.to_json(), options.json_path)
    return 0 if report.ok else 3


if __name__ == "__main__":
    run_main(main)
