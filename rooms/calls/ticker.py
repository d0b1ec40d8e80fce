"""A call's periodic concern (weak links, speakers, audio slots): a step every
`interval` seconds while anybody is in the call, stopped when the call ends.

A failing step is logged and the next one runs: the call goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from rooms.calls.core import CallCore

logger = logging.getLogger(__name__)

Step = Callable[[float], Awaitable[None] | None]  # given time.monotonic()


class CallTicker:
    def __init__(self, call: CallCore, interval: float, step: Step, what: str) -> None:
        self.call = call
        self.interval = interval
        self._step = step
        self._what = what  # for the log: "active speakers", ...
        self._task: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Run while anybody is in the call (called on every entry)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        call = self.call
        while not call.ended and call.participants:
            await asyncio.sleep(self.interval)
            try:
                result = self._step(time.monotonic())
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the call goes on without it
                logger.exception("%s of %s failed", self._what, call.id)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
