"""A real server on a loopback port, and a journal client for its HTTP API."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from signalling.app import create_app
from signalling.config import DEMO_SECRET, IceSettings, Settings
from signalling.http_guard import ConnectionGuard, GuardedSite
from signalling.keys import NODE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROOT = Path(__file__).resolve().parent.parent


async def serve_process(
    port: int, *args: str, data_dir: Path | None = None, output: bool = False
) -> asyncio.subprocess.Process:
    """`urok serve --port PORT ARGS...` as a process of its own, as an operator runs it;
    `output`: its stdout and stderr on one pipe (else discarded)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if data_dir is not None:
        env["UROK_DATA_DIR"] = str(data_dir)
    sink = asyncio.subprocess.PIPE if output else asyncio.subprocess.DEVNULL
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "signalling.cli", "serve", "--port", str(port), *args),
        cwd=ROOT,
        env=env,
        stdout=sink,
        stderr=asyncio.subprocess.STDOUT if output else sink,
    )


async def wait_healthy(http: aiohttp.ClientSession, base: str, timeout: float = 30.0) -> None:
    """Until `urok serve` started as a process answers GET /healthz."""
    for _ in range(int(timeout * 10)):
        try:
            async with http.get(base + "/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server at {base} did not come up")


@dataclass
class LiveServer:
    base_url: str
    app: web.Application
    settings: Settings
    http: aiohttp.ClientSession

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {DEMO_SECRET}"}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def create_lesson(
        self, group_id: str = "5a", roster: list[dict[str, str]] | None = None, open_: bool = True
    ) -> str:
        start = datetime.now(UTC) - timedelta(minutes=1)
        roster = roster or [
            {"id": f"s-{i}", "name": f"Ученик {i}", "role": "student"} for i in range(1, 41)
        ]
        status, body = await self.api(
            "POST",
            "/api/v1/lessons",
            {
                "group": {"id": group_id, "title": "5А"},
                "subject": "Математика",
                "teacher": {"id": "t-1", "name": "Анна Петровна"},
                "roster": roster,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=45)).isoformat(),
            },
        )
        assert status == 201, body
        lesson_id = str(body["id"])
        if open_:
            status, body = await self.api("POST", f"/api/v1/lessons/{lesson_id}/open")
            assert status == 200, body
        return lesson_id

    async def token(self, lesson_id: str, user_id: str, name: str, role: str) -> str:
        status, body = await self.api(
            "POST",
            f"/api/v1/lessons/{lesson_id}/tokens",
            {"user": {"id": user_id, "name": name}, "role": role},
        )
        assert status == 201, body
        return str(body["token"])


@asynccontextmanager
async def running_server(host: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[LiveServer]:
    """The app on a free port of `host` (loopback, or the server side of a test link of
    bench/links.py); its data directory (recordings) is a fresh temporary one, removed
    afterwards, unless `data_dir` is given. Media is gathered on loopback and on `host`."""
    port = free_port()
    temporary = None
    if "data_dir" not in overrides:
        temporary = tempfile.TemporaryDirectory(prefix="urok-data-")
        overrides["data_dir"] = Path(temporary.name)
    addresses = ("127.0.0.1",) if host == "127.0.0.1" else ("127.0.0.1", host)
    overrides.setdefault("ice", IceSettings(addresses=addresses))
    # A closed socket is a leaver at once, as most tests expect of a bot's close();
    # the resume tests (tests/test_resume.py, the browser's) set a grace.
    overrides.setdefault("resume_grace_seconds", 0)
    settings = replace(
        Settings(),
        host=host,  # where it listens: its internal address too (node records)
        port=port,
        public_url=f"http://{host}:{port}",
        **overrides,
    )
    try:
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        # As `urok serve` makes it: behind the connection cap and header timeout.
        peers = app[NODE].peers if NODE in app else None
        site = GuardedSite(runner, host, port, ConnectionGuard(settings.limits, peers))
        await site.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield LiveServer(f"http://{host}:{port}", app, settings, http)
        finally:
            await runner.cleanup()
    finally:
        if temporary is not None:
            temporary.cleanup()
