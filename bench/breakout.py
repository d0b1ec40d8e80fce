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

The parts: bench/breakout_options.py (the command line), bench/breakout_run.py
(the phases of a run), bench/breakout_setup.py (the class joining, publishing,
its rooms set up), bench/breakout_members.py (each bot and what it received),
bench/breakout_media.py (tagged tracks, the payload registry),
bench/breakout_cpu.py (CPU samples), bench/breakout_witness.py (the other
lesson), bench/breakout_figures.py (the figures and their JSON),
bench/breakout_report.py (the report as text).
"""

from __future__ import annotations

import sys

from bench.breakout_options import BenchError, parse_args
from bench.breakout_report import format_report
from bench.breakout_run import run_bench
from bench.breakout_witness import witness_main
from bench.cli import publish_report, run_main, run_reported


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
