"""A class of mostly silent microphones, with and without DTX: `python -m bench.silent_class`.

    python -m bench.silent_class --people 31 --talkers 2 --listeners 8 --seconds 10

The server runs as its own process (its CPU read from /proc). Twice, one call
after the other on the same server: `--people` aiortc bots join and publish a
microphone; `--talkers` of them send a tone, the rest silence, first as Opus
DTX sends it (one frame per 400 ms: bench.media.SilentAudioTrack), then as a
microphone without DTX (a frame every 20 ms). aiortc's encoder writes each
frame's level into the ssrc-audio-level extension, so the server's detector
sees real levels. `--listeners` bots receive everything (counting packets,
not decoding); the others receive nothing, so the bench process's own work
stays small enough not to starve the server. Per phase: the server's CPU,
the audio packets and kbit/s each listener received a second, and who the
listeners' last `active_speakers` named (the talkers, never a silent one).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiortc.rtp import RtpPacket

from bench.bot import Bot
from bench.media import SilentAudioTrack, ToneAudioTrack
from bench.preencoded import EncodedClip, PreEncodedTrack, encode_video
from bench.server import Journal, ServerProcess, cpu_seconds
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET


@dataclass
class Phase:
    dtx: bool
    cameras: int = 0
    server_cpu: float = 0.0  # share of one core over the window
    packets_per_listener: float = 0.0  # audio packets a second
    kbps_per_listener: float = 0.0
    named_talkers: bool = False  # every listener's last list named exactly the talkers
    video_kbps_per_listener: float = 0.0


class Counter:
    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.video_bytes = 0
        self.cameras: set[str] = set()  # participant ids whose video is counted apart

    def observer(self) -> Callable[[str, RtpPacket, float], None]:
        def count(participant_id: str, packet: RtpPacket, at: float) -> None:
            self.packets += 1
            self.bytes += len(packet.payload) + 12
            # A camera's packets are its large ones (its Opus packets are < 200 bytes).
            if participant_id in self.cameras and len(packet.payload) > 200:
                self.video_bytes += len(packet.payload) + 12

        return count


async def run_phase(
    journal: Journal,
    server: ServerProcess,
    args: argparse.Namespace,
    dtx: bool,
    camera: EncodedClip | None = None,
) -> Phase:
    ids = [f"p-{i}" for i in range(args.people)]
    lesson = await journal.create_lesson(ids[0], ids[1:])
    counter = Counter()
    bots: list[Bot] = []
    try:
        for index, user in enumerate(ids):
            listening = index >= args.people - args.listeners
            bot = Bot(
                server.base_url,
                await journal.token(lesson, user, "teacher" if index == 0 else "student"),
                decode=False,
                receive=listening,
                on_packet=counter.observer() if listening else None,
            )
            await bot.connect(timeout=30)
            bots.append(bot)
        cameras = args.cameras if camera is not None else 0
        for index, bot in enumerate(bots):
            track: Any = ToneAudioTrack(300 + 40 * index) if index < args.talkers else None
            tracks = [(track or SilentAudioTrack(dtx=dtx), "microphone")]
            if camera is not None and index < cameras:  # the first ones: teacher, talkers
                tracks.append((PreEncodedTrack(camera), "camera"))
                counter.cameras.add(bot.id)
            await bot.publish(tracks, timeout=30)
        await asyncio.sleep(args.warmup)
        start_cpu, start_packets, start_bytes, start_video = (
            cpu_seconds(server.pid),
            counter.packets,
            counter.bytes,
            counter.video_bytes,
        )
        started = time.monotonic()
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - started
        phase = Phase(dtx, cameras)
        phase.server_cpu = (cpu_seconds(server.pid) - start_cpu) / elapsed
        phase.packets_per_listener = (counter.packets - start_packets) / elapsed / args.listeners
        phase.kbps_per_listener = (
            (counter.bytes - start_bytes) * 8 / 1000 / elapsed / args.listeners
        )
        phase.video_kbps_per_listener = (
            (counter.video_bytes - start_video) * 8 / 1000 / elapsed / args.listeners
        )
        talkers = {bot.id for bot in bots[: args.talkers]}
        phase.named_talkers = all(
            _last_named(bot) == talkers for bot in bots[args.people - args.listeners :]
        )
        return phase
    finally:
        for bot in bots:
            await bot.close()
        await journal.end_lesson(lesson)


def _last_named(bot: Bot) -> set[str]:
    told = [m for m in bot.messages if m["type"] == "active_speakers"]
    return {s["participant_id"] for s in told[-1]["speakers"]} if told else set()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=31)
    parser.add_argument("--talkers", type=int, default=2)
    parser.add_argument("--listeners", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument(
        "--order", choices=("dtx-first", "plain-first"), default="dtx-first", help="phase order"
    )
    parser.add_argument(
        "--cameras",
        type=int,
        default=0,
        help="instead of the phase without DTX: a phase where this many (the teacher and the "
        "talkers first) also publish a camera (pre-encoded VP8 320x180, 15 fps, 150 kbit/s)",
    )
    args = parser.parse_args()
    restrict_host_addresses(["127.0.0.1"])  # the bots' candidates: aioice leaves loopback out
    camera = encode_video(320, 180, 15, 4.0, 150_000) if args.cameras else None
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess("signalling.cli", Path(tmp) / "server.log")
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                journal = Journal(server.base_url, DEMO_SECRET, http)
                if camera is not None:
                    phases = [
                        await run_phase(journal, server, args, True),
                        await run_phase(journal, server, args, True, camera),
                    ]
                else:
                    order = (True, False) if args.order == "dtx-first" else (False, True)
                    phases = [await run_phase(journal, server, args, dtx) for dtx in order]
        finally:
            await server.stop()
    print(
        f"{args.people} microphones, {args.talkers} talking, {args.listeners} listeners, "
        f"{args.seconds:.0f} s windows"
    )
    for phase in phases:
        cameras = f" + {phase.cameras} cameras" if phase.cameras else ""
        print(
            f"silent with{'' if phase.dtx else 'out'} DTX{cameras}: server "
            f"{phase.server_cpu:.1%} of a core, per listener {phase.packets_per_listener:.0f} "
            f"packets/s, {phase.kbps_per_listener:.0f} kbit/s "
            f"(video {phase.video_kbps_per_listener:.0f}); talkers named: {phase.named_talkers}"
        )
    if camera is not None:
        audio, video = phases
        cpu = video.server_cpu / max(audio.server_cpu, 1e-9)
        print(f"with the cameras against without: server CPU x{cpu:.2f}")
        return
    with_dtx, without = sorted(phases, key=lambda phase: not phase.dtx)
    cpu = with_dtx.server_cpu / max(without.server_cpu, 1e-9)
    packets = with_dtx.packets_per_listener / max(without.packets_per_listener, 1e-9)
    print(f"with DTX against without: server CPU x{cpu:.2f}, listener packets x{packets:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
