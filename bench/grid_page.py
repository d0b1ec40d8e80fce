"""A pupil's call page in Chromium, in a class whose cameras are all on: what its grid
page costs the pupil's downlink (issue 11's "under 2.5 Mbit/s in grid view").

    python -m bench.grid_page --people 16 --seconds 10 [--json FILE]

(in a network namespace with only loopback up, like the other benches.) One
`urok serve` process; `--people - 1` bots publish the call page's camera as it
sends it (bench/simulcast_publisher.py: three pre-encoded VP8 layers, 160x90 /
320x180 / 640x360) and a microphone (the teacher talks, the pupils are silent as
Opus DTX sends silence); then one Chromium pupil opens the call page (1280x720, the
Playwright default; no camera or microphone of its own). The page lays the class
out in grid pages (web_client/static/js/gridpages.js: 16 tiles on a laptop) and
tells the server what it shows and at what size (`track_view`); the server sends
each camera in the smallest layer that covers its tile, and nothing of the other
pages' cameras. Over `--seconds` the bench reads the page's getStats: video and
audio kbit/s received (RTP payload and headers as counted by the browser), the
cameras decoded and their sizes, frames decoded a second, freezes.

Each layer set runs in the same run, a new lesson each: `before` (the call page's
layers until 2026-12-04: 150 / 450 / 1200 kbit/s) and `now` (90 / 160 / 450,
LiveKit's rates for those sizes), so the ratio is measured on one machine at one
time. Bounded: every wait by `--timeout`, the window by `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot
from bench.chromium import chromium_page, join_without_devices
from bench.cli import publish_report, run_main, run_reported
from bench.full_class import teacher_voice
from bench.media import SilentAudioTrack
from bench.preencoded import PreEncodedTrack
from bench.server import Journal, ServerProcess
from bench.simulcast_publisher import (
    LAYERS_SIMULCAST,
    LayerClip,
    LayeredCamera,
    LayerSpec,
    encode_layers,
    publish_layered,
)
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

LAYERS_BEFORE = (
    LayerSpec("q", 160, 90, 150_000),
    LayerSpec("h", 320, 180, 450_000),
    LayerSpec("f", 640, 360, 1_200_000),
)
LAYER_SETS = {"before": LAYERS_BEFORE, "now": LAYERS_SIMULCAST}
TARGET_KBPS = 2500

# The page's receiving connection: bytes and frames per kind, each video's size.
PAGE_STATS_JS = """
async () => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs.subscriber;
  if (!pc) return null;
  const out = {audio_bytes: 0, video_bytes: 0, frames: 0, freezes: 0, sizes: {}};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const bytes = (s.bytesReceived || 0) + (s.headerBytesReceived || 0);
    if (s.kind === 'audio') out.audio_bytes += bytes;
    if (s.kind !== 'video') return;
    out.video_bytes += bytes;
    out.frames += s.framesDecoded || 0;
    out.freezes += s.freezeCount || 0;
    if (s.frameWidth) out.sizes[s.mid] = `${s.frameWidth}x${s.frameHeight}`;
  });
  out.tiles = [...document.querySelectorAll('#grid .tile')]
    .filter((t) => !t.hidden && !t.hasAttribute('data-off-page')).length;
  return out;
}
"""


@dataclass
class PageWindow:
    layers: str
    thumbnails: str  # the server's [media] thumbnail_frame_rate
    layer_kbps: list[int]
    seconds: float
    video_kbps: float
    audio_kbps: float
    cameras_decoded: int  # videos with a decoded size
    tiles_shown: int
    sizes: dict[str, int] = field(default_factory=dict)  # size -> videos
    frames_per_s: float = 0.0
    freezes: int = 0

    @property
    def total_kbps(self) -> float:
        return self.video_kbps + self.audio_kbps


@dataclass
class Report:
    people: int
    windows: list[PageWindow]


async def page_stats(page: Any) -> dict[str, Any]:
    stats = await page.evaluate(PAGE_STATS_JS)
    if stats is None:
        raise RuntimeError("the page has no receiving connection")
    return dict(stats)


async def until_decoding(page: Any, cameras: int, timeout: float) -> None:
    """Until the page decodes `cameras` videos (those on its grid page)."""
    deadline = time.monotonic() + timeout
    stats = None
    while True:
        # No receiving connection yet right after the join: its offer is on the way.
        stats = await page.evaluate(PAGE_STATS_JS)
        if stats is not None and len(stats["sizes"]) >= cameras:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the page did not decode {cameras} cameras: {stats}")
        await asyncio.sleep(0.5)


@asynccontextmanager
async def class_of(
    journal: Journal, people: int, layers: tuple[LayerClip, ...]
) -> AsyncIterator[str]:
    """A lesson of `people - 1` publishing bots (the first the teacher) and a place on
    its roster for the page's pupil (`page`); the lesson id."""
    ids = [f"p-{i}" for i in range(people - 1)]
    lesson = await journal.create_lesson(ids[0], [*ids[1:], "page"])
    bots: list[Bot] = []
    cameras: list[LayeredCamera] = []
    try:
        for index, user in enumerate(ids):
            role = "teacher" if index == 0 else "student"
            token = await journal.token(lesson, user, role)
            bot = Bot(journal.base_url, token, decode=False, receive=False)
            bots.append(bot)
            await bot.connect(timeout=30)
            audio = PreEncodedTrack(teacher_voice()) if index == 0 else SilentAudioTrack(dtx=True)
            cameras.append(await publish_layered(bot, layers, [(audio, "microphone")], 30))
        for camera, bot in zip(cameras, bots, strict=True):
            camera.start(bot.publisher)
        yield lesson
    finally:
        for bot in bots:
            with contextlib.suppress(Exception):
                await bot.close()
        with contextlib.suppress(Exception):
            await journal.end_lesson(lesson)


async def measure_page(
    journal: Journal, args: argparse.Namespace, name: str, layers: tuple[LayerClip, ...]
) -> PageWindow:
    async with class_of(journal, args.people, layers) as lesson:
        body = await journal.call(
            "POST",
            f"/api/v1/lessons/{lesson}/tokens",
            {"user": {"id": "page", "name": "page"}, "role": "student"},
        )
        async with chromium_page(fake_devices=False) as page:
            await join_without_devices(page, str(body["url"]))
            shown = min(args.people - 1, args.page_tiles - 1)
            await until_decoding(page, shown, args.timeout)
            await asyncio.sleep(args.warmup)
            first, started = await page_stats(page), time.monotonic()
            await asyncio.sleep(args.seconds)
            last, elapsed = await page_stats(page), time.monotonic() - started
    sizes: dict[str, int] = {}
    for size in last["sizes"].values():
        sizes[size] = sizes.get(size, 0) + 1
    return PageWindow(
        layers=name,
        thumbnails=args.thumbnail_rate,
        layer_kbps=[round(layer.clip.bitrate / 1000) for layer in layers],
        seconds=round(elapsed, 1),
        video_kbps=round((last["video_bytes"] - first["video_bytes"]) * 8 / 1000 / elapsed),
        audio_kbps=round((last["audio_bytes"] - first["audio_bytes"]) * 8 / 1000 / elapsed),
        cameras_decoded=len(last["sizes"]),
        tiles_shown=int(last["tiles"]),
        sizes=sizes,
        frames_per_s=round((last["frames"] - first["frames"]) / elapsed, 1),
        freezes=int(last["freezes"] - first["freezes"]),
    )


async def run(args: argparse.Namespace) -> Report:
    restrict_host_addresses(["127.0.0.1"])
    windows = []
    clips = {
        name: encode_layers(LAYER_SETS[name], args.fps, args.clip_seconds) for name in args.layers
    }
    for rate in args.thumbnails:  # a server of its own each
        args.thumbnail_rate = rate
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "UROK_METRICS_TOKEN": secrets.token_hex(16),
                "UROK_MEDIA_THUMBNAIL_FRAME_RATE": rate,
            }
            server = ServerProcess("signalling.cli", Path(tmp) / "server.log", env=env)
            await server.start()
            try:
                async with aiohttp.ClientSession() as http:
                    journal = Journal(server.base_url, DEMO_SECRET, http)
                    for name in args.layers:
                        windows.append(await measure_page(journal, args, name, clips[name]))
            finally:
                await server.stop()
    return Report(args.people, windows)


def format_report(report: Report) -> str:
    lines = [
        f"A pupil's call page (Chromium, 1280x720) in a class of {report.people}, every "
        "camera on; what it received over the window:",
        "",
        "| layers (kbit/s) | thumbnails | tiles shown | cameras decoded (sizes) "
        "| video + audio kbit/s | frames/s | freezes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in report.windows:
        sizes = ", ".join(f"{n} x {size}" for size, n in sorted(w.sizes.items()))
        lines.append(
            f"| {w.layers}: {' / '.join(map(str, w.layer_kbps))} | {w.thumbnails} "
            f"| {w.tiles_shown} "
            f"| {w.cameras_decoded} ({sizes}) | {w.video_kbps} + {w.audio_kbps} = "
            f"{w.total_kbps:.0f} | {w.frames_per_s} | {w.freezes} |"
        )
    first = report.windows[0] if report.windows else None
    for w in report.windows[1:]:
        if first is not None and first.total_kbps:
            ratio = w.total_kbps / first.total_kbps
            lines.append(f"{_label(w)} / {_label(first)}: x{ratio:.2f}")
    met = {_label(w): w.total_kbps < TARGET_KBPS for w in report.windows}
    lines.append(f"under {TARGET_KBPS} kbit/s: {met}")
    return "\n".join(lines)


def _label(window: PageWindow) -> str:
    return f"{window.layers}, {window.thumbnails} thumbnails"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--page-tiles", type=int, default=16, help="the page's tiles a page")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument(
        "--layers",
        type=lambda text: text.split(","),
        default=list(LAYER_SETS),
        help="before,now (the order they run in)",
    )
    parser.add_argument(
        "--thumbnails",
        type=lambda text: text.split(","),
        default=["half"],
        help="the server's thumbnail frame rate, each with its own server: half,full",
    )
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    if unknown := set(args.layers) - set(LAYER_SETS):
        parser.error(f"unknown layer sets: {sorted(unknown)}")
    if unknown := set(args.thumbnails) - {"half", "full"}:
        parser.error(f"unknown thumbnail frame rates: {sorted(unknown)}")
    return args


async def main() -> int:
    args = parse_args()
    result = await run_reported(lambda: run(args), "grid_page")
    if isinstance(result, int):
        return result
    data = {"people": result.people, "windows": [asdict(w) for w in result.windows]}
    await publish_report(format_report(result), data, args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
