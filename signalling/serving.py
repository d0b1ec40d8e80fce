"""Running the server: the app on its listening sockets until SIGINT/SIGTERM, then the drain.

One process (`urok serve`) listens on settings.host:port. A worker of `urok serve
--workers N` (signalling/workers.py) listens there too with SO_REUSEPORT (the kernel
spreads new connections over the workers) and, besides, on a socket of its own, its
internal address, where other nodes and workers reach this very worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from signalling import gc_tuning
from signalling.config import Settings
from signalling.drain import drain
from signalling.http_guard import ConnectionGuard, GuardedSite
from signalling.keys import NODE

log = logging.getLogger(__name__)


async def _until_signal(app: web.Application, drain_seconds: float) -> None:
    """Wait for SIGINT/SIGTERM, then drain; a second signal stops the drain."""
    loop = asyncio.get_running_loop()
    signals = asyncio.Queue[int]()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, signals.put_nowait, number)
    try:
        received = await signals.get()
        log.info("%s: draining for at most %.0f s", signal.Signals(received).name, drain_seconds)
        draining = asyncio.ensure_future(drain(app, drain_seconds))
        again = asyncio.ensure_future(signals.get())
        await asyncio.wait((draining, again), return_when=asyncio.FIRST_COMPLETED)
        for task in (draining, again):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def run(
    app: web.Application,
    settings: Settings,
    on_listening: Callable[[], None] | None = None,
    *,
    reuse_port: bool = False,
    internal: socket.socket | None = None,
    **runner_options: Any,
) -> None:
    """Serve `app` on settings.host:port through a GuardedSite until SIGINT/SIGTERM
    (same keep-alive timeout and shutdown as web.run_app); then drain (signalling/
    drain.py: people told to come back, recordings posted) for at most
    `drain_seconds` before the cleanup. A second signal cuts the drain short.
    `on_listening` runs once the socket is bound (so a busy port says nothing else).
    A worker shares the port (`reuse_port`) and serves the app on `internal` too."""

    async def serve() -> None:
        runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=75.0, **runner_options)
        await runner.setup()
        gc_tuning.tune()  # the app is built: what exists now is never garbage
        try:
            guard = ConnectionGuard(settings.limits, app[NODE].peers if NODE in app else None)
            host, port = settings.host, settings.port
            await GuardedSite(runner, host, port, guard, reuse_port=reuse_port).start()
            if internal is not None:
                await GuardedSite(runner, host, port, guard, sock=internal).start()
            if on_listening is not None:
                on_listening()
            await _until_signal(app, settings.drain_seconds)
        finally:
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    task = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(task)
        finally:
            leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in leftover:
                t.cancel()
            if leftover:
                loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: one the system chooses)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family, backlog=128)
    sock.setblocking(False)
    return sock


def drain_when_orphaned(parent_pid: int, every_seconds: float = 1.0) -> None:
    """A worker whose parent has gone (killed, not stopped) drains by itself: SIGTERM to
    itself once its parent process id changes. Checked from a daemon thread."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_seconds)
        log.warning("the parent process %d has gone: draining", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
