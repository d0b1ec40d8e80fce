"""The load bench's options: its command line, checked, and the numbers derived from it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from signalling.config import DEMO_SECRET


class BenchError(RuntimeError):
    """The run cannot go on: reported in one line, exit code 1."""


@dataclass
class Options:
    publishers: int = 2
    subscribers: int = 8
    seconds: float = 20.0
    warmup: float = 3.0
    baseline: bool = False
    baseline_only: bool = False
    server_url: str | None = None
    secret: str = DEMO_SECRET
    server_pid: int | None = None
    baseline_url: str | None = None
    baseline_pid: int | None = None
    width: int = 640
    height: int = 360
    fps: int = 30
    video_kbps: int = 500
    setup_timeout: float = 60.0
    late_join: bool = False
    bot_addresses: tuple[str, ...] = ("127.0.0.1",)
    json_path: str | None = None
    profile: str | None = None
    profile_native: bool = False
    quiet: bool = False
    recording: bool = False
    recording_warmup: float = 3.0
    # Publishers that also publish a microphone (the first ones); None: all of them.
    audio_publishers: int | None = None
    # Publishers receive nothing (they never answer the server's offers): only the
    # subscribers do.
    publish_only: bool = False
    # --attack: windows before, with and after an attack (bench/attacker.py).
    attack: bool = False
    attack_joined: int = 2
    attack_unjoined: int = 2
    attack_http: int = 1
    attack_rate: float = 0.0  # frames per second per connection; 0: as fast as answered
    attack_max_frames: int = 1_000_000
    attack_warmup: float = 1.0
    # UROK_* settings for the server the bench starts (--server-env KEY=VALUE).
    server_env: dict[str, str] = field(default_factory=dict)

    @property
    def participants(self) -> int:
        return self.publishers + self.subscribers

    @property
    def microphones(self) -> int:
        if self.audio_publishers is None:
            return self.publishers
        return min(self.audio_publishers, self.publishers)

    @property
    def receivers_per_track(self) -> int:
        return self.subscribers if self.publish_only else self.participants - 1

    @property
    def streams(self) -> int:
        return (self.publishers + self.microphones) * self.receivers_per_track


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Load-test the SFU with aiortc bots sending pre-encoded media.",
    )
    # In this order: the order of --help.
    _add_call_arguments(parser)
    _add_server_arguments(parser)
    _add_media_arguments(parser)
    _add_recording_arguments(parser)
    _add_attack_arguments(parser)
    options = _options(parser.parse_args(argv))
    problems = _problems(options)
    if problems:
        parser.error("; ".join(problems))
    return options


def _add_call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--publishers", "-p", type=int, default=2)
    parser.add_argument("--subscribers", "-n", type=int, default=8)
    parser.add_argument(
        "--seconds", "-s", type=float, default=20.0, help="measurement window (default 20)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds between 'all media flowing' and the window (default 3)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the MediaRelay (decode + re-encode) baseline server",
    )
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-url", help="measure this running server instead")
    parser.add_argument(
        "--secret",
        default=DEMO_SECRET,
        help="integration secret of --server-url (default: the demo secret)",
    )
    parser.add_argument("--server-pid", type=int, help="pid of --server-url (for its CPU time)")
    parser.add_argument("--baseline-url", help="a running `python -m bench.baseline serve`")
    parser.add_argument("--baseline-pid", type=int)


def _add_media_arguments(parser: argparse.ArgumentParser) -> None:
    """The media, the set-up, where the bots gather, the JSON report and the profile."""
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--video-kbps", type=int, default=500)
    parser.add_argument("--setup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--late-join",
        action="store_true",
        help="subscribers join after every publisher published (one offer "
        "with all tracks each; see docs/performance.md)",
    )
    parser.add_argument(
        "--bot-address",
        action="append",
        help="address bots gather ICE candidates on (default 127.0.0.1)",
    )
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    parser.add_argument(
        "--profile",
        help="record the forwarding server with py-spy during the "
        "window into this file (raw stacks) and print a summary",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: also sample C frames (py-spy --native; stops the server per sample)",
    )


def _add_recording_arguments(parser: argparse.ArgumentParser) -> None:
    """--recording, and who publishes what (--audio-publishers, --publish-only)."""
    parser.add_argument(
        "--recording",
        action="store_true",
        help="also measure with a recording running: windows without, with and again "
        "without one, in the same run (the teacher bot records; see docs/performance.md)",
    )
    parser.add_argument(
        "--recording-warmup",
        type=float,
        default=3.0,
        help="seconds between recording_start and its window (default 3)",
    )
    parser.add_argument(
        "--audio-publishers",
        type=int,
        help="only the first K publishers publish a microphone, the others only a camera "
        "(default: all)",
    )
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="publishers receive nothing (their bots never answer the server's offers); "
        "only the subscribers receive",
    )


def _add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """--attack and its settings (and, in --help's order among them, --server-env and --quiet)."""
    parser.add_argument(
        "--attack",
        action="store_true",
        help="also measure during an attack: windows before, with and after an attacker "
        "replays the worst frames and bodies (bench/attacker.py; see docs/performance.md)",
    )
    parser.add_argument(
        "--attack-joined", type=int, default=2, help="attacker connections joined as students"
    )
    parser.add_argument(
        "--attack-unjoined", type=int, default=2, help="attacker connections that never join"
    )
    parser.add_argument("--attack-http", type=int, default=1, help="attacking HTTP clients")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a UROK_* setting for the server the bench starts (repeatable), e.g. "
        "UROK_LIMITS_PACE_LOOPBACK=1",
    )
    parser.add_argument(
        "--attack-rate",
        type=float,
        default=0.0,
        help="frames or requests a second per attacker connection (default 0: as fast as "
        "the server answers)",
    )
    parser.add_argument(
        "--attack-max-frames",
        type=int,
        default=1_000_000,
        help="the attacker stops after this many frames and requests (default 1000000)",
    )
    parser.add_argument(
        "--attack-warmup",
        type=float,
        default=1.0,
        help="seconds between the attack's start and its window (default 1)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def _options(args: argparse.Namespace) -> Options:
    return Options(
        publishers=args.publishers,
        subscribers=args.subscribers,
        seconds=args.seconds,
        warmup=args.warmup,
        baseline=args.baseline,
        baseline_only=args.baseline_only,
        server_url=args.server_url.rstrip("/") if args.server_url else None,
        secret=args.secret,
        server_pid=args.server_pid,
        baseline_url=args.baseline_url.rstrip("/") if args.baseline_url else None,
        baseline_pid=args.baseline_pid,
        width=args.width,
        height=args.height,
        fps=args.fps,
        video_kbps=args.video_kbps,
        setup_timeout=args.setup_timeout,
        late_join=args.late_join,
        bot_addresses=tuple(args.bot_address or ["127.0.0.1"]),
        json_path=args.json_path,
        profile=args.profile,
        profile_native=args.profile_native,
        quiet=args.quiet,
        recording=args.recording,
        recording_warmup=args.recording_warmup,
        audio_publishers=args.audio_publishers,
        publish_only=args.publish_only,
        attack=args.attack,
        attack_joined=args.attack_joined,
        attack_unjoined=args.attack_unjoined,
        attack_http=args.attack_http,
        attack_rate=args.attack_rate,
        attack_max_frames=args.attack_max_frames,
        attack_warmup=args.attack_warmup,
        server_env=dict(item.partition("=")[::2] for item in args.server_env),
    )


def _problems(options: Options) -> list[str]:
    problems = []
    if any(not key.startswith("UROK_") for key in options.server_env):
        problems.append("--server-env takes UROK_* settings only")
    if not 1 <= options.publishers <= 50:
        problems.append("--publishers must be 1..50")
    if not 0 <= options.subscribers <= 400:
        problems.append("--subscribers must be 0..400")
    if options.participants < 2:
        problems.append("need at least two participants")
    if not 1 <= options.seconds <= 600:
        problems.append("--seconds must be 1..600")
    if not 0 <= options.warmup <= 60:
        problems.append("--warmup must be 0..60")
    if not 5 <= options.setup_timeout <= 600:
        problems.append("--setup-timeout must be 5..600")
    if not (16 <= options.width <= 1920 and 16 <= options.height <= 1080):
        problems.append("video size must be within 16x16..1920x1080")
    if not 1 <= options.fps <= 60 or not 50 <= options.video_kbps <= 5000:
        problems.append("--fps must be 1..60 and --video-kbps 50..5000")
    if not 0 <= options.recording_warmup <= 60:
        problems.append("--recording-warmup must be 0..60")
    if options.audio_publishers is not None and not 0 <= options.audio_publishers:
        problems.append("--audio-publishers must be 0 or more")
    if options.publish_only and options.subscribers < 1:
        problems.append("--publish-only needs at least one subscriber")
    if options.recording and options.baseline_only:
        problems.append("--recording needs the forwarding server (not --baseline-only)")
    if options.attack and (options.recording or options.baseline_only):
        problems.append("--attack needs the forwarding server and no --recording")
    if not (0 <= options.attack_joined <= 20 and 0 <= options.attack_unjoined <= 20):
        problems.append("--attack-joined and --attack-unjoined must be 0..20")
    if not 0 <= options.attack_http <= 20:
        problems.append("--attack-http must be 0..20")
    if options.attack and options.attack_joined + options.attack_unjoined + options.attack_http < 1:
        problems.append("--attack needs at least one attacker connection")
    if not 0 <= options.attack_rate <= 10_000:
        problems.append("--attack-rate must be 0..10000")
    if not 1 <= options.attack_max_frames <= 10_000_000:
        problems.append("--attack-max-frames must be 1..10000000")
    if not 0 <= options.attack_warmup <= 60:
        problems.append("--attack-warmup must be 0..60")
    return problems
