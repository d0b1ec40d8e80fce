"""CPU of the recorder process for a full class: `python -m recording.bench`.

Pre-encodes a short VP8 clip (320x240, 15 fps) and an Opus tone with aiortc's encoders,
then feeds N video (and M audio) sources in real time, re-stamping sequence numbers and
timestamps per source, so the parent stays cheap. Reports the child's CPU per second of
recording (from /proc), frames skipped for lack of CPU, and the parent's own CPU.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recording.options import RecordingOptions
from recording.process import RecorderProcess, cpu_seconds
from recording.synthetic import OPUS, VP8, TimedPacket, audio_packets, pattern_frame, video_packets

COLOURS = [(200, 60, 60), (60, 160, 60), (60, 80, 200), (190, 170, 60), (150, 70, 170)]
CLIP_S = 2.0
_HEADER = struct.Struct("!BBHII")


def textured(colour: tuple[int, int, int], seed: int) -> Callable[[int], np.ndarray]:
    """Camera-like content: a smooth random texture drifting across, with sensor noise, so
    that both VP8 and H.264 have real detail and motion to work on."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (30, 40, 3)).astype(np.float32)
    texture = np.kron(coarse, np.ones((16, 16, 1), dtype=np.float32))  # 480 x 640
    tinted = (texture * 0.6 + np.array(colour, dtype=np.float32) * 0.4).astype(np.uint8)

    def picture(index: int) -> np.ndarray:
        y, x = (index * 3) % 240, (index * 5) % 320
        frame = tinted[y : y + 240, x : x + 320].copy()
        noise = rng.integers(-6, 7, frame.shape, dtype=np.int16)
        return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    return picture


class LoopedSource:
    """A clip repeated forever as one source, with its own sequence numbers/timestamps."""

    def __init__(self, source_id: str, clip: list[TimedPacket], clock_rate: int, seq0: int):
        self.source_id = source_id
        self._clip = [(p.at, p.data) for p in clip]
        self._span_ts = round(CLIP_S * clock_rate)
        self._seq0 = seq0
        self._ts0 = seq0 * 7919

    def packets(self, until_s: float):
        loop = 0
        count = len(self._clip)
        while True:
            for k, (at, data) in enumerate(self._clip):
                t = loop * CLIP_S + at
                if t >= until_s:
                    return
                b0, b1, _, ts, _ = _HEADER.unpack_from(data)
                seq = (self._seq0 + loop * count + k) & 0xFFFF
                stamp = (self._ts0 + ts + loop * self._span_ts) & 0xFFFFFFFF
                yield t, self.source_id, _HEADER.pack(b0, b1, seq, stamp, 0) + data[12:]
            loop += 1


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", type=int, default=31, help="camera sources (320x240 VP8)")
    parser.add_argument("--audio", type=int, default=31, help="microphone sources (Opus)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--screen", action="store_true", help="the first camera as a share")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--flat", action="store_true", help="flat test patterns (cheap)")
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args()


def flat(colour: tuple[int, int, int]) -> Callable[[int], np.ndarray]:
    """A flat test pattern (cheap to encode)."""

    def picture(index: int) -> np.ndarray:
        return pattern_frame(colour, index, 320, 240)

    return picture


def _sources(args: argparse.Namespace) -> list[LoopedSource]:
    clips = [
        video_packets("v", flat(c) if args.flat else textured(c, n), duration_s=CLIP_S, fps=15)
        for n, c in enumerate(COLOURS)
    ]
    tone = audio_packets("a", 440.0, duration_s=CLIP_S)
    return [
        LoopedSource(f"cam{i}", clips[i % len(clips)], 90000, 1000 + 97 * i)
        for i in range(args.video)
    ] + [LoopedSource(f"mic{i}", tone, 48000, 30000 + 89 * i) for i in range(args.audio)]


def _start_recorder(args: argparse.Namespace) -> RecorderProcess:
    options = RecordingOptions(
        width=args.width, height=args.height, fps=args.fps, video_preset=args.preset
    )
    output = args.output or Path(tempfile.mkdtemp(prefix="urok-bench-")) / "bench.mp4"
    recorder = RecorderProcess(output, options)
    recorder.start()
    if not recorder.wait_ready(60):
        raise SystemExit("recorder did not start")
    for i in range(max(args.video, args.audio)):
        recorder.add_participant(f"p{i}", "Учитель" if i == 0 else f"Ученик {i}")
    for i in range(args.video):
        screen = args.screen and i == 0
        recorder.add_source(f"cam{i}", "video", VP8, f"Ученик {i}", screen, f"p{i}")
    for i in range(args.audio):
        recorder.add_source(f"mic{i}", "audio", OPUS, f"Ученик {i}", participant=f"p{i}")
    return recorder


def main() -> None:
    args = _parse_args()
    sources = _sources(args)
    recorder = _start_recorder(args)
    schedule = sorted(
        (p for source in sources for p in source.packets(args.seconds)), key=lambda p: p[0]
    )
    assert recorder.pid is not None
    child_cpu0 = cpu_seconds(recorder.pid)
    parent_cpu0 = time.process_time()
    start = time.monotonic()
    for at, source_id, data in schedule:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        recorder.feed(source_id, data)
    time.sleep(max(0.0, start + args.seconds - time.monotonic()))
    elapsed = time.monotonic() - start
    child_cpu = cpu_seconds(recorder.pid) - child_cpu0
    parent_cpu = time.process_time() - parent_cpu0
    result = recorder.stop(timeout=60)
    print(
        f"{args.video} video + {args.audio} audio sources, {args.width}x{args.height}"
        f" @ {args.fps} fps, preset {args.preset}{', screen layout' if args.screen else ''}"
        f", {'flat patterns' if args.flat else 'textured moving video'}\n"
        f"  fed {len(schedule)} packets in {elapsed:.1f} s"
        f" ({len(schedule) / elapsed:.0f}/s)\n"
        f"  recorder process: {child_cpu / elapsed * 100:.0f}% of one core"
        f" ({child_cpu:.1f} s CPU in {elapsed:.1f} s)\n"
        f"  parent (feed + sender thread): {parent_cpu / elapsed * 100:.1f}% of one core\n"
        f"  frames: {result.video_frames} written, {result.skipped_frames} skipped;"
        f" dropped packets: {result.dropped_packets}; complete: {result.complete}\n"
        f"  file: {result.path} ({result.size_bytes / 1e6:.1f} MB,"
        f" {result.size_bytes * 8 / max(result.duration_s, 0.001) / 1000:.0f} kbit/s)"
    )


if __name__ == "__main__":
    main()
