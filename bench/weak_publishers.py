"""The publishers of the weak-link bench (bench/weak_link.py): bots in the bench process.

They publish a microphone and a camera and receive nothing. The camera is
pre-encoded (bench/preencoded.py: cheap, and its bitrate cannot react to
keyframe requests) or encoded by aiortc from a texture (TextureVideoTrack: a
real encoder that answers every PLI with a keyframe, set up so that its bitrate
shows what those keyframes cost).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.codecs import vpx

from bench.bot import Bot
from bench.media import TextureVideoTrack
from bench.preencoded import EncodedClip, PreEncodedTrack, encode_audio, encode_video
from bench.server import Journal

ENCODER_FPS = 15  # publishers that encode


ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


class PublishOnlyBot(Bot):
    """Never answers the server's subscribe offers: the server forwards it nothing.

    With fixed_bitrate, it offers no abs-send-time header extension: the server
    then has nothing to estimate bandwidth from and sends no REMB, so an aiortc
    encoder keeps its starting target (aiortc rebuilds its encoder, with a
    keyframe, whenever REMB moves the target by over 10 %)."""

    def __init__(self, *args: Any, fixed_bitrate: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_bitrate = fixed_bitrate

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] != "subscribe_offer":
            await super()._on_message(message)

    async def send(self, message: dict[str, Any]) -> None:
        if self.fixed_bitrate and message.get("type") == "publish":
            lines = message["sdp"].split("\r\n")
            sdp = "\r\n".join(line for line in lines if ABS_SEND_TIME not in line)
            message = {**message, "sdp": sdp}
        await super().send(message)


@contextlib.contextmanager
def encoder_headroom(on: bool) -> Iterator[None]:
    """aiortc's VP8 encoders made meanwhile start at the top of aiortc's range (1.5
    Mbit/s) instead of 500 kbit/s: with REMB off (PublishOnlyBot) they stay there,
    above what TextureVideoTrack needs, so their bitrate is the picture's plus the
    keyframes they are asked for, as a browser's under a generous estimate. (At a
    target the picture fills, libvpx's CBR pays for each keyframe with lower quality
    and the bitrate would not show them.)"""
    if not on:
        yield
        return
    original = vpx.DEFAULT_BITRATE
    vpx.DEFAULT_BITRATE = vpx.MAX_BITRATE
    try:
        yield
    finally:
        vpx.DEFAULT_BITRATE = original


@dataclass(frozen=True)
class PublisherMedia:
    audio: EncodedClip
    video: EncodedClip | None  # None: the publishers encode (TextureVideoTrack)

    def describe(self) -> str:
        audio = f"Opus {self.audio.bitrate / 1000:.0f} kbit/s (pre-encoded)"
        if self.video is None:
            return (
                f"VP8 encoded by aiortc, 320x180@{ENCODER_FPS} texture, target "
                f"{vpx.MAX_BITRATE // 1000} kbit/s, no REMB + {audio}"
            )
        return f"VP8 640x360@30 {self.video.bitrate / 1000:.0f} kbit/s (pre-encoded) + {audio}"


def prepare_publisher_media(encoder: bool, video_kbps: int) -> PublisherMedia:
    """Pre-encoded audio, and pre-encoded video unless the publishers encode (`encoder`)."""
    # A short audio clip is enough: nothing here matches payloads, so it may loop.
    audio = encode_audio(10.0)
    if encoder:
        return PublisherMedia(audio, None)
    return PublisherMedia(audio, encode_video(seconds=2.0, bitrate=video_kbps * 1000))


def _video_track(media: PublisherMedia) -> MediaStreamTrack:
    if media.video is None:
        return TextureVideoTrack(fps=ENCODER_FPS)
    return PreEncodedTrack(media.video)


async def start_publishers(
    stack: AsyncExitStack, journal: Journal, lesson_id: str, count: int, media: PublisherMedia
) -> list[Bot]:
    """`count` publishers of a microphone and a camera, each publish only; the first is
    the teacher. Each leaves when `stack` closes."""
    bots: list[Bot] = []
    for index in range(count):
        role = "teacher" if index == 0 else "student"
        token = await journal.token(lesson_id, f"weak-p{index}", role)
        bot = PublishOnlyBot(
            journal.base_url, token, decode=False, fixed_bitrate=media.video is None
        )
        stack.push_async_callback(bot.leave)
        await bot.connect()
        tracks: list[tuple[MediaStreamTrack, str]] = [
            (PreEncodedTrack(media.audio), "microphone"),
            (_video_track(media), "camera"),
        ]
        await bot.publish(tracks)
        bots.append(bot)
    return bots
