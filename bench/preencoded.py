"""Pre-encoded media for load bots: encode once at start, replay packets for the whole run.

A publisher bot that encodes VP8 itself spends most of a core on it; a load
run needs many of them on the same machine as the server. So the bench
encodes a short VP8 clip and a long Opus clip once with PyAV, and each
publisher replays those packets in real time through a MediaStreamTrack whose
recv() returns av.Packet: aiortc's RTCRtpSender only packetizes packets (no
encoder runs; see aiortc/rtcrtpsender.py `_next_encoded_frame`).

Every RTP payload a publisher sends must be unique for the run, because the
bench matches sent and received packets by payload (the SFU forwards
payloads byte-identical). VP8 payloads are unique by themselves (aiortc
writes a fresh 15-bit picture id into every payload descriptor, so they
repeat only after 18 minutes), so the video clip can be short and loop. Opus
payloads carry no counter, so the audio clip is noise (every packet differs)
and long enough for the whole run; `PreEncodedTrack.wrapped` tells when a
run outlived it.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_FRAME_SAMPLES = 960  # 20 ms, as browsers send Opus


@dataclass(frozen=True)
class EncodedClip:
    kind: str  # "audio" or "video"
    packets: tuple[bytes, ...]
    keyframes: tuple[bool, ...]
    period: float  # seconds between packets (1/fps, or 20 ms)
    clock_rate: int
    # VP8 temporal layer (TID) of each frame, empty without temporal layers.
    temporal: tuple[int, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.packets) * self.period

    @property
    def bitrate(self) -> float:
        """Average codec bitrate in bit/s (without RTP/SRTP/UDP overhead)."""
        return sum(len(p) for p in self.packets) * 8 / self.seconds


@dataclass(frozen=True)
class BenchMedia:
    video: EncodedClip
    audio: EncodedClip
    width: int
    height: int
    fps: int
    encode_seconds: float

    def describe(self) -> str:
        return (
            f"VP8 {self.width}x{self.height}@{self.fps} {self.video.bitrate / 1000:.0f} kbit/s "
            f"({self.video.seconds:.0f} s loop, keyframe every "
            f"{_keyframe_interval(self.video):.1f} s) + Opus {self.audio.bitrate / 1000:.0f} "
            f"kbit/s ({self.audio.seconds:.0f} s of noise); pre-encoded in "
            f"{self.encode_seconds:.1f} s"
        )


def _keyframe_interval(clip: EncodedClip) -> float:
    count = sum(clip.keyframes) or 1
    return clip.seconds / count


def encode_video(
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    seconds: float = 4.0,
    bitrate: int = 500_000,
    keyframe_interval: float = 2.0,
    fast: bool = False,
    temporal_layers: int = 1,
) -> EncodedClip:
    """A VP8 clip of a scrolling noise texture (so the encoder really uses `bitrate`).
    `fast`: libvpx's quickest setting (several times faster; the bitrate is still held).
    `temporal_layers` 3: as browsers encode a simulcast layer (`TEMPORAL_PATTERN`)."""
    frames = max(1, round(seconds * fps))
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.bit_rate = bitrate
    codec.gop_size = max(1, round(keyframe_interval * fps))
    codec.options = {
        # "good", not "realtime": realtime adapts to how busy the machine is, and the
        # clip must come out the same on a loaded machine.
        "deadline": "good",
        "cpu-used": "16" if fast else "5",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        **(_temporal_options(bitrate, codec.gop_size) if temporal_layers == 3 else {}),
    }
    rng = np.random.default_rng(1)
    # Smooth-ish noise (block-upscaled) so it compresses like a busy picture, not pure noise.
    texture = rng.integers(40, 215, size=(height // 4 + 1, (width * 2) // 4 + 1, 3), dtype=np.uint8)
    texture = texture.repeat(4, axis=0).repeat(4, axis=1)
    packets: list[bytes] = []
    keyframes: list[bool] = []

    def collect(encoded: list[av.Packet]) -> None:
        for packet in encoded:
            packets.append(bytes(packet))
            keyframes.append(bool(packet.is_keyframe))

    for index in range(frames):
        shift = (index * 6) % width
        image = np.ascontiguousarray(texture[:height, shift : shift + width])
        image[:, (index * 8) % width : (index * 8) % width + 16] = 255  # a moving bar
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = codec.time_base
        if index % codec.gop_size == 0:
            frame.pict_type = av.video.frame.PictureType.I
        collect(codec.encode(frame))
    collect(codec.encode(None))
    if len(packets) != frames:
        raise RuntimeError(f"VP8 encoder returned {len(packets)} packets for {frames} frames")
    temporal = _temporal_ids(keyframes) if temporal_layers == 3 else ()
    if temporal and any(key and i % codec.gop_size for i, key in enumerate(keyframes)):
        raise RuntimeError("libvpx placed a keyframe of its own: the TIDs would be wrong")
    return EncodedClip("video", tuple(packets), tuple(keyframes), 1 / fps, VIDEO_CLOCK, temporal)


# libvpx's three-layer structure (ffmpeg's ts_layering_mode 3): TIDs 0 2 1 2 from each
# keyframe on; TL0 refers to TL0, the TL1 and first TL2 picture to TL0 only (layer
# sync), the second TL2 to TL1. Error resilience keeps the entropy context from
# depending on pictures a subscriber may not get.
TEMPORAL_PATTERN = (0, 2, 1, 2)
# Of the layer's bitrate, what TL0, TL0-1 and all carry (libwebrtc's 40/20/40 %).
TEMPORAL_SHARES = (0.4, 0.6, 1.0)


def _temporal_options(bitrate: int, gop: int) -> dict[str, str]:
    rates = ",".join(str(round(bitrate * share / 1000)) for share in TEMPORAL_SHARES)
    return {
        "error-resilient": "default",
        # No keyframe of libvpx's own choosing: ffmpeg starts the pattern again only at
        # the keyframes it is asked for, and a keyframe at a TL2 place would be a
        # picture every layer refers to.
        "keyint_min": str(gop),
        "ts-parameters": f"ts_number_layers=3:ts_target_bitrate={rates}:"
        "ts_rate_decimator=4,2,1:ts_layering_mode=3",
    }


def _temporal_ids(keyframes: list[bool]) -> tuple[int, ...]:
    ids, since_key = [], 0
    for key in keyframes:
        since_key = 0 if key else since_key + 1
        ids.append(TEMPORAL_PATTERN[since_key % len(TEMPORAL_PATTERN)])
    return tuple(ids)


def encode_audio(seconds: float, bitrate: int = 40_000) -> EncodedClip:
    """Opus, 20 ms packets, of a tone under noise: every packet's bytes differ."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_RATE
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, AUDIO_RATE)
    codec.options = {"application": "voip", "frame_duration": "20"}
    frames = max(1, round(seconds * AUDIO_RATE / AUDIO_FRAME_SAMPLES))
    rng = np.random.default_rng(2)
    packets: list[bytes] = []
    for index in range(frames):
        t = (np.arange(AUDIO_FRAME_SAMPLES) + index * AUDIO_FRAME_SAMPLES) / AUDIO_RATE
        mono = 6000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 2000, AUDIO_FRAME_SAMPLES)
        samples = np.repeat(mono.astype(np.int16), 2).reshape(1, -1)  # interleaved stereo
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * AUDIO_FRAME_SAMPLES
        frame.time_base = codec.time_base
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    period = AUDIO_FRAME_SAMPLES / AUDIO_RATE
    return EncodedClip("audio", tuple(packets), (True,) * len(packets), period, AUDIO_RATE)


def prepare_media(
    *,
    audio_seconds: float,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    video_seconds: float = 4.0,
    video_bitrate: int = 500_000,
) -> BenchMedia:
    started = time.perf_counter()
    video = encode_video(width, height, fps, video_seconds, video_bitrate)
    audio = encode_audio(audio_seconds)
    return BenchMedia(video, audio, width, height, fps, time.perf_counter() - started)


class PreEncodedTrack(MediaStreamTrack):
    """Replays an EncodedClip in real time as av.Packets with increasing pts.

    A keyframe request (`keyframe_requested`, wired to the sender's PLI/FIR by
    bench/bot.py) is answered as a browser's encoder answers it: the next packet is a
    keyframe, the clip's next one (the replay skips ahead to it). A video's frames are
    paid from a budget that grows by an average frame's bytes a slot (up to the clip's
    largest frame, so the clip's own keyframes never wait): a keyframe sent early
    overdraws it and the frames after it wait whole slots until it is paid back
    (libwebrtc's frame dropper does the same after an overshoot). One request costs
    the bitrate nothing (the clip's keyframes come every interval from the answer on);
    a storm of them does not raise it."""

    def __init__(self, clip: EncodedClip) -> None:
        super().__init__()
        self.kind = clip.kind
        self._clip = clip
        self._ticks = round(clip.period * clip.clock_rate)
        self._time_base = fractions.Fraction(1, clip.clock_rate)
        self._start: float | None = None
        self._index = 0  # the frame slot (its time and pts)
        self._position = 0  # the clip's frame sent next (ahead of the slot after a skip)
        self._average = sum(len(p) for p in clip.packets) / len(clip.packets)
        self._cap = max(len(p) for p in clip.packets)
        self._budget = float(self._cap)  # bytes, for the video's frames
        self._keyframe_wanted = False
        self.keyframes_sent_early = 0
        self.wrapped = False

    def keyframe_requested(self) -> None:
        self._keyframe_wanted = True

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        await self._until_slot()
        answer = self._keyframe_wanted and self._skip_to_keyframe()
        clip, count = self._clip, len(self._clip.packets)
        frame = clip.packets[self._position % count]
        if clip.kind == "video":
            short = len(frame) - (self._budget + self._average)
            if short > 0 and not answer:  # still paying for a keyframe sent early
                waits = math.ceil(short / self._average)
                self._index += waits
                self._budget += waits * self._average
                await self._until_slot()
            self._budget = min(self._cap, self._budget + self._average - len(frame))
        index = self._index
        self._index += 1
        if self._position >= count:
            self.wrapped = True
        self._position += 1
        packet = av.Packet(frame)
        packet.pts = index * self._ticks
        packet.time_base = self._time_base
        return packet

    async def _until_slot(self) -> None:
        assert self._start is not None
        delay = self._start + self._index * self._clip.period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _skip_to_keyframe(self) -> bool:
        """Skip the replay ahead to the clip's next keyframe (False: it has none)."""
        self._keyframe_wanted = False
        clip, count = self._clip, len(self._clip.packets)
        keys = clip.keyframes
        ahead = next((n for n in range(count) if keys[(self._position + n) % count]), None)
        if ahead is None:
            return False
        if ahead:  # (0: the next frame is one already)
            self._position += ahead
            self.keyframes_sent_early += 1
        return True
