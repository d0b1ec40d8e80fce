"""`urok serve` with `[log] format = "json"`: every log line is one JSON object, and the
lines about a participant carry the call's and the participant's ids."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.bot import Bot
from signalling.config import Settings
from tests.live import LiveServer, free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


async def test_json_lines_with_call_and_participant_ids(tmp_path: Path) -> None:
    config = tmp_path / "urok.toml"
    config.write_text('resume_grace_seconds = 5\n\n[log]\nformat = "json"\n')
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "--config",
        str(config),
        "serve",
        "--port",
        str(port),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "UROK_DATA_DIR": str(tmp_path / "data")},
        stdout=asyncio.subprocess.DEVNULL,  # the start-up banner, for people
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, 15.0)
            # The journal's side, over HTTP: the server is the other process.
            journal = LiveServer(base, web.Application(), Settings(), http)
            lesson = await journal.create_lesson()
            pupil = Bot(base, await journal.token(lesson, "s-1", "Ученик 1", "student"))
            try:
                await pupil.connect()
                pupil_id = pupil.id
                await pupil.drop_signalling()  # held for the grace: a line about them
                await asyncio.sleep(0.5)
            finally:
                await pupil.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        output = await asyncio.wait_for(process.stderr.read(), 20)
        await asyncio.wait_for(process.wait(), 10)
    lines = output.decode().splitlines()
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # each one JSON
    assert len(records) >= 3
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    joined = [r for r in records if r["message"] == f"s-1 joined {lesson} as student"]
    assert len(joined) == 1, records
    ids = {"call_id": lesson, "participant_id": pupil_id, "user_id": "s-1"}
    assert joined[0].items() >= ids.items()
    held = [r for r in records if "held for" in r["message"]]
    assert len(held) == 1 and held[0].items() >= ids.items(), records
    # The access log goes through the same formatter; its /ws line is the participant's
    # connection, the journal's requests name nobody.
    access = [r for r in records if r["logger"] == "aiohttp.access"]
    api = [r for r in access if "/api/v1/" in r["message"]]
    assert any("POST /api/v1/lessons " in r["message"] for r in api)
    assert all("participant_id" not in r and "call_id" not in r for r in api)
    ws = [r for r in access if "GET /ws " in r["message"]]
    assert len(ws) == 1 and ws[0].items() >= ids.items(), ws
