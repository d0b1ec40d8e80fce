"""What every bench command does around its run: SIGTERM as Ctrl-C, clean exit codes,
progress on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import aiohttp

from bench.bot import BotError
from bench.server import ServerError

Report = TypeVar("Report")


class Quiet(Protocol):
    """A bench's options: `quiet` silences its progress messages."""

    quiet: bool


# Failures a bench reports in one line rather than a traceback.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    ServerError,
    BotError,
    TimeoutError,
    aiohttp.ClientError,
    OSError,
)


async def run_reported(
    run: Callable[[], Awaitable[Report]],
    name: str,
    expected: tuple[type[BaseException], ...] = (),
) -> Report | int:
    """Run the bench; its report, or the exit code to return (1 failed, 143 SIGTERM).

    SIGTERM cancels the run like Ctrl-C, so bots leave and the server
    subprocess is stopped by the run's own cleanup.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    handled = terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, terminate)
        handled = True
    try:
        return await run()
    except (*expected, *EXPECTED_FAILURES) as exc:
        kind = "" if isinstance(exc, (*expected, ServerError)) else f"{type(exc).__name__}: "
        print(f"{name} failed: {kind}{exc}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        print(f"{name} interrupted", file=sys.stderr)
        if not terminated or task is None:
            raise  # Ctrl-C: asyncio.run turns this into KeyboardInterrupt
        task.uncancel()
        return 143
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


async def publish_report(text: str, data: dict[str, Any], json_path: str | None) -> None:
    """Print the human report; write the JSON one too when asked (--json)."""
    print(text, flush=True)
    if json_path:
        await asyncio.to_thread(Path(json_path).write_text, json.dumps(data, indent=2))


def say(options: Quiet, message: str) -> None:
    """A progress message on stderr, unless the bench runs --quiet."""
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


def run_main(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """`if __name__ == "__main__"` of a bench: its exit code; 130 after Ctrl-C."""
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
