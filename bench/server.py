"""The server under test, seen from the bench: a subprocess, its CPU time, and its journal API.

The bench starts the server as its own process (so its CPU time can be read
from /proc apart from the bots'), or measures one that is already running
when given its URL, integration secret and pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid`, all its threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc_pid_stat(5)
    return utime / _CLK_TCK, stime / _CLK_TCK


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads)."""
    return sum(cpu_times(pid))


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat; not idle/iowait)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal (guest time is in user already)
    ticks = [int(v) for v in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK


def child_pids(pid: int) -> list[int]:
    """The live child processes of process `pid` (of any of its threads), from /proc."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                children.extend(int(child) for child in f.read().split())
    return children


def find_child(pid: int, marker: bytes) -> int | None:
    """A child process of `pid` whose command line contains `marker` (None: none now)."""
    for child in child_pids(pid):
        with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as f:
            if marker in f.read():
                return child
    return None


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the bench dies without cleaning up (SIGKILL), the kernel sends the server SIGTERM.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The bench's environment without UROK_* settings, with the repository importable,
    plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UROK_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class ServerProcess:
    """`python -m <module> serve --port <free>` on loopback, stopped on exit.

    `data_dir`: where it keeps files (recordings), instead of the user's default.
    `host`: the address it listens on (e.g. the server side of a test link,
    bench/links.py); `ice_addresses`: where it gathers media candidates."""

    def __init__(
        self,
        module: str,
        log_path: Path,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        ice_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> None:
        self.module = module
        self.env = dict(env or {})
        self.host = host
        self.ice_addresses = ice_addresses
        self.port = free_port()
        self.base_url = f"http://{host}:{self.port}"
        self.log_path = log_path
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            self.module,
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *(arg for address in self.ice_addresses for arg in ("--ice-address", address)),
        ]

    async def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(
                    {**self.env, "UROK_DATA_DIR": str(self.data_dir)}
                    if self.data_dir is not None
                    else self.env
                ),
                cwd=str(REPO_ROOT),
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()  # the child has its own copy
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if not self.running:
                    raise ServerError(
                        f"{self.module} exited with {self.process.returncode}; "
                        f"log:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(self.base_url + "/api/v1/openapi.yaml") as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise ServerError(f"{self.module} not ready within {timeout:.0f} s")
                await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            await stop_process(self.process, timeout)


async def stop_process(process: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM (a server drains and exits), SIGKILL if it has not within `timeout`."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@dataclass
class Journal:
    """The school journal's side of the API: lessons and join tokens."""

    base_url: str
    secret: str
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.secret}"}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            data = await response.json(content_type=None)
            if response.status >= 300:
                raise ServerError(f"{method} {path}: {response.status} {data}")
            return data

    async def create_lesson(self, teacher_id: str, student_ids: list[str]) -> str:
        start = datetime.now(UTC) - timedelta(minutes=1)
        body = await self.call(
            "POST",
            "/api/v1/lessons",
            {
                "group": {"id": f"bench-{secrets.token_hex(4)}", "title": "Bench"},
                "subject": "Load bench",
                "teacher": {"id": teacher_id, "name": "Bench teacher"},
                "roster": [{"id": s, "name": s, "role": "student"} for s in student_ids],
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=45)).isoformat(),
            },
        )
        lesson_id = str(body["id"])
        await self.call("POST", f"/api/v1/lessons/{lesson_id}/open")
        return lesson_id

    async def token(self, lesson_id: str, user_id: str, role: str) -> str:
        body = await self.call(
            "POST",
            f"/api/v1/lessons/{lesson_id}/tokens",
            {"user": {"id": user_id, "name": user_id}, "role": role},
        )
        return str(body["token"])

    async def end_lesson(self, lesson_id: str) -> None:
        await self.call("DELETE", f"/api/v1/lessons/{lesson_id}")
