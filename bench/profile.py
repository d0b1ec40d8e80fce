"""Where the server's CPU goes: py-spy attached during the measurement window, summarized.

`python -m bench.load --profile out.txt` records the server process with
py-spy (`pip install py-spy`) for exactly the measurement window and prints
the busiest functions and areas; `python -m bench.profile out.txt` prints the
summary of a recording again. Sampling costs the server a little CPU, so
take figures from runs without --profile.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# (substring of a frame's file, area) - the first match wins.
_AREAS = (
    ("/sfu/", "sfu: our forwarding code"),
    ("/bench/baseline", "bench.baseline: relay glue"),
    ("aiortc/rtcdtlstransport", "aiortc: DTLS/SRTP transport"),
    ("aiortc/rtcicetransport", "aiortc: ICE transport"),
    ("aiortc/rtcrtpreceiver", "aiortc: RTP receiver (RTCP, NACK, stats)"),
    ("aiortc/rtcrtpsender", "aiortc: RTP sender"),
    ("aiortc/rtp", "aiortc: RTP/RTCP parse+serialize"),
    ("aiortc/codecs", "aiortc: codecs (decode/encode)"),
    ("aiortc/jitterbuffer", "aiortc: jitter buffer"),
    ("aiortc/rate", "aiortc: bandwidth estimation"),
    ("aiortc/", "aiortc: other"),
    ("aioice/", "aioice: ICE, STUN, UDP"),
    ("pylibsrtp", "pylibsrtp: SRTP (C)"),
    ("libsrtp", "pylibsrtp: SRTP (C)"),
    ("libcrypto", "OpenSSL (SRTP/DTLS crypto)"),
    ("libvpx", "libvpx (VP8)"),
    ("libopus", "libopus"),
    ("libav", "FFmpeg"),
    ("asyncio/", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
    ("aiohttp/", "aiohttp (signalling)"),
)


def area(file: str) -> str:
    for needle, name in _AREAS:
        if needle in file:
            return name
    if file.endswith(".py"):
        return "python: " + Path(file).name
    return "native: " + (Path(file).name or "?")


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.replace(str(Path(__file__).resolve().parent.parent) + "/", "")


def _parse(line: str) -> tuple[list[tuple[str, str]], int] | None:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        frames.append((match["func"], match["file"]) if match else (raw, ""))
    return frames, int(count)


def summarize(path: str | Path, top: int = 15) -> str:
    """The busiest areas (self time) and functions (self and inclusive) of a py-spy raw file."""
    self_area: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            parsed = _parse(line)
            if parsed is None:
                continue
            frames, count = parsed
            total += count
            func, file = frames[-1]
            self_area[area(file)] += count
            self_func[f"{func} ({_short(file)})"] += count
            for name in {f"{fn} ({_short(fl)})" for fn, fl in frames}:
                inclusive[name] += count
    if total == 0:
        return "profile: no samples"
    lines = [f"profile: {total} samples of the server's busy threads"]
    for title, counter in (
        ("self time by area", self_area),
        ("self time by function", self_func),
        ("inclusive time by function", inclusive),
    ):
        lines.append(f"  {title}:")
        for name, count in counter.most_common(top):
            lines.append(f"    {100 * count / total:5.1f} %  {name}")
    return "\n".join(lines)


def py_spy_path() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


async def record(pid: int, seconds: float, output: Path, native: bool = True) -> str:
    """Sample `pid` for `seconds` with py-spy into `output` (raw, collapsed stacks)."""
    exe = py_spy_path()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    command = [
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "200", "--format", "raw", "--output", str(output),
    ]
    if native:
        command.append("--native")
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), seconds + 30)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed: {out.decode(errors='replace')[-500:]}")
    return out.decode(errors="replace")


if __name__ == "__main__":
    print(summarize(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15))
