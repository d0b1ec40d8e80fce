"""The subscriber of the weak-link bench (bench/weak_link.py), on a test host behind its link.

Either a decoding aiortc bot in its own process on the host
(bench/link_subscriber.py) or Chromium there (bench/chromium.py); both give
cumulative counters per kind under the same names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from bench.chromium import CHROMIUM, chromium_page, join_without_devices, subscriber_stats
from bench.links import Host
from bench.server import REPO_ROOT, server_env


class WeakLinkError(RuntimeError):
    pass


class Subscriber(Protocol):
    participant_id: str

    async def stats(self) -> dict[str, dict[str, float]]:
        """kind -> counter -> cumulative value (packets_received, packets_lost,
        frames_decoded, streams, ...)."""
        ...


@dataclass
class BotSubscriber:
    """bench/link_subscriber.py in a process on the test host."""

    process: asyncio.subprocess.Process
    participant_id: str

    async def stats(self) -> dict[str, dict[str, float]]:
        return await self._ask(b"stats\n")

    async def tracks(self) -> dict[str, dict[str, Any]]:
        """Per track (by mid): kind, frames, the last frame's and each gap's times
        (bench/link_subscriber.py `tracks`)."""
        return await self._ask(b"tracks\n")

    async def _ask(self, command: bytes) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command)
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise WeakLinkError("the subscriber bot exited")
        return dict(json.loads(line))


# Chromium's getStats names -> the bench's.
_CHROMIUM_NAMES = {
    "packetsReceived": "packets_received",
    "packetsLost": "packets_lost",
    "concealedSamples": "concealed_samples",
    "totalSamplesReceived": "samples_received",
    "framesDecoded": "frames_decoded",
    "nackCount": "nacks_sent",
    "pliCount": "plis_sent",
    "firCount": "firs_sent",
    "freezeCount": "freezes",
    "totalFreezesDuration": "freeze_seconds",
    "framesDropped": "frames_dropped",
    "keyFramesDecoded": "keyframes_decoded",
}


@dataclass
class ChromiumSubscriber:
    page: Any  # playwright Page
    participant_id: str

    async def stats(self) -> dict[str, dict[str, float]]:
        raw = await subscriber_stats(self.page) or {}
        return {
            kind: {_CHROMIUM_NAMES.get(k, k): float(v) for k, v in values.items()}
            for kind, values in raw.items()
        }


@asynccontextmanager
async def bot_subscriber(host: Host, base_url: str, token: str) -> AsyncIterator[BotSubscriber]:
    command = host.command([sys.executable, "-m", "bench.link_subscriber", base_url, token])
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=server_env(),
        cwd=str(REPO_ROOT),
    )
    try:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise WeakLinkError("the subscriber bot exited before joining")
        yield BotSubscriber(process, str(json.loads(line)["joined"]))
    finally:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                assert process.stdin is not None
                process.stdin.write(b"leave\n")
                await process.stdin.drain()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def chromium_subscriber(
    host: Host, base_url: str, url: str
) -> AsyncIterator[ChromiumSubscriber]:
    executable = host.executable(CHROMIUM)
    async with chromium_page(executable, origin=base_url, fake_devices=False) as page:
        yield ChromiumSubscriber(page, await join_without_devices(page, url))


async def wait_for_media(subscriber: Subscriber, publishers: int, timeout: float) -> None:
    """Until the subscriber decodes every camera (and keeps decoding) and hears audio."""
    deadline = time.monotonic() + timeout
    previous = -1.0
    stats: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline:
        stats = await subscriber.stats()
        video, audio = stats.get("video", {}), stats.get("audio", {})
        frames = video.get("frames_decoded", 0)
        if video.get("streams", 0) >= publishers and audio.get("packets_received", 0) > 0:
            if frames > previous >= 10 * publishers:
                return
            previous = frames
        await asyncio.sleep(0.5)
    raise WeakLinkError(f"the subscriber did not decode {publishers} cameras: {stats}")
