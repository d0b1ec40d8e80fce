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
  with its own sequence numbers, timestamps and picture ids, carrying the MID
  and RID header extensions for the first `RID_SECONDS` and on every keyframe
  (a browser stops once it sees receiver reports), through the connection's
  DTLS transport: its send function is taken with the public hook
  `sfu.aiortc_hooks.wrap_send_rtp`, which is left sending as before.

Keyframes: each clip has one every `KEYFRAME_INTERVAL` s. The server's PLIs are
not answered early (aiortc routes RTCP of SSRCs it did not announce nowhere a
bot can see), so a layer switch waits at most that long for its keyframe.

With one layer (`LAYERS_SINGLE`) it is today's non-simulcast camera: one SSRC,
no rids, no `a=simulcast`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import random
import re
import time
from dataclasses import dataclass

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from bench.preencoded import EncodedClip, encode_video
from sfu.aiortc_hooks import wrap_send_rtp
from sfu.forwarding_types import SendRtp
from sfu.simulcast_sdp import REPAIRED_RID_URI, RID_URI

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
KEYFRAME_INTERVAL = 1.0
RID_SECONDS = 2.0
_VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


@dataclass(frozen=True)
class LayerSpec:
    rid: str
    width: int
    height: int
    bitrate: int  # bit/s


# The call page's camera (docs/protocol.md "Video quality"), smallest first.
LAYERS_SIMULCAST = (
    LayerSpec("q", 160, 90, 150_000),
    LayerSpec("h", 320, 180, 450_000),
    LayerSpec("f", 640, 360, 1_200_000),
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
                spec.width, spec.height, fps, seconds, spec.bitrate, KEYFRAME_INTERVAL, fast=True
            ),
        )
        for spec in layers
    )


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


class _Layer:
    """One layer's RTP state: its SSRC, numbering and VP8 picture ids."""

    def __init__(self, layer: LayerClip, rid: str | None) -> None:
        self.clip = layer.clip
        self.rid = rid
        self.ssrc = random.getrandbits(32) or 1
        self.seq = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.vp8 = Vp8Encoder()  # only its packetizer is used: pack() keeps picture ids going
        self.ticks = round(self.clip.period * 90000)

    def packets(self, frame: int, payload_type: int, mid: str, tag: bool) -> list[RtpPacket]:
        """One frame's packets; with `tag` (or a keyframe) carrying the MID and RID."""
        count = len(self.clip.packets)
        data = self.clip.packets[frame % count]
        encoded = av.Packet(data)
        encoded.pts, encoded.time_base = 0, _VIDEO_TIME_BASE  # pack() converts it; unused
        payloads, _ = self.vp8.pack(encoded)
        tag = tag or self.clip.keyframes[frame % count]
        out = []
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=payload_type,
                marker=int(i == len(payloads) - 1),
                sequence_number=self.seq,
                timestamp=(self.timestamp + frame * self.ticks) % (1 << 32),
                ssrc=self.ssrc,
                payload=payload,
            )
            self.seq = (self.seq + 1) % (1 << 16)
            out.append(packet)
        for packet in out if tag else ():
            packet.extensions.mid = mid
            packet.extensions.rtp_stream_id = self.rid
        return out


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
        self._shape = shape
        simulcast = len(layers) > 1
        self.layers = [_Layer(layer, layer.spec.rid if simulcast else None) for layer in layers]
        self._extensions = HeaderExtensionsMap()
        exts = [RTCRtpHeaderExtensionParameters(id=shape.mid_extension, uri=MID_URI)]
        if simulcast:
            exts.append(RTCRtpHeaderExtensionParameters(id=shape.rid_extension, uri=RID_URI))
        self._extensions.configure(RTCRtpParameters(headerExtensions=exts))
        self._task: asyncio.Task[None] | None = None
        self.packets_sent = 0

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
        assert self._send is not None
        period, shape = self.layers[0].clip.period, self._shape
        started = time.monotonic()
        frame = 0
        while True:
            delay = started + frame * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tag = frame * period < RID_SECONDS
            for layer in self.layers:
                for packet in layer.packets(frame, shape.payload_type, shape.mid, tag):
                    try:
                        await self._send(packet.serialize(self._extensions))
                    except ConnectionError:
                        return  # the connection closed under us
                    self.packets_sent += 1
            frame += 1


class LayeredCamera:
    """A bot's camera of `layers`: set `bot.munge_offer = camera.munge`, publish an
    IdleVideoTrack as the camera, then `start(bot.publisher)`."""

    def __init__(self, layers: tuple[LayerClip, ...]) -> None:
        self.layers = layers
        self.shape: OfferShape | None = None
        self.sender: LayeredSender | None = None

    def munge(self, sdp: str) -> str:
        sdp, self.shape = munge_offer(sdp, tuple(layer.spec.rid for layer in self.layers))
        return sdp

    def start(self, pc: RTCPeerConnection | None) -> None:
        assert pc is not None and self.shape is not None, "publish before start"
        self.sender = LayeredSender(pc, self.shape, self.layers)
        self.sender.start()

    async def stop(self) -> None:
        if self.sender is not None:
            await self.sender.stop()
