"""A bot's camera as a browser publishes it with simulcast: three VP8 layers (rids q, h, f).

aiortc cannot publish simulcast, so the bench does what Chromium does on the
wire, on an aiortc connection:

- the publisher offer is munged (`munge_offer`): the video m-section loses its
  `a=ssrc` lines and gains `a=rid:<id> send` per layer, `a=simulcast:send q;h;f`
  and the `rtp-stream-id` / `repaired-rtp-stream-id` extmaps, the shape of a real
  Chromium offer (tests/data/chromium_simulcast_offer.sdp). The m-section's
  track never yields a frame (`IdleVideoTrack`), so aiortc's own sender sends
  no RTP on it;
- `LayeredSender` sends each layer's pre-encoded VP8 clip itself, as its own SSRC
  with its own sequence numbers, timestamps and picture ids (RFC 7741 payload
  descriptor with a 15-bit picture id, as aiortc's packetizer writes it),
  carrying the MID and RID header extensions for the first `RID_SECONDS` and on
  every keyframe (a browser stops once it sees receiver reports), through the
  connection's DTLS transport: its send function is taken with the public hook
  `sfu.aiortc_hooks.wrap_send_rtp` (and left sending as before); once connected,
  `sfu.aiortc_hooks.FastRtpPath` (SRTP, then the socket) as the server's
  forwarding does.

Keyframes: each clip has one every `KEYFRAME_INTERVAL` s. The server's PLIs are
not answered early (aiortc routes RTCP of SSRCs it did not announce nowhere a
bot can see), so a layer switch waits at most that long for its keyframe.

With one layer (`LAYERS_SINGLE`) it is today's non-simulcast camera: one SSRC,
no rids, no `a=simulcast`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from bench.bot import Bot
from bench.preencoded import EncodedClip, encode_video
from sfu.aiortc_hooks import FastRtpPath, wrap_send_rtp
from sfu.forwarding_types import SendRtp
from sfu.simulcast_sdp import REPAIRED_RID_URI, RID_URI

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
KEYFRAME_INTERVAL = 1.0
RID_SECONDS = 2.0
MAX_LAG = 0.1  # seconds a camera may fall behind before it skips frames


@dataclass(frozen=True)
class LayerSpec:
    rid: str
    width: int
    height: int
    bitrate: int  # bit/s
    temporal_layers: int = 3  # as Chromium encodes each simulcast layer


# The call page's camera (docs/protocol.md "Video quality"), smallest first.
LAYERS_SIMULCAST = (
    LayerSpec("q", 160, 90, 90_000),
    LayerSpec("h", 320, 180, 160_000),
    LayerSpec("f", 640, 360, 450_000),
)
LAYERS_SINGLE = (LAYERS_SIMULCAST[-1],)


@dataclass(frozen=True)
class LayerClip:
    spec: LayerSpec
    clip: EncodedClip


def encode_layers(
    layers: tuple[LayerSpec, ...], fps: int = 30, seconds: float = 2.0
) -> tuple[LayerClip, ...]:
    """Each layer's clip, encoded once per run (PyAV), a keyframe every KEYFRAME_INTERVAL."""
    return tuple(
        LayerClip(
            spec,
            encode_video(
                spec.width,
                spec.height,
                fps,
                seconds,
                spec.bitrate,
                KEYFRAME_INTERVAL,
                fast=True,
                temporal_layers=spec.temporal_layers,
            ),
        )
        for spec in layers
    )


def packets_per_second(layer: LayerClip) -> float:
    """The RTP packets a second the layer's clip makes (`LayeredSender` sends them all)."""
    return sum(len(vp8_chunks(frame)) for frame in layer.clip.packets) / layer.clip.seconds


class IdleVideoTrack(MediaStreamTrack):
    """A video track that never yields a frame: the m-section exists, aiortc sends nothing."""

    kind = "video"

    async def recv(self) -> av.VideoFrame:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class IdleAudioTrack(IdleVideoTrack):
    """A microphone that never yields a frame (a paused one): for connection upkeep."""

    kind = "audio"


@dataclass(frozen=True)
class OfferShape:
    """Where the munged offer put things: the video mid and the extension ids."""

    mid: str
    payload_type: int
    mid_extension: int
    rid_extension: int
    repaired_extension: int


def _free_ids(used: set[int], count: int) -> list[int]:
    return [i for i in range(1, 15) if i not in used][:count]


def munge_offer(sdp: str, rids: tuple[str, ...]) -> tuple[str, OfferShape]:
    """aiortc's publisher offer with its (first) video m-section made a simulcast one
    (two or more `rids`) or a single stream of our own SSRC (one rid: none announced)."""
    sections = re.split(r"(?=^m=)", sdp, flags=re.M)
    for index, section in enumerate(sections):
        if not section.startswith("m=video"):
            continue
        lines = [line for line in section.splitlines() if line]
        mid = re.search(r"^a=mid:(\S+)", section, re.M)
        vp8 = re.search(r"^a=rtpmap:(\d+) VP8/90000", section, re.M)
        mid_ext = re.search(r"^a=extmap:(\d+) " + re.escape(MID_URI), section, re.M)
        if mid is None or vp8 is None or mid_ext is None:
            raise ValueError("the offer's video m-section lacks mid, VP8 or the mid extmap")
        used = {int(m) for m in re.findall(r"^a=extmap:(\d+)", section, re.M)}
        rid_ext, repaired_ext = _free_ids(used, 2)
        kept = [line for line in lines if not line.startswith(("a=ssrc:", "a=ssrc-group:"))]
        added = []
        if len(rids) > 1:
            added = [f"a=extmap:{rid_ext} {RID_URI}", f"a=extmap:{repaired_ext} {REPAIRED_RID_URI}"]
            added += [f"a=rid:{rid} send" for rid in rids]
            added.append(f"a=simulcast:send {';'.join(rids)}")
        at = kept.index(f"a=mid:{mid.group(1)}") + 1
        sections[index] = "\r\n".join([*kept[:at], *added, *kept[at:]]) + "\r\n"
        shape = OfferShape(
            mid.group(1), int(vp8.group(1)), int(mid_ext.group(1)), rid_ext, repaired_ext
        )
        return "".join(sections), shape
    raise ValueError("the offer has no video m-section")


# Payload bytes of one VP8 packet after the descriptor (aiortc's packetizer uses 1300 in
# all; a browser about 1200).
VP8_CHUNK = 1200


def vp8_chunks(frame: bytes) -> tuple[bytes, ...]:
    """A VP8 frame cut into packet payloads, the descriptor left for `_Layer` (RFC 7741)."""
    return tuple(frame[at : at + VP8_CHUNK] for at in range(0, len(frame), VP8_CHUNK)) or (b"",)


def one_byte_extensions(elements: list[tuple[int, bytes]]) -> bytes:
    """An RTP header extension block of the one-byte form (RFC 8285), padded."""
    body = b"".join(bytes([ext_id << 4 | len(value) - 1]) + value for ext_id, value in elements)
    body += b"\0" * (-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


class _Layer:
    """One layer's RTP: its SSRC, numbering and VP8 picture ids, packets built by hand
    (the bench sends thousands a second beside the server: RtpPacket.serialize and
    aiortc's send chain cost several times more)."""

    def __init__(self, layer: LayerClip, payload_type: int, tags: bytes) -> None:
        self.clip = layer.clip
        self.frames = [vp8_chunks(frame) for frame in layer.clip.packets]
        self.sync = _layer_sync(layer.clip)
        self.payload_type = payload_type
        self.tags = tags  # the MID and RID extension block
        self.ssrc = random.getrandbits(32) or 1
        self.seq = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.picture_id = random.getrandbits(15)  # continuous across the clip's loops
        self.tl0_index = random.getrandbits(8)
        self.ticks = round(self.clip.period * 90000)

    def packets(self, frame: int, tag: bool) -> list[bytes]:
        """One frame's packets; with `tag` (or a keyframe) carrying the MID and RID."""
        index = frame % len(self.frames)
        chunks = self.frames[index]
        tag = tag or self.clip.keyframes[index]
        timestamp = (self.timestamp + frame * self.ticks) & 0xFFFFFFFF
        picture = self._descriptor_fields(index)
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        out = []
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            header = struct.pack(
                "!BBHII",
                0x90 if tag else 0x80,  # version 2, X when extensions follow
                (0x80 if i == last else 0) | self.payload_type,
                self.seq,
                timestamp,
                self.ssrc,
            )
            self.seq = (self.seq + 1) & 0xFFFF
            start = b"\x90" if i == 0 else b"\x80"  # X, and S on a frame's first packet
            out.append(header + (self.tags if tag else b"") + start + picture + chunk)
        return out

    def _descriptor_fields(self, index: int) -> bytes:
        """After the first byte: I (15-bit picture id); with temporal layers also L and T
        (TL0PICIDX, TID and the layer sync bit, as Chromium writes them)."""
        if not self.clip.temporal:
            return struct.pack("!BH", 0x80, 0x8000 | self.picture_id)
        tid = self.clip.temporal[index]
        if tid == 0:
            self.tl0_index = (self.tl0_index + 1) & 0xFF
        tid_byte = tid << 6 | (0x20 if self.sync[index] else 0)
        return struct.pack("!BHBB", 0xE0, 0x8000 | self.picture_id, self.tl0_index, tid_byte)


def _layer_sync(clip: EncodedClip) -> list[bool]:
    """The Y bit of each frame as Chromium sets it: on the TL2 and TL1 pictures of every
    other cycle of TIDs 0 2 1 2 after a keyframe (the clip's TL1 and first TL2 pictures
    refer to TL0 only every time: marking fewer of them is what a browser does, and
    what a receiver must cope with)."""
    sync, since_key = [], 0
    for key, tid in zip(clip.keyframes, clip.temporal, strict=True):
        since_key = 0 if key else since_key + 1
        position, cycle = since_key % 4, since_key // 4
        sync.append(cycle % 2 == 0 and position in (1, 2) and tid > 0)
    return sync


class LayeredSender:
    """Sends the layers of one camera on a publisher connection (see the module doc)."""

    def __init__(self, pc: RTCPeerConnection, shape: OfferShape, layers: tuple[LayerClip, ...]):
        transceiver = next(t for t in pc.getTransceivers() if t.mid == shape.mid)
        transport = transceiver.sender.transport
        assert isinstance(transport, RTCDtlsTransport)
        self._transport = transport
        self._send: SendRtp | None = None

        def keep(original: SendRtp) -> SendRtp:
            self._send = original
            return original

        wrap_send_rtp(transport, keep)
        # The socket directly once connected (what the server's forwarding does), else
        # aiortc's own send.
        self._fast = FastRtpPath.for_transport(transport)
        simulcast = len(layers) > 1
        self.layers = []
        for layer in layers:
            elements = [(shape.mid_extension, shape.mid.encode())]
            if simulcast:
                elements.append((shape.rid_extension, layer.spec.rid.encode()))
            self.layers.append(_Layer(layer, shape.payload_type, one_byte_extensions(elements)))
        self._task: asyncio.Task[None] | None = None
        self.packets_sent = 0
        self.frames_skipped = 0  # frames not sent because the bench fell behind
        # The first this many layers are sent (the server's publish_layers: dynacast).
        self.active_layers = len(self.layers)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._transport.state != "connected":  # DTLS: nothing can be sent before
            if self._transport.state in ("closed", "failed"):
                return
            await asyncio.sleep(0.05)
        send, fast = self._send, self._fast
        assert send is not None
        period = self.layers[0].clip.period
        # Each camera starts at its own point of the clip: a class of cameras does not
        # send all its keyframes in the same millisecond.
        offset = random.randrange(len(self.layers[0].frames))
        started = time.monotonic()
        frame = 0
        while True:
            late = time.monotonic() - (started + frame * period)
            if late > MAX_LAG:  # the bench fell behind: skip frames as an encoder would,
                skipped = int(late / period)  # rather than send a burst of old ones
                frame += skipped
                self.frames_skipped += skipped
            # Always yield: the bots' WebSockets and receivers share this event loop.
            await asyncio.sleep(max(0.0, started + frame * period - time.monotonic()))
            tag = frame * period < RID_SECONDS
            for layer in self.layers[: self.active_layers]:
                for data in layer.packets(frame + offset, tag):
                    if fast is None or not fast.send(data):
                        try:
                            await send(data)
                        except ConnectionError:
                            return  # the connection closed under us
                    self.packets_sent += 1
            frame += 1


class LayeredCamera:
    """A bot's camera of `layers`: set `bot.munge_offer = camera.munge` (and
    `bot.on_message = camera.follow` for dynacast), publish an
    IdleVideoTrack as the camera, then `start(bot.publisher)`."""

    def __init__(self, layers: tuple[LayerClip, ...]) -> None:
        self.layers = layers
        self.shape: OfferShape | None = None
        self.sender: LayeredSender | None = None
        self.active_layers = len(layers)

    def follow(self, message: dict[str, Any]) -> None:
        """A server message (`bot.on_message = camera.follow`): publish_layers for the
        camera sets how many layers are sent, smallest first, as the call page does."""
        if message.get("type") != "publish_layers" or message.get("source") != "camera":
            return
        self.active_layers = max(1, min(len(self.layers), int(message["layers"])))
        if self.sender is not None:
            self.sender.active_layers = self.active_layers

    def munge(self, sdp: str) -> str:
        sdp, self.shape = munge_offer(sdp, tuple(layer.spec.rid for layer in self.layers))
        return sdp

    def start(self, pc: RTCPeerConnection | None) -> None:
        assert pc is not None and self.shape is not None, "publish before start"
        self.sender = LayeredSender(pc, self.shape, self.layers)
        self.sender.active_layers = self.active_layers
        self.sender.start()

    async def stop(self) -> None:
        if self.sender is not None:
            await self.sender.stop()


async def publish_layered(
    bot: Bot,
    layers: tuple[LayerClip, ...],
    also: Sequence[tuple[MediaStreamTrack, str]] = (),
    timeout: float = 30.0,
) -> LayeredCamera:
    """`bot` publishes a camera of `layers` that follows the server's publish_layers, and
    `also` (a microphone); `camera.start(bot.publisher)` then starts it sending."""
    camera = LayeredCamera(layers)
    bot.munge_offer = camera.munge
    bot.on_message = camera.follow
    await bot.publish([(IdleVideoTrack(), "camera"), *also], timeout)
    return camera
