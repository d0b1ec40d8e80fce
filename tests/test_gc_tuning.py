"""signalling/gc_tuning.py: `urok serve` freezes what exists once the app is built,
collects the young generation less often, and counts the collector's pauses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import aiohttp
import pytest

from signalling.gc_tuning import YOUNG_THRESHOLD
from tests.live import ROOT, free_port, serve_process, wait_healthy

PROBE = """
import gc, json
before = gc.get_threshold()
from signalling import gc_tuning
gc_tuning.tune()
frozen = gc.get_freeze_count()
gc.collect(0)
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                  "count": gc_tuning.PAUSES.count, "seconds": gc_tuning.PAUSES.seconds}))
"""


def test_tune_freezes_what_exists_and_collects_the_young_less_often() -> None:
    # In a process of its own: the collector's state is the whole process's.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    probe = json.loads(out.stdout)
    assert probe["before"][0] == 700  # CPython's default, changed by tune() only
    assert probe["after"] == [YOUNG_THRESHOLD, probe["before"][1], probe["before"][2]]
    assert probe["frozen"] > 10_000  # the modules' objects at least
    # tune()'s own full collection, then the young one: both counted, with their time.
    assert probe["count"][2] >= 1 and probe["count"][0] >= 1
    assert probe["seconds"][2] > 0


async def test_serve_reports_the_collectors_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UROK_METRICS_TOKEN", "gc-test-token-0123456789")
    port = free_port()
    process = await serve_process(port)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base)
            headers = {"Authorization": "Bearer gc-test-token-0123456789"}
            async with http.get(base + "/metrics", headers=headers) as response:
                assert response.status == 200
                text = await response.text()
        lines = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line.startswith("urok_gc_")
        }
        assert lines['urok_gc_collections_total{generation="2"}'] >= 1
        assert lines['urok_gc_pause_seconds_total{generation="2"}'] > 0
        assert 'urok_gc_pause_longest_seconds{generation="0"}' in lines
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)
