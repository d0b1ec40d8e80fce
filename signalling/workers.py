"""`urok serve --workers N`: the parent process that runs N workers and looks after them.

One `urok serve` process is one asyncio thread, one core. With `--workers N` the
parent starts N copies of the same command line, each told its index
(`--worker I`, signalling/worker_settings.py says what a worker gets): N full
nodes of the cluster on one machine, sharing the public port with SO_REUSEPORT and
every lesson and placement through Redis. The parent serves nothing itself:

- it forwards SIGTERM and SIGINT to every worker (each drains as a single node does:
  signalling/serving.py), and a second signal too (it cuts their drains short); a
  worker still running `drain_seconds` + 30 s after the first is killed;
- a worker that exits while no stop was asked for (a crash, a kill, a SIGTERM sent to
  that worker alone) is started again with the same index and node id, at most
  RESTARTS_PER_MINUTE times a minute; past that the parent stops the others and
  exits 1;
- it exits when every worker has exited: 0 if each of them last exited cleanly, else 1.

Workers run in process groups of their own, so a Ctrl+C in a terminal reaches the
parent only (once, forwarded), as systemd's KillMode=mixed does; a worker whose
parent is killed drains by itself (serving.drain_when_orphaned).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

RESTARTS_PER_MINUTE = 3
STOP_MARGIN_SECONDS = 30.0
_POLL_SECONDS = 0.2
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def worker_command(argv: list[str], index: int, node_id_base: str) -> list[str]:
    """The parent's own command line, for worker `index` (the options go to `serve`)."""
    extra = ["--worker", str(index), "--node-id-base", node_id_base]
    return [sys.executable, "-m", "signalling.cli", *argv, *extra]


def worker_env() -> dict[str, str]:
    """The parent's environment, with this source tree importable (as `-m` needs)."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


def probe_port(host: str, port: int) -> None:
    """OSError if host:port is taken: without this a second `--workers` server would
    quietly share the port of one already running (SO_REUSEPORT, same user)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    socket.create_server((host, port), family=family).close()


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)  # when, over the last minute
    status: int | None = None  # 0: its last exit was clean


class Supervisor:
    def __init__(
        self,
        command: Callable[[int], list[str]],
        count: int,
        *,
        env: dict[str, str],
        stop_seconds: float,
        restarts_per_minute: int = RESTARTS_PER_MINUTE,
    ) -> None:
        self.command = command
        self.env = env
        self.workers = [Worker(index) for index in range(count)]
        self.stop_seconds = stop_seconds
        self.restarts_per_minute = restarts_per_minute
        self.stopping_since: float | None = None
        self.gave_up = False
        self._signals: list[int] = []

    def run(self) -> int:
        """Start the workers and look after them until all have exited; the exit status."""
        previous = {number: signal.signal(number, self._on_signal) for number in _STOP_SIGNALS}
        try:
            for worker in self.workers:
                self._start(worker)
            while any(worker.process is not None for worker in self.workers):
                self._forward_signals()
                for worker in self.workers:
                    self._reap(worker)
                self._kill_when_late()
                time.sleep(_POLL_SECONDS)
        finally:
            for worker in self.workers:  # only after an error of the parent itself
                if worker.process is not None and worker.process.poll() is None:
                    worker.process.kill()
            for number, handler in previous.items():
                signal.signal(number, handler)
        failed = [w.index for w in self.workers if w.status != 0]
        if failed:
            log.error("workers %s did not stop cleanly", ", ".join(map(str, failed)))
        return 1 if self.gave_up or failed else 0

    def _on_signal(self, number: int, _frame: FrameType | None) -> None:
        self._signals.append(number)  # handled in the loop, not in the handler

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(
            self.command(worker.index),
            env=self.env,
            stdin=subprocess.DEVNULL,
            process_group=0,  # a terminal's Ctrl+C reaches the parent only
        )
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _forward_signals(self) -> None:
        while self._signals:
            self.stop(self._signals.pop(0))

    def stop(self, number: int) -> None:
        """Pass `number` to every running worker; no restarts from now on."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            log.info("%s: stopping %d workers", signal.Signals(number).name, len(self.workers))
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(number)

    def _reap(self, worker: Worker) -> None:
        if worker.process is None or (code := worker.process.poll()) is None:
            return
        worker.process = None
        if self.stopping_since is not None:
            # Killed by the forwarded signal before its handlers were in place: it had
            # nothing to drain yet.
            clean = code == 0 or -code in _STOP_SIGNALS
            worker.status = 0 if clean else code
            log.info("worker %d exited with status %d", worker.index, code)
            return
        worker.status = code
        now = time.monotonic()
        while worker.restarts and now - worker.restarts[0] > 60:
            worker.restarts.popleft()
        if len(worker.restarts) >= self.restarts_per_minute:
            log.error(
                "worker %d exited with status %d, its %d restarts in a minute are used up: "
                "stopping the others",
                worker.index,
                code,
                self.restarts_per_minute,
            )
            self.gave_up = True
            self.stop(signal.SIGTERM)
            return
        log.warning("worker %d exited with status %d: starting it again", worker.index, code)
        worker.restarts.append(now)
        self._start(worker)

    def _kill_when_late(self) -> None:
        if self.stopping_since is None:
            return
        if time.monotonic() - self.stopping_since < self.stop_seconds:
            return
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                log.error(
                    "worker %d still ran %.0f s after the stop: killed",
                    worker.index,
                    self.stop_seconds,
                )
                worker.process.kill()
                worker.process.wait()
