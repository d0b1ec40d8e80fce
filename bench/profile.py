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

# (substring of a frame's file, substring of its function or "", area): the first match wins.
_AREAS = (
    ("/sfu/", "", "sfu: our forwarding code"),
    ("/bench/baseline", "", "bench.baseline: relay glue"),
    ("aiortc/rtcdtlstransport", "", "aiortc: DTLS/SRTP transport"),
    ("aiortc/rtcicetransport", "", "aiortc: ICE transport"),
    ("aiortc/rtcrtpreceiver", "", "aiortc: RTP receiver (RTCP, NACK, stats)"),
    ("aiortc/rtcrtpsender", "", "aiortc: RTP sender"),
    ("aiortc/rtp", "", "aiortc: RTP/RTCP parse+serialize"),
    ("aiortc/codecs", "", "aiortc: codecs (decode/encode)"),
    ("aiortc/jitterbuffer", "", "aiortc: jitter buffer"),
    ("aiortc/rate", "", "aiortc: bandwidth estimation"),
    ("aiortc/", "", "aiortc: other"),
    ("aioice/", "", "aioice: ICE, STUN, UDP"),
    ("pylibsrtp", "", "pylibsrtp: SRTP (C)"),
    ("libsrtp", "", "pylibsrtp: SRTP (C)"),
    ("libcrypto", "", "OpenSSL (SRTP/DTLS crypto)"),
    ("libvpx", "", "libvpx (VP8)"),
    ("libopus", "", "libopus"),
    ("libav", "", "FFmpeg"),
    ("asyncio/selector_events", "sendto", "asyncio: UDP sendto (with its system call)"),
    ("asyncio/selector_events", "read_ready", "asyncio: UDP receive (with its system call)"),
    ("asyncio/", "", "asyncio: scheduling callbacks and tasks"),
    ("aiohttp/", "", "aiohttp (signalling)"),
)


def area(file: str, func: str = "") -> str:
    path = file if file.startswith("/") else "/" + file  # py-spy shows some paths relative
    for needle, function, name in _AREAS:
        if needle in path and function in func:
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


_IDLE = {"epoll_wait", "select", "poll", "epoll_pwait"}
_SYSCALLS = {"sendto", "recvfrom", "sendmsg", "recvmsg", "__libc_sendto", "__libc_recvfrom"}
_INTERESTING = ("/sfu/", "aiortc/", "aioice/", "pylibsrtp/", "/bench/baseline")


def _is_python(file: str) -> bool:
    return file.endswith(".py") or file.startswith("<frozen")


def _leaf_area(frames: list[tuple[str, str]]) -> str:
    """The area a sample's CPU time belongs to.

    A native leaf (with py-spy --native) counts for the nearest Python frame
    above it, except the socket system calls, which get their own area.
    """
    if frames[-1][0] in _SYSCALLS:
        return "kernel: UDP sendto/recvfrom system calls"
    for func, file in reversed(frames):
        if _is_python(file):
            return area(file, func)
    return area(frames[-1][1], frames[-1][0])


def summarize(path: str | Path, top: int = 12) -> str:
    """The busiest areas and functions of a py-spy raw file (waits in epoll left out)."""
    self_area: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    with open(path) as f:
        for line in f:
            parsed = _parse(line)
            if parsed is None:
                continue
            frames, count = parsed
            func, file = frames[-1]
            # Waiting in epoll: with --nonblocking py-spy cannot always tell it from work
            # (a --native profile shows the Python part of select() at well under 1 %).
            if func in _IDLE or (file.endswith("selectors.py") and func.endswith(".select")):
                idle += count
                continue
            total += count
            self_area[_leaf_area(frames)] += count
            self_func[f"{func} ({_short(file)})"] += count
            names = {
                f"{fn} ({_short(fl)})"
                for fn, fl in frames
                if any(i in "/" + fl for i in _INTERESTING)
            }
            for name in names:
                inclusive[name] += count
    if total == 0:
        return "profile: no samples"
    lines = [f"profile: {total} busy samples of the server ({idle} in epoll left out)"]
    for title, counter in (
        ("self time by area (native code counts for its Python caller)", self_area),
        ("self time by function", self_func),
        ("inclusive time, sfu/aiortc/aioice/pylibsrtp functions", inclusive),
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


async def record(pid: int, seconds: float, output: Path, native: bool = False) -> str:
    """Sample `pid` for `seconds` with py-spy into `output` (raw, collapsed stacks).

    Without `native`, C code (SRTP, system calls) counts for the Python line that
    called it.
    """
    exe = py_spy_path()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    command = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    # --native unwinds C frames too, but has to stop the process for every sample,
    # which over-weights system calls; plain sampling does not stop it.
    command.append("--native" if native else "--nonblocking")
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
