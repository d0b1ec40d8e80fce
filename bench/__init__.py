"""Load and measurement tools shipped with Urok (`urok bench`, `python -m bench.…`).

A shipped part, not test-only code: operators load-test their own servers with
it, and the test suite drives real calls with its aiortc bots (bench/bot.py,
bench/media.py). The server packages never import it; `urok bench` loads it
only when run. See docs/performance.md for the commands and their figures.
"""
