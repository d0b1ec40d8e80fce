"""A full class (issue 11): `python -m bench.full_class` (in a network namespace with only
loopback up, like the other benches).

    python -m bench.full_class --people 31 --receivers 6 --seconds 8 --json out.json

One `urok serve` process (its CPU read from /proc, its forwarded packets from
GET /metrics). `--people` aiortc bots (the first the teacher) each publish a
camera and a microphone, in phases one after the other on the same server:

- **grid**: every camera as browser simulcast (bench/simulcast_publisher.py:
  160x90 / 320x180 / 640x360 at ~90 / 160 / 450 kbit/s), every subscriber
  sends the `track_view`s of a 1280x720 page in speaker layout: the teacher's
  tile 640x360, every pupil's 160x90 (29 of them fit around it; the teacher's
  own page shows the 30 pupils at 160x90); with `--page-tiles N`, the call page's
  grid pages instead: N tiles of a 1280x720 page (16: 4x4 of 320x180), yourself
  and the teacher first, the others' cameras reported invisible;
- **audio_screen** and **one_video**: the same class, the receivers in `save_data`;
- **single**: a new lesson, every camera one 640x360 stream (today's non-simulcast
  camera, the top layer's clip), the same views;
- **upkeep**: a new lesson, everybody's publisher and subscriber connections up and
  nothing sent (no frame ever: `IdleVideoTrack` / `IdleAudioTrack`); the server's CPU
  against the empty server measured at the start, per participant.

The microphones: the teacher talks (pre-encoded Opus at 32 kbit/s), every pupil
is silent as Opus DTX sends it (bench.media.SilentAudioTrack, a frame every 400 ms).

Only `--receivers` pupils answer their subscriber offers and count what arrives
(bytes and packets, no decoding; the resolution of each VP8 keyframe, read from
its header, says which layer came). The others receive nothing: 31 receivers
would need more CPU than the bench has beside the server on a small machine
(every received packet costs aiortc more than the server's forwarding of it).
So the server's figures are those of 31 publishers and `--receivers`
subscribers, and the report scales them to 31 as an upper bound.

With `--sinks` (as root in the bench's own network namespace: nftables) everybody else,
the teacher included, subscribes as well and sends the same views, and the media sent to
them is dropped on arrival (bench/cluster_sinks.py): the server does all of a class's
work, the bench pays for the receivers' only. Sinks receive in the simulcast phases
(grid and save data: the sinks keep the grid); the single-stream phase is left as
without sinks (31 receivers of 31 full streams would be ~90,000 packets/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot
from bench.cluster_sinks import Sinks, check_nft, sinking
from bench.full_class_meter import Meter
from bench.full_class_report import Receiver, Report, Window, print_report
from bench.media import SilentAudioTrack
from bench.preencoded import EncodedClip, PreEncodedTrack, encode_audio
from bench.server import Journal, ServerProcess
from bench.simulcast_publisher import (
    LAYERS_SIMULCAST,
    LAYERS_SINGLE,
    IdleAudioTrack,
    LayerClip,
    LayeredCamera,
    encode_layers,
    packets_per_second,
    publish_layered,
)
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

WAIT_S = 30.0
TEACHER_TILE = (640, 360)
# `--page-tiles N`: the call page's grid pages (web_client/static/js/gridpages.js): N
# tiles of a 1280x720 page (16: 4x4 of 320x180), yourself and the teacher first; the
# other pages' cameras are reported invisible and not sent.
PAGE = (1280, 720)
VOICE_BITRATE = 32_000  # Chromium's default for Opus voice


class Class:
    """One lesson's bots: joined, publishing, the receivers counting."""

    def __init__(
        self,
        server: ServerProcess,
        journal: Journal,
        args: argparse.Namespace,
        everyone_subscribes: bool = False,
        sinks: Sinks | None = None,
    ) -> None:
        self.server, self.journal, self.args = server, journal, args
        # Upkeep: every subscriber connection up (nothing flows on them to cost the bench).
        self.everyone_subscribes = everyone_subscribes
        self.sinks = sinks  # everybody but the receivers subscribes, their media dropped
        self.bots: list[Bot] = []
        self.cameras: list[LayeredCamera] = []
        self.receivers: list[Receiver] = []
        self.lesson = ""
        self.voice = teacher_voice()

    def receiving(self, index: int) -> bool:
        return index >= self.args.people - self.args.receivers

    def sinking(self, index: int) -> bool:
        return self.sinks is not None and not self.receiving(index)

    def subscribing(self) -> list[Bot]:
        """The bots whose subscriber connections carry media: receivers and sinks."""
        return [b for i, b in enumerate(self.bots) if self.receiving(i) or self.sinking(i)]

    async def join(self) -> None:
        ids = [f"p-{i}" for i in range(self.args.people)]
        self.lesson = await self.journal.create_lesson(ids[0], ids[1:])
        for index, user in enumerate(ids):
            receiver = Receiver(index) if self.receiving(index) else None
            role = "teacher" if index == 0 else "student"
            bot = Bot(
                self.server.base_url,
                await self.journal.token(self.lesson, user, role),
                decode=False,
                receive=receiver is not None or self.everyone_subscribes or self.sinking(index),
                on_packet=receiver.observe if receiver is not None else None,
            )
            self.bots.append(bot)
            if receiver is not None:
                self.receivers.append(receiver)
        await _batched([bot.connect(timeout=WAIT_S) for bot in self.bots])

    async def publish(self, layers: tuple[LayerClip, ...], send: bool = True) -> None:
        """Everybody's camera (of `layers`, not sending yet: `start_cameras`) and
        microphone; not `send`: a microphone that never sends either."""
        jobs = []
        for index, bot in enumerate(self.bots):
            audio: Any
            if not send:
                audio = IdleAudioTrack()
            else:
                audio = PreEncodedTrack(self.voice) if index == 0 else SilentAudioTrack(dtx=True)
            jobs.append(publish_layered(bot, layers, [(audio, "microphone")], WAIT_S))
        self.cameras += await _batched(jobs)

    def held_back(self) -> int:
        """The most videos the server held back from one receiver (its last
        `connection_quality` about itself: a weak downlink, or save data)."""
        most = 0
        for index, bot in enumerate(self.bots):
            told = [
                m
                for m in bot.messages
                if m["type"] == "connection_quality" and m.get("participant_id") == bot.id
            ]
            if self.receiving(index) and told:
                most = max(most, len(told[-1].get("paused", [])))
        return most

    def frames_skipped(self) -> int:
        return sum(c.sender.frames_skipped for c in self.cameras if c.sender is not None)

    def start_cameras(self) -> None:
        for camera, bot in zip(self.cameras, self.bots, strict=True):
            camera.start(bot.publisher)

    async def send_views(self) -> None:
        for bot in self.bots:
            views = []
            others = [other for other in self.bots if other is not bot]
            for place, other in enumerate(others):
                width, height, visible = self.tile(place)
                views.append(
                    {
                        "participant_id": other.id,
                        "source": "camera",
                        "visible": visible,
                        "width": width,
                        "height": height,
                    }
                )
            await bot.send({"type": "track_view", "views": views})

    def tile(self, place: int) -> tuple[int, int, bool]:
        """The tile of the `place`-th other person (0: the teacher, or for the teacher the
        first pupil): speaker layout, or with `--page-tiles` the first grid page."""
        tiles = self.args.page_tiles
        if not tiles:
            width, height = TEACHER_TILE if place == 0 else self.args.pupil_tile
            return width, height, True
        columns = math.ceil(math.sqrt(tiles))
        rows = math.ceil(tiles / columns)
        # Yourself are the first tile of the page: `tiles - 1` others fit.
        return PAGE[0] // columns, PAGE[1] // rows, place < tiles - 1

    async def save_data(self, mode: str) -> None:
        for index, bot in enumerate(self.bots):
            if self.receiving(index):
                await bot.request(
                    {"type": "save_data", "mode": mode},
                    lambda m: m["type"] == "connection_quality",
                    WAIT_S,
                )

    async def until_subscribed(self) -> None:
        """Every receiver's (and sink's) subscriber connection carries every other camera
        (negotiated before the cameras start: 31 renegotiations beside 6,000 packets/s
        starve); then the sinks' media is dropped from here on."""
        deadline = time.monotonic() + 2 * WAIT_S
        want = self.args.people - 1

        def cameras(bot: Bot) -> int:
            return sum(1 for t in bot.track_info.values() if t.get("source") == "camera")

        receiving = self.subscribing()
        while any(cameras(bot) < want for bot in receiving):
            if time.monotonic() > deadline:
                counts = [cameras(bot) for bot in receiving]
                raise RuntimeError(f"receivers not offered every camera in time: {counts}")
            await asyncio.sleep(0.2)
        if self.sinks is not None:
            self.sinks.add([b for i, b in enumerate(self.bots) if self.sinking(i)])

    async def until_receiving(self) -> None:
        """Every receiver has media from every other participant (else a warning: the
        windows say how many each heard)."""
        deadline = time.monotonic() + WAIT_S
        want = self.args.people - 1
        while any(len(r.sources) < want for r in self.receivers):
            if time.monotonic() > deadline:
                counts = [len(r.sources) for r in self.receivers]
                print(f"warning: receivers heard {counts} of {want} people after {WAIT_S} s")
                return
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for camera in self.cameras:
            await camera.stop()
        await _batched([bot.close() for bot in self.bots])
        if self.lesson:
            await self.journal.end_lesson(self.lesson)


_VOICE: list[EncodedClip] = []


def teacher_voice() -> EncodedClip:
    """The teacher's microphone: Opus at a browser's voice rate (aiortc's own encoder
    sends 96 kbit/s), 10 s looped; encoded once."""
    if not _VOICE:
        _VOICE.append(encode_audio(10.0, bitrate=VOICE_BITRATE))
    return _VOICE[0]


async def _batched(jobs: Sequence[Awaitable[Any]], size: int = 8) -> list[Any]:
    """Run `jobs` a few at a time (a burst of 31 joins only makes everyone slower)."""
    out: list[Any] = []
    for start in range(0, len(jobs), size):
        out.extend(await asyncio.gather(*jobs[start : start + size]))
    return out


async def run_media_phases(
    server: ServerProcess,
    journal: Journal,
    meter: Meter,
    args: argparse.Namespace,
    simulcast: tuple[LayerClip, ...],
) -> list[Window]:
    windows = []
    single = tuple(clip for clip in simulcast if clip.spec in LAYERS_SINGLE)
    phases = ((simulcast, ("grid", "audio_screen", "one_video")), (single, ("single",)))
    for layers, names in phases:
        with sinking() if args.sinks and names[0] == "grid" else nullcontext() as sinks:
            windows += await run_lesson(server, journal, meter, args, layers, names, sinks)
    return windows


async def run_lesson(
    server: ServerProcess,
    journal: Journal,
    meter: Meter,
    args: argparse.Namespace,
    layers: tuple[LayerClip, ...],
    names: tuple[str, ...],
    sinks: Sinks | None,
) -> list[Window]:
    """One lesson of the media phases: `names`' windows one after the other."""
    windows = []
    lesson = Class(server, journal, args, sinks=sinks)
    meter.sinks = args.people - args.receivers if sinks is not None else 0
    try:
        await lesson.join()
        await lesson.publish(layers)
        for receiver in lesson.receivers:
            receiver.teacher_id = lesson.bots[0].id
        await lesson.until_subscribed()
        await until_connected(lesson)  # a sink that never connected would be sent nothing
        await lesson.send_views()
        lesson.start_cameras()
        await lesson.until_receiving()
        for name in names:
            if name in ("audio_screen", "one_video"):
                await lesson.save_data(name)
            await asyncio.sleep(args.warmup)
            skipped = lesson.frames_skipped()
            window = await meter.window(name, args.seconds, lesson.receivers, args.people)
            window.camera_frames_skipped = lesson.frames_skipped() - skipped
            window.held_back_max = lesson.held_back()
            window.video_in_expected_per_s = args.people * sum(map(packets_per_second, layers))
            windows.append(window)
    finally:
        await lesson.close()
    return windows


async def run_upkeep(
    server: ServerProcess,
    journal: Journal,
    meter: Meter,
    args: argparse.Namespace,
    simulcast: tuple[LayerClip, ...],
) -> Window:
    lesson = Class(server, journal, args, everyone_subscribes=True)
    try:
        await lesson.join()
        await lesson.publish(simulcast, send=False)
        await until_connected(lesson)
        await asyncio.sleep(args.warmup)
        return await meter.window("upkeep", args.idle_seconds, [], args.people)
    finally:
        await lesson.close()


async def until_connected(lesson: Class) -> None:
    """Every publisher connection, and the answered subscriber ones, connected."""
    deadline = time.monotonic() + WAIT_S

    def up() -> bool:
        pcs = [bot.publisher for bot in lesson.bots]
        pcs += [bot.subscriber for bot in lesson.bots if bot.receive]
        return all(pc is not None and pc.connectionState == "connected" for pc in pcs)

    while not up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"connections not up within {WAIT_S} s")
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> Report:
    restrict_host_addresses(["127.0.0.1"])  # the bots' candidates: aioice leaves loopback out
    encode_started = time.monotonic()
    simulcast = encode_layers(LAYERS_SIMULCAST, args.fps, args.clip_seconds)
    args.encode_seconds = round(time.monotonic() - encode_started, 1)
    args.layer_kbps = [round(layer.clip.bitrate / 1000) for layer in simulcast]
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "UROK_METRICS_TOKEN": token,
            "UROK_MEDIA_THUMBNAIL_FRAME_RATE": args.thumbnail_frame_rate,
            "UROK_MEDIA_DYNACAST": "1" if args.dynacast == "on" else "0",
        }
        server = ServerProcess("signalling.cli", Path(tmp) / "server.log", env=env)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                journal = Journal(server.base_url, DEMO_SECRET, http)
                meter = Meter(server, http, token)
                meter.profiles = dict(parse_profile(text) for text in args.profile)
                windows = []
                if not args.no_upkeep:
                    await asyncio.sleep(args.warmup)
                    windows.append(await meter.window("empty", args.idle_seconds, [], 0))
                windows += await run_media_phases(server, journal, meter, args, simulcast)
                if not args.no_upkeep:
                    windows.append(await run_upkeep(server, journal, meter, args, simulcast))
        except BaseException:
            print(server.log_tail())
            raise
        finally:
            await server.stop()
    return Report(vars(args), windows)


def parse_profile(text: str) -> tuple[str, Path]:
    phase, _, to = text.partition(":")
    return phase, Path(to)


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=31)
    parser.add_argument("--receivers", type=int, default=6, help="pupils that receive")
    parser.add_argument("--seconds", type=float, default=8.0, help="each media window")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="upkeep windows")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--pupil-tile", type=parse_size, default=(160, 90), help="WxH")
    parser.add_argument(
        "--page-tiles", type=int, default=0, help="grid pages of N tiles (0: speaker layout)"
    )
    parser.add_argument(
        "--thumbnail-frame-rate",
        choices=("half", "full"),
        default="half",
        help="the server's [media] thumbnail_frame_rate",
    )
    parser.add_argument(
        "--dynacast", choices=("on", "off"), default="on", help="the server's [media] dynacast"
    )
    parser.add_argument(
        "--sinks",
        action="store_true",
        help="everybody else subscribes too, their media dropped by nftables (as root)",
    )
    parser.add_argument("--no-upkeep", action="store_true", help="media phases only")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="PHASE:FILE",
        help="py-spy the server in that phase's window (grid, upkeep, ...), to FILE",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.sinks:
        check_nft()
    report = asyncio.run(run(args))
    print_report(report, out)
    if args.json is not None:
        args.json.write_text(json.dumps(report.summary(), indent=2))
    return report


if __name__ == "__main__":
    main()
