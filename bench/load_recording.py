"""The load bench's recording windows: start a recording, measure, stop it, read the file."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot, BotError
from bench.cli import say
from bench.load_bots import Participant
from bench.load_figures import RecordingReport
from bench.load_options import BenchError, Options
from bench.load_window import Window, measure, recorder_cpu
from bench.server import find_child

RECORDER_MARKER = b"recording.worker"  # in the recorder process's command line
READY_TIMEOUT = 120.0  # from recording_stop to the chat's recording_ready


def _is_recording_done(message: dict[str, Any]) -> bool:
    if message.get("type") != "chat_message":
        return False
    data = message.get("message", {}).get("data") or {}
    return data.get("event") in ("recording_ready", "recording_failed")


async def record(
    host: Participant,
    pid: int | None,
    options: Options,
    windows: list[Window],
    report: RecordingReport,
) -> None:
    """Start a recording, measure a window with it, stop it, wait for the file, measure again."""
    started = await _start_recording(host, pid, options, report)
    say(
        options,
        f"[recording] recorder pid {report.recorder_pid}; warm-up {options.recording_warmup:g} s",
    )
    await asyncio.sleep(options.recording_warmup)
    windows.append(await measure("recording", pid, options, report.recorder_pid))
    report.recorder_cpu = recorder_cpu(report.recorder_pid)
    await _stop_recording(host.bot, options, report, started)
    if report.recorder_pid is not None:
        report.recorder_exited = recorder_cpu(report.recorder_pid) is None
    say(options, f"[after] warm-up {options.warmup:g} s")
    await asyncio.sleep(options.warmup)
    windows.append(await measure("after", pid, options))


async def _start_recording(
    host: Participant, pid: int | None, options: Options, report: RecordingReport
) -> float:
    """The host starts a recording; its recorder process is found (a child of the server).
    When the start was answered (bench clock)."""
    bot = host.bot
    say(options, f"[recording] {host.user_id} starts a recording")
    reply = await bot.request(
        {"type": "recording_start", "title": "Load bench"},
        lambda m: m["type"] == "recording" and m.get("recording") is not None,
        timeout=30,
    )
    started = time.monotonic()
    if reply["type"] == "error":
        raise BenchError(f"recording_start refused: {reply.get('code')}: {reply.get('message')}")
    report.recording_id = reply["recording"]["id"]
    if pid is not None:
        while report.recorder_pid is None and time.monotonic() - started < 10:
            report.recorder_pid = find_child(pid, RECORDER_MARKER)
            if report.recorder_pid is None:
                await asyncio.sleep(0.05)
        if report.recorder_pid is None:
            raise BenchError(f"no recorder process ({RECORDER_MARKER.decode()}) under pid {pid}")
    return started


async def _stop_recording(
    bot: Bot, options: Options, report: RecordingReport, started: float
) -> None:
    """Stop the recording and wait for the chat's recording_ready (or recording_failed)."""
    done = bot.wait_for(_is_recording_done, READY_TIMEOUT)
    try:
        reply = await bot.request(
            {"type": "recording_stop"},
            lambda m: m["type"] == "recording" and m.get("recording") is None,
            timeout=30,
        )
        stopped = time.monotonic()
        report.wall_seconds = stopped - started
        if reply["type"] == "error":
            raise BenchError(f"recording_stop refused: {reply.get('code')}: {reply.get('message')}")
        say(options, "[recording] stopped; waiting for recording_ready")
        try:
            message = await done
        except BotError:
            report.error = f"no recording_ready within {READY_TIMEOUT:g} s of the stop"
        else:
            report.ready_seconds = time.monotonic() - stopped
            _read_ready(report, message["message"]["data"])
    finally:
        if not done.done():
            done.cancel()


def _read_ready(report: RecordingReport, data: dict[str, Any]) -> None:
    if data.get("event") == "recording_ready":
        report.ready = True
        report.duration_s = data.get("duration_s")
        report.size_bytes = data.get("size_bytes")
        report.complete = data.get("complete")
        report.url = data.get("url")
    else:
        report.failed = True
        report.error = "recording_failed"


async def inspect_recording(
    http: aiohttp.ClientSession, base_url: str, bot: Bot, report: RecordingReport
) -> None:
    """Download the file as the teacher would and count its video frames (no decoding)."""
    if not report.url:
        return
    try:
        async with http.get(f"{base_url}{report.url}?token={bot.token}") as response:
            if response.status != 200:
                report.error = f"GET {report.url}: {response.status}"
                return
            data = await response.read()
        probed = await asyncio.to_thread(_probe_mp4, data)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        report.error = f"cannot read the recording: {type(exc).__name__}: {exc}"
        return
    report.width, report.height, report.fps, report.video_frames = probed


def _probe_mp4(data: bytes) -> tuple[int, int, float | None, int]:
    import io

    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        times = sorted(
            float(packet.pts * packet.time_base)
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        )
        width, height = stream.codec_context.width, stream.codec_context.height
    # The frame rate from the shortest step between frames: skipped frames leave gaps, so
    # the file's average rate would be too low.
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    fps = round(1 / min(steps), 3) if steps else None
    return width, height, fps, len(times)


def recording_log_lines(path: Path, limit: int = 20) -> list[str]:
    """Warnings and errors in the server's log (the recorder's too) that mention recording."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = [
        line
        for line in text.splitlines()
        if ("WARNING" in line or "ERROR" in line) and "record" in line.lower()
    ]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
