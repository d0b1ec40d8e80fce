"""Known test media for bots: a coloured test pattern, a pure tone, silence (with DTX).

Bots encode these on their own side (aiortc's encoder), and subscriber bots
decode what they receive to check it. The server never decodes.
"""

from __future__ import annotations

import fractions
import math
import time

import av
import numpy as np
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, MediaStreamTrack

AUDIO_RATE = 48000
_AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)


class _Paced(MediaStreamTrack):
    """Real-time pacing shared by both tracks."""

    def __init__(self, period: float) -> None:
        super().__init__()
        self._period = period
        self._start: float | None = None
        self._count = 0

    async def _next_slot(self) -> int:
        import asyncio

        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count * self._period
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        index = self._count
        self._count += 1
        return index


class PatternVideoTrack(_Paced):
    """Solid colour with a moving white bar: easy to recognise after decoding."""

    kind = "video"

    def __init__(
        self, rgb: tuple[int, int, int], width: int = 320, height: int = 240, fps: float = 30
    ) -> None:
        super().__init__(1 / fps)
        self.rgb = rgb
        self._image = np.empty((height, width, 3), dtype=np.uint8)
        self._image[:, :] = rgb

    async def recv(self) -> av.VideoFrame:
        index = await self._next_slot()
        image = self._image.copy()
        bar = (index * 4) % image.shape[1]
        image[:, bar : bar + 8] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = int(index * self._period * VIDEO_CLOCK_RATE)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


class ToneAudioTrack(_Paced):
    """A sine tone of a known frequency."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.3) -> None:
        super().__init__(AUDIO_PTIME)
        self.frequency = frequency
        self._amplitude = amplitude

    async def recv(self) -> av.AudioFrame:
        index = await self._next_slot()
        t = (np.arange(_AUDIO_SAMPLES) + index * _AUDIO_SAMPLES) / AUDIO_RATE
        samples = (self._amplitude * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(
            np.int16
        )
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * _AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class SilentAudioTrack(_Paced):
    """A microphone in a quiet room, as Opus DTX sends it: with `dtx`, one frame of
    silence every 400 ms instead of one every 20 ms (the timestamps jump, the
    sequence numbers do not: what a browser sends when the answer has usedtx=1).

    aiortc's encoder has no DTX of its own; it still measures each frame's level
    for the ssrc-audio-level extension, so these packets say "silence" (127) too.
    """

    kind = "audio"
    DTX_FRAMES = 20  # 400 ms: libopus's DTX sends a frame this often during silence

    def __init__(self, dtx: bool = True) -> None:
        super().__init__(AUDIO_PTIME * (self.DTX_FRAMES if dtx else 1))
        self._step = self.DTX_FRAMES if dtx else 1

    async def recv(self) -> av.AudioFrame:
        index = await self._next_slot()
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, _AUDIO_SAMPLES), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * self._step * _AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class TextureVideoTrack(_Paced):
    """A scrolling texture of noise blocks, for publishers that encode (aiortc's VP8).

    Unlike the flat test pattern it costs the encoder real bits, but less than
    aiortc's encoder may spend (its target follows the server's bandwidth
    estimate, up to 1.5 Mbit/s): like a browser's camera under a generous
    estimate, the bitrate is what the picture needs, so every keyframe asked of it
    adds to the bitrate instead of being paid for by lower quality (bench/weak_link.py
    measures exactly that). The frames are made once and looped; 15 fps by default,
    so that four encoders fit on a small machine beside the server and a browser.
    """

    kind = "video"

    def __init__(
        self,
        width: int = 320,
        height: int = 180,
        block: int = 8,
        contrast: tuple[int, int] = (90, 165),
        fps: int = 15,
        loop_frames: int = 60,
    ) -> None:
        super().__init__(1 / fps)
        self._ticks = round(VIDEO_CLOCK_RATE / fps)
        rng = np.random.default_rng(3)
        rows, columns = height // block + 1, (2 * width) // block + 1
        texture = rng.integers(*contrast, size=(rows, columns, 3), dtype=np.uint8)
        texture = texture.repeat(block, axis=0).repeat(block, axis=1)
        self._frames = []
        for index in range(loop_frames):
            image = np.ascontiguousarray(texture[:height, index : index + width])
            rgb = av.VideoFrame.from_ndarray(image, format="rgb24")
            self._frames.append(rgb.reformat(format="yuv420p").to_ndarray())

    async def recv(self) -> av.VideoFrame:
        index = await self._next_slot()
        frame = av.VideoFrame.from_ndarray(
            self._frames[index % len(self._frames)], format="yuv420p"
        )
        frame.pts = index * self._ticks
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


def mean_rgb(frame: av.VideoFrame) -> tuple[float, float, float]:
    """Average colour of a decoded frame, ignoring the moving bar (median per channel)."""
    image = frame.to_ndarray(format="rgb24")
    return tuple(float(np.median(image[..., c])) for c in range(3))  # type: ignore[return-value]


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """The strongest frequency in `samples` (mono), by FFT."""
    samples = samples.astype(np.float64)
    samples -= samples.mean()
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window))
    freqs = np.fft.rfftfreq(len(samples), 1 / sample_rate)
    return float(freqs[int(np.argmax(spectrum))])
