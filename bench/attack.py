"""`python -m bench.attack ARGS` is `python -m bench.load --attack ARGS`.

The attacker itself, and what it replays, are in bench/attacker.py; the
windows and the report in bench/load.py; the figures in docs/performance.md.
"""

from __future__ import annotations

import sys

from bench import load
from bench.cli import run_main


async def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    return await load.main(["--attack", *args])


if __name__ == "__main__":
    run_main(main)
