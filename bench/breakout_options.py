"""The breakout bench's options: its command line, checked, and the numbers derived from it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

MAX_ROSTER = 500  # the journal API's cap on a lesson's roster


class BenchError(RuntimeError):
    """The run cannot go on: reported in one line, exit code 1."""


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
    profile_phase: str = "open"  # from the open on, "rooms": once settled, "close": from it on
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


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.breakout",
        description="Time from breakout_open until every bot receives only its room's media.",
    )
    # In this order: the order of --help.
    _add_class_arguments(parser)
    _add_timing_arguments(parser)
    _add_media_arguments(parser)
    _add_server_arguments(parser)
    options = _options(parser.parse_args(argv))
    problems = _problems(options)
    if problems:
        parser.error("; ".join(problems))
    return options


def _add_class_arguments(parser: argparse.ArgumentParser) -> None:
    """The class and who sends what, when."""
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


def _add_timing_arguments(parser: argparse.ArgumentParser) -> None:
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


def _add_media_arguments(parser: argparse.ArgumentParser) -> None:
    """The video, the outputs (--json, --server-log, --profile) and --quiet."""
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
        choices=("open", "rooms", "close"),
        default="open",
        help="profile from the open on, in the rooms once isolated (for --after seconds), "
        "or from the rooms' close on",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Cameras on in the main room, and the server's audio slots."""
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


def _options(args: argparse.Namespace) -> Options:
    return Options(
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


def _problems(options: Options) -> list[str]:
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
    return problems
