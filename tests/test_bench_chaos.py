"""The chaos bench (bench/chaos.py), small: a real server process, nine bots (past the
audio slots), pupils cut off by nftables two at a time for a few seconds. Every blip
ends in a resume with media back, no chat message is missed or doubled, nobody is
announced as leaving or coming, and nothing gets through a cut (the cut is real)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def test_a_short_chaos_run_loses_nobody_and_nothing() -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.chaos", "--json", "--seed", "7"),
        # Nine: more microphones than audio slots (6 + the host), so slots are in play.
        *("--people", "9", "--seconds", "8", "--concurrent", "2"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 150)
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["blips"] >= 2, report
    assert report["resumed"] == report["blips"] and report["failed"] == 0, report
    assert report["media_not_back"] == 0 and report["media_back_s_p50"] is not None, report
    assert report["packets_through_cuts"] == 0, report
    assert report["chat_sent"] >= 5, report
    assert report["chat_missed"] == 0 and report["chat_twice"] == 0, report
    assert report["left_or_joined"] == 0, report
