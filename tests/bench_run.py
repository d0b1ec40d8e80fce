"""Run a bench as a user does (`python -m bench.NAME ... --json FILE`) for its smoke test."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


async def bench_report(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """The JSON report of `python -m <module> <args> --json FILE`; its output on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", module, "--json", str(out), *args),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode == 0, (stdout + stderr).decode(errors="replace")[-3000:]
        report: dict[str, Any] = json.loads(out.read_text())
        return report
