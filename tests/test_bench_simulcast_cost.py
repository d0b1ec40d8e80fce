"""bench/simulcast_cost.py runs against this tree's receiver and reports both cases (it
broke once, silently, when ForwardingReceiver began registering its RTX SSRCs with the
transport's router)."""

from __future__ import annotations

import asyncio
import re
import sys

from tests.bench_run import ROOT


async def test_the_forwarding_micro_bench_runs_and_reports_both_cases() -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "bench/simulcast_cost.py", "--consumers", "3", "--paused", "3"),
        *("--passes", "1", "--frames", "20"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    text = out.decode()
    assert process.returncode == 0, text
    figures = re.findall(r"^(single|simulcast): ([0-9.]+) µs per forwarded packet", text, re.M)
    assert [name for name, _ in figures] == ["single", "simulcast"], text
    assert all(float(value) > 0 for _, value in figures), text
