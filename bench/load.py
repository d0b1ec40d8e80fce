"""Load bench: P publishers and N subscribers as aiortc bots against a server process.

    python -m bench.load --publishers 2 --subscribers 8 --seconds 20 [--baseline]
    urok bench -- --publishers 2 --subscribers 8 --seconds 20

By default the bench starts the server itself (`python -m signalling.cli
serve` on a free loopback port) and, with --baseline, afterwards the
MediaRelay baseline (`python -m bench.baseline serve`), one after the other
with the same bots and media. Each runs the same scenario:

1. a lesson is created through the journal API; everybody joins, then the
   publishers publish pre-encoded VP8 + Opus (bench/preencoded.py) one after
   the other (--late-join: subscribers join last, see docs/performance.md);
2. once every participant receives every other publisher's audio and video,
   a warm-up, then the measurement window: the server's CPU time is read from
   /proc/<pid>/stat at its start and end, and the bots log every packet;
3. everybody leaves, the lesson is ended, the server is stopped.

Everybody in a call receives everybody else, so publishers also receive each
other: forwarded streams = 2 * P * (N + P - 1) (one per published track and
receiving participant).

With --recording the forwarding server is measured three times in the same
run, with the same bots: a window without a recording, then the teacher bot
(a host) sends `recording_start`, and after --recording-warmup a window with
the recorder running (the recorder process, a child of the server, is found in
/proc and its CPU read like the server's), then `recording_stop`; once the
chat's `recording_ready` arrives, after the warm-up, a window without a
recording again (drift between the two shows the noise). The recording is
downloaded with the teacher's token and its video frames are counted.

With --attack (or `python -m bench.attack`, bench/attack.py) likewise: a
window without an attack, a window while an attacker process replays the
worst frames and bodies (issue 9), and a window after it; the report adds the
frames the server answered the attacker per second and its /healthz response
time in each window.

To measure a server that is already running, pass --server-url, --secret
(an integration secret of that server) and --server-pid (same machine; without
it CPU figures are n/a).

The parts: bench/load_options.py (the command line), bench/load_run.py (the
scenario against each server), bench/load_bots.py (the participants),
bench/load_window.py (a measurement window and its figures),
bench/load_recording.py and bench/load_attack.py (their windows),
bench/load_figures.py (the figures and their JSON), bench/load_report.py (the
report as text).
"""

from __future__ import annotations

import sys

from bench.cli import publish_report, run_main, run_reported
from bench.load_options import BenchError, parse_args
from bench.load_report import format_report
from bench.load_run import run_bench


async def main(argv: list[str] | None = None) -> int:
    """`urok bench` / `python -m bench.load`: run, print the report, return an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]  # `urok bench -- --publishers 4 ...`
    try:
        options = parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    report = await run_reported(lambda: run_bench(options), "bench", (BenchError,))
    if isinstance(report, int):
        return report
    await publish_report(format_report(report), report.to_json(), options.json_path)
    return 0


if __name__ == "__main__":
    run_main(main)
