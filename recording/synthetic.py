"""Synthetic publishers for tests and measurements: known pictures and tones, encoded with
aiortc's own encoders and packetized the way aiortc's RTCRtpSender does, then shaped like
the SFU's forwarded packets (12-byte header, SSRC 0)."""

from __future__ import annotations

import fractions
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from recording.protocol import CodecSpec

VP8 = CodecSpec("video/VP8", 90000, None, 97, {})
OPUS = CodecSpec("audio/opus", 48000, 2, 96, {})
AUDIO_FRAME_S = 0.02


@dataclass(frozen=True, slots=True)
class TimedPacket:
    """An RTP packet and when (seconds from the start) it should be fed."""

    at: float
    source_id: str
    data: bytes


def _params(spec: CodecSpec) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=spec.mime,
        clockRate=spec.clock_rate,
        channels=spec.channels,
        payloadType=spec.payload_type or 0,
    )


def _packetize(
    payloads: list[bytes], timestamp: int, seq: int, payload_type: int
) -> tuple[list[bytes], int]:
    out = []
    for i, payload in enumerate(payloads):
        packet = RtpPacket(
            payload_type=payload_type,
            sequence_number=seq & 0xFFFF,
            timestamp=timestamp & 0xFFFFFFFF,
            ssrc=0,
            payload=payload,
        )
        packet.marker = 1 if i == len(payloads) - 1 else 0
        out.append(packet.serialize())
        seq += 1
    return out, seq


def pattern_frame(colour: tuple[int, int, int], index: int, width: int, height: int) -> np.ndarray:
    """A test pattern: a solid colour with a small white square moving along the top."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = colour
    side = max(4, height // 8)
    x = (index * 7) % max(1, width - side)
    image[:side, x : x + side] = 255
    return image


def video_packets(
    source_id: str,
    picture: Callable[[int], np.ndarray],
    *,
    duration_s: float,
    fps: int = 15,
    codec: CodecSpec = VP8,
    first_seq: int = 1000,
    first_ts: int = 12345,
) -> list[TimedPacket]:
    """Frames `picture(i)` (RGB) encoded with aiortc's encoder; a keyframe first."""
    encoder = get_encoder(_params(codec))
    out: list[TimedPacket] = []
    seq = first_seq
    for index in range(round(duration_s * fps)):
        frame = av.VideoFrame.from_ndarray(picture(index), format="rgb24")
        frame.pts = index * 90000 // fps
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        packets, seq = _packetize(payloads, first_ts + timestamp, seq, codec.payload_type or 0)
        out.extend(TimedPacket(index / fps, source_id, data) for data in packets)
    return out


def tone(frequency: float, start: int, count: int, rate: int = 48000, level: float = 0.25):
    t = np.arange(start, start + count) / rate
    return (np.sin(2 * np.pi * frequency * t) * level * 32767).astype(np.int16)


def audio_packets(
    source_id: str,
    frequency: float,
    *,
    duration_s: float,
    codec: CodecSpec = OPUS,
    first_seq: int = 2000,
    first_ts: int = 54321,
) -> list[TimedPacket]:
    """A sine tone as Opus, 20 ms per packet."""
    encoder = get_encoder(_params(codec))
    samples = round(AUDIO_FRAME_S * 48000)
    out: list[TimedPacket] = []
    seq = first_seq
    for index in range(round(duration_s / AUDIO_FRAME_S)):
        mono = tone(frequency, index * samples, samples)
        stereo = np.repeat(mono, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = index * samples
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, timestamp = encoder.encode(frame)
        if not payloads:
            continue
        packets, seq = _packetize(payloads, first_ts + timestamp, seq, codec.payload_type or 0)
        out.extend(TimedPacket(index * AUDIO_FRAME_S, source_id, data) for data in packets)
    return out


def schedule(*streams: Iterable[TimedPacket]) -> list[TimedPacket]:
    """All packets in feeding order."""
    return sorted((p for stream in streams for p in stream), key=lambda p: p.at)
