"""The processes of the cluster bench: a throwaway redis-server and `urok serve --workers N`.

Both are real processes on loopback, started by the bench and stopped by it
(also on Ctrl-C, SIGTERM and errors; if the bench is SIGKILLed the kernel
sends them SIGTERM, PR_SET_PDEATHSIG, and orphaned workers drain by
themselves). Each worker is a node with a record in Redis; the bench reads
the records (rooms.placement_redis) for the workers' internal addresses, and
each worker's GET /metrics on that address for what it forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from bench.server import (
    REPO_ROOT,
    ServerError,
    _die_with_parent,
    child_pids,
    free_port,
    stop_process,
)
from bench.server import server_env as bench_env
from rooms.placement import NodeRecord
from rooms.placement_redis import RedisPlacement
from rooms.store_redis import DEFAULT_PREFIX

REDIS_CANDIDATES = (
    "/usr/bin/redis-server",
    "/usr/sbin/redis-server",
    "/usr/local/bin/redis-server",
)


def find_redis_server() -> str:
    """The redis-server binary ($UROK_REDIS_SERVER, else the PATH, else the usual places)."""
    override = os.environ.get("UROK_REDIS_SERVER")
    candidates = [override] if override else [shutil.which("redis-server"), *REDIS_CANDIDATES]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ServerError(
        "redis-server not found: the cluster bench needs a real one "
        "(apt-get install redis-server, or point UROK_REDIS_SERVER at the binary)"
    )


@asynccontextmanager
async def redis_server(workdir: Path, timeout: float = 15.0) -> AsyncIterator[str]:
    """A redis-server on a free loopback port that persists nothing; yields its URL."""
    port = free_port()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *(find_redis_server(), "--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--dir", str(workdir), "--logfile", ""),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = aioredis.from_url(url)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.returncode is not None:
                    raise ServerError(f"redis-server exited with {process.returncode}")
                with contextlib.suppress(aioredis.ConnectionError, OSError):
                    if await client.ping():
                        break
                if time.monotonic() > deadline:
                    raise ServerError(f"redis-server did not answer within {timeout:.0f} s")
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        yield url
    finally:
        await stop_process(process, 10.0)


@dataclass(frozen=True)
class Scrape:
    """One worker's GET /metrics, the figures the bench uses."""

    calls: int
    participants: int
    streams: int  # urok_consumers: outgoing tracks carrying a producer
    packets_in: int
    packets_out: int


def parse_metrics(text: str) -> Scrape:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("urok_calls", "urok_participants", "urok_consumers"):
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
            elif sample.name == "urok_media_packets_total":
                values["packets_" + sample.labels["direction"]] = sample.value
    return Scrape(
        calls=int(values.get("urok_calls", 0)),
        participants=int(values.get("urok_participants", 0)),
        streams=int(values.get("urok_consumers", 0)),
        packets_in=int(values.get("packets_incoming", 0)),
        packets_out=int(values.get("packets_outgoing", 0)),
    )


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()
    return b""


class ClusterProcess:
    """`python -m signalling.cli --config <file> serve --workers N` on a free loopback port."""

    def __init__(self, workers: int, redis_url: str, workdir: Path, max_lessons: int) -> None:
        self.workers = workers
        self.max_lessons = max_lessons
        self.redis_url = redis_url
        self.workdir = workdir
        self.port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}"
        self.node_id_base = f"bench-{os.getpid()}-{secrets.token_hex(2)}"
        self.metrics_token = secrets.token_hex(16)
        self.log_path = workdir / f"serve-{workers}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.redis = aioredis.from_url(redis_url, decode_responses=True)
        self.placement = RedisPlacement(self.redis, DEFAULT_PREFIX)

    def _config(self) -> Path:
        path = self.workdir / f"urok-{self.workers}.toml"
        # Beats every second: the records' load follows the run closely. max_lessons sized
        # to the run, as an operator sizes it to the machine: in the burst of placements
        # each lesson weighs more than an idle worker's CPU noise, so they spread evenly.
        # A short drain: the bots have left when the bench stops the server.
        path.write_text(
            "drain_seconds = 5\n"
            f'[cluster]\nnode_id = "{self.node_id_base}"\nheartbeat_seconds = 1.0\n'
            f"max_lessons = {self.max_lessons}\n"
            f'[metrics]\ntoken = "{self.metrics_token}"\n'
        )
        return path

    async def start(self, timeout: float) -> None:
        """Start it; wait until the public port and every worker's internal address answer."""
        data_dir = self.workdir / f"data-{self.workers}"
        command = [sys.executable, "-m", "signalling.cli", "--config", str(self._config())]
        command += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--redis-url", self.redis_url, "--workers", str(self.workers)]
        command += ["--ice-address", "127.0.0.1"]
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=bench_env({"UROK_DATA_DIR": str(data_dir)}),
                cwd=str(REPO_ROOT),
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while not await self._ready(http):
                if self.process.returncode is not None:
                    raise ServerError(
                        f"urok serve exited: {self.process.returncode}\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise ServerError(f"{self.workers} workers not ready in {timeout:.0f} s")
                await asyncio.sleep(0.2)

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        records = await self.nodes()
        if len(records) != self.workers or len(self.worker_pids()) != self.workers:
            return False
        # A worker's first beats carry its start-up's CPU: placement would find it full.
        if any(r.load.cpu_share >= r.limits.max_cpu / 2 for r in records):
            return False
        urls = [self.public_url, *(record.internal_url for record in records)]
        try:
            for url in urls:
                async with http.get(url + "/healthz") as response:
                    if response.status != 200:
                        return False
        except (aiohttp.ClientError, OSError):
            return False
        return True

    async def nodes(self) -> list[NodeRecord]:
        """This cluster's live node records (by id)."""
        with contextlib.suppress(aioredis.ConnectionError, OSError):
            records = await self.placement.nodes()
            ours = (self.node_id_base, self.node_id_base + "-w")
            return [r for r in records if r.id == ours[0] or r.id.startswith(ours[1])]
        return []

    def worker_pids(self) -> dict[str, int]:
        """Node id -> pid of each running worker (the parent's children, by `--worker I`;
        with one worker, the process itself: `--workers 1` is one process, no parent)."""
        assert self.process is not None
        if self.workers == 1:
            return {self.node_id_base: self.process.pid} if self.running else {}
        pids: dict[str, int] = {}
        for pid in child_pids(self.process.pid):
            argv = _cmdline(pid).split(b"\0")
            if b"--worker" in argv:
                index = argv[argv.index(b"--worker") + 1].decode()
                pids[f"{self.node_id_base}-w{index}"] = pid
        return pids

    async def scrape(self, http: aiohttp.ClientSession, internal_url: str) -> Scrape:
        headers = {"Authorization": f"Bearer {self.metrics_token}"}
        async with http.get(internal_url + "/metrics", headers=headers) as response:
            if response.status != 200:
                raise ServerError(f"GET {internal_url}/metrics: {response.status}")
            return parse_metrics(await response.text())

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        """SIGTERM to the parent (it stops its workers); kill whatever is left after 40 s."""
        pids = list(self.worker_pids().values()) if self.running and self.workers > 1 else []
        if self.process is not None:
            await stop_process(self.process, 40.0)
        for pid in pids:  # a worker that outlived its parent's own kill (and is still ours)
            if self.node_id_base.encode() in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await self.redis.aclose()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None
