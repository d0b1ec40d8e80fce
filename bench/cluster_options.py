"""The cluster bench's options and command line (bench/cluster.py).

Who does what in a lesson of K (`--per-lesson`): the first P (`--publishers`,
default all K; the teacher first) publish a microphone and a camera; everybody
receives every publisher but themselves. Without `--sinks` every bot counts
what it receives. With `--sinks` only the last W of each lesson
(`--watchers-per-lesson`, not publishers) do: the media the server sends
to all the others ("sinks") is dropped by nftables on arrival
(bench/cluster_sinks.py), so the server still encrypts and sends every packet
but the bench does not pay for receiving it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

MAX_WORKERS = 8
MAX_BOTS = 400


@dataclass
class Options:
    workers: tuple[int, ...] = (1, 2)
    lessons: int = 8
    per_lesson: int = 4
    publishers: int | None = None  # per lesson; None: everybody
    sinks: bool = False
    watchers: int = 1  # per lesson, with sinks
    per_worker: bool = False  # --lessons per worker: the load grows with the workers
    seconds: float = 20.0
    warmup: float = 3.0
    setup_timeout: float = 60.0
    width: int = 320
    height: int = 180
    fps: int = 15
    video_kbps: int = 150
    json_path: str | None = None
    quiet: bool = False

    @property
    def publishers_per_lesson(self) -> int:
        return self.per_lesson if self.publishers is None else self.publishers

    @property
    def fan_out(self) -> int:
        """Subscribers of each published track: everybody else in the lesson."""
        return self.per_lesson - 1

    @property
    def streams(self) -> int:
        """Forwarded streams when everybody receives every publisher's audio and video
        (with --per-worker: for one worker)."""
        return self.lessons * self.publishers_per_lesson * self.fan_out * 2

    def publishes(self, index: int) -> bool:
        """Whether the lesson's `index`-th bot (0: the teacher) publishes."""
        return index < self.publishers_per_lesson

    def counts(self, index: int) -> bool:
        """Whether the lesson's `index`-th bot processes and counts what it receives."""
        return not self.sinks or index >= self.per_lesson - self.watchers


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts, e.g. 1,2") from None
    if not counts or any(not 1 <= count <= MAX_WORKERS for count in counts):
        raise argparse.ArgumentTypeError(f"worker counts are from 1 to {MAX_WORKERS}")
    return counts


def _parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=description)
    parser.add_argument("--workers", type=_worker_counts, default=(1, 2))
    parser.add_argument("--lessons", type=int, default=8)
    parser.add_argument("--per-lesson", type=int, default=4)
    parser.add_argument("--publishers", type=int, help="per lesson (default: everybody)")
    parser.add_argument(
        "--sinks", action="store_true",
        help="drop the media sent to all but the watchers in the kernel (nftables: run as "
        "root in a network namespace of its own, e.g. unshare -n)",
    )  # fmt: skip
    parser.add_argument("--watchers-per-lesson", type=int, default=1)
    parser.add_argument(
        "--per-worker", action="store_true",
        help="--lessons per worker: N workers get N times the lessons (default: the same "
        "lessons for every worker count)",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--setup-timeout", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--video-kbps", type=int, default=150)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--quiet", action="store_true")
    return parser


def parse_args(argv: list[str], description: str) -> Options:
    parser = _parser(description)
    args = parser.parse_args(argv)
    if not 1 <= args.lessons or not 2 <= args.per_lesson:
        parser.error("--lessons must be at least 1 and --per-lesson at least 2")
    if args.lessons * args.per_lesson * (max(args.workers) if args.per_worker else 1) > MAX_BOTS:
        parser.error(f"at most {MAX_BOTS} bots (lessons x per-lesson)")
    if args.publishers is not None and not 1 <= args.publishers <= args.per_lesson:
        parser.error("--publishers must be from 1 to --per-lesson")
    publishers = args.per_lesson if args.publishers is None else args.publishers
    if args.sinks and not 1 <= args.watchers_per_lesson <= args.per_lesson - publishers:
        parser.error("--watchers-per-lesson: from 1 to the bots of a lesson that do not publish")
    if not 0 < args.seconds <= 300 or not 0 < args.setup_timeout <= 600:
        parser.error("--seconds must be in (0, 300] and --setup-timeout in (0, 600]")
    return Options(
        workers=args.workers,
        lessons=args.lessons,
        per_lesson=args.per_lesson,
        publishers=args.publishers,
        sinks=args.sinks,
        watchers=args.watchers_per_lesson,
        per_worker=args.per_worker,
        seconds=args.seconds,
        warmup=max(0.0, args.warmup),
        setup_timeout=args.setup_timeout,
        width=args.width,
        height=args.height,
        fps=args.fps,
        video_kbps=args.video_kbps,
        json_path=args.json_path,
        quiet=args.quiet,
    )


def options_json(options: Options) -> dict[str, Any]:
    return {
        "workers": list(options.workers),
        "lessons": options.lessons,
        "per_lesson": options.per_lesson,
        "publishers_per_lesson": options.publishers_per_lesson,
        "sinks": options.sinks,
        "watchers_per_lesson": options.watchers if options.sinks else None,
        "per_worker": options.per_worker,
        "fan_out": options.fan_out,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "expected_streams": options.streams,
    }
