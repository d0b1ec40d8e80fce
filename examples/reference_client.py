"""A reference client for Urok calls, written from docs/protocol.md alone.

    python examples/reference_client.py --url http://127.0.0.1:8080 --token <join token>
        [--lesson les_...] [--say "Hello"] [--colour 30,200,30] [--tone 660]
        [--peers 1] [--stay] [--timeout 30] [--host-address 127.0.0.1]

It joins a lesson with a join token (the journal gets one from
`POST /api/v1/lessons/{id}/tokens`), publishes a camera and a microphone (a
solid colour and a tone it makes itself), receives everybody else, raises its
hand, says something in the chat and leaves. It prints what it observed as
one JSON object: whose pictures and sound it decoded, the hands and chat
messages it saw, who left, and the errors the server sent.

With `--peers N` it waits for media from N other participants before raising
its hand, and then for their hands and chat messages before leaving; with
`--stay` it leaves only after they have all left.

It needs aiortc and aiohttp (and PyAV, which aiortc brings), nothing of the
Urok server: a test runs it against a live server, so the documentation
cannot drift from what the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import itertools
import json
import math
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


class ClientError(RuntimeError):
    pass


# --------------------------------------------------------------------------- media we send


class ColourCamera(MediaStreamTrack):
    """A camera that films a wall of one colour: easy to recognise on the other side."""

    kind = "video"

    def __init__(self, rgb: tuple[int, int, int], fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = 320, 240, fps
        r, g, b = rgb  # to YUV (BT.601, limited range): what VP8 encodes
        self.yuv = (
            round(16 + 0.257 * r + 0.504 * g + 0.098 * b),
            round(128 - 0.148 * r - 0.291 * g + 0.439 * b),
            round(128 + 0.439 * r - 0.368 * g - 0.071 * b),
        )
        self.started: float | None = None
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        self.started = self.started or time.monotonic()
        await asyncio.sleep(max(0.0, self.started + self.count / self.fps - time.monotonic()))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, value in zip(frame.planes, self.yuv, strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts, frame.time_base = (
            self.count * VIDEO_CLOCK // self.fps,
            fractions.Fraction(1, VIDEO_CLOCK),
        )
        self.count += 1
        return frame


class ToneMicrophone(MediaStreamTrack):
    """A microphone that hears one pure tone."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self.started: float | None = None
        self.count = 0

    async def recv(self) -> av.AudioFrame:
        self.started = self.started or time.monotonic()
        period = AUDIO_SAMPLES / AUDIO_RATE
        await asyncio.sleep(max(0.0, self.started + self.count * period - time.monotonic()))
        first = self.count * AUDIO_SAMPLES
        samples = [
            int(8000 * math.sin(2 * math.pi * self.frequency * (first + i) / AUDIO_RATE))
            for i in range(AUDIO_SAMPLES)
        ]
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(struct.pack(f"<{AUDIO_SAMPLES}h", *samples))
        frame.sample_rate, frame.pts = AUDIO_RATE, first
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.count += 1
        return frame


# --------------------------------------------------------------------------- what we receive


@dataclass
class Received:
    """What we decoded of one other participant."""

    video_frames: int = 0
    audio_frames: int = 0
    video_rgb: tuple[int, int, int] | None = None  # the latest picture's average colour
    audio_hz: float | None = None  # the tone in the latest second of sound

    def to_json(self) -> dict[str, Any]:
        return {
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "video_rgb": self.video_rgb,
            "audio_hz": self.audio_hz,
        }


def plane_average(plane: Any) -> float:
    """The average of every 8th sample of every 8th row of one picture plane (a row
    may be padded past the picture's width: the padding is left out)."""
    data, total, count = bytes(plane), 0, 0
    for row in range(0, plane.height, 8):
        samples = data[row * plane.line_size : row * plane.line_size + plane.width : 8]
        total, count = total + sum(samples), count + len(samples)
    return total / count


def average_rgb(frame: av.VideoFrame) -> tuple[int, int, int]:
    """The average colour of a decoded picture (YUV, BT.601 limited range, to RGB)."""
    picture = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
    y, u, v = (plane_average(p) for p in picture.planes)
    y, u, v = 1.164 * (y - 16), u - 128, v - 128
    rgb = (y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u)
    r, g, b = (max(0, min(255, round(c))) for c in rgb)
    return r, g, b


def tone_of(samples: list[int]) -> float | None:
    """The frequency of a pure tone, from how often it crosses zero."""
    if len(samples) < AUDIO_RATE // 4:
        return None
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return round(crossings / 2 / (len(samples) / AUDIO_RATE), 1)


# --------------------------------------------------------------------------- the client


@dataclass
class Client:
    url: str
    token: str
    host_address: str | None = None
    me: dict[str, Any] = field(default_factory=dict)
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: dict[str, Received] = field(default_factory=dict)
    hands_seen: set[str] = field(default_factory=set)
    chat: list[dict[str, Any]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    ended: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.publisher: RTCPeerConnection | None = None
        self.subscriber: RTCPeerConnection | None = None
        self.ice_servers: list[dict[str, Any]] = []
        # mid -> {"participant_id", "kind", "source"}: whose media each m-section carries now
        self.slots: dict[str, dict[str, Any]] = {}
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reading: set[str] = set()  # mids whose track is being decoded
        self.changed = asyncio.Event()
        self.closed = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.next_id = 0
        self.admitted: asyncio.Future[dict[str, Any]] | None = None  # out of the waiting room

    # --- the WebSocket

    async def send(self, message: dict[str, Any], reply_to: str | None = None) -> None:
        """Send one message with an `id` (fresh unless given): errors it causes carry it
        back as `ref`."""
        assert self.ws is not None
        if reply_to is None:
            self.next_id += 1
            reply_to = f"c{self.next_id}"
        await self.ws.send_str(json.dumps({**message, "id": reply_to}))

    async def request(self, message: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        """Send a message that the server answers directly (join, publish, ping): the
        answer, or its error, carries our `id` as `ref`."""
        self.next_id += 1
        ref = f"c{self.next_id}"
        reply = self.replies[ref] = asyncio.get_running_loop().create_future()
        await self.send(message, ref)
        answer = await asyncio.wait_for(reply, timeout)
        if answer["type"] == "error":
            raise ClientError(f"{message['type']} refused: {answer['code']}: {answer['message']}")
        return answer

    async def read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self.on_message(json.loads(frame.data))
        finally:
            self.closed.set()
            self.changed.set()

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        reply = self.replies.pop(message.get("ref", ""), None)
        if kind == "error":
            self.errors.append(message)
        if reply is not None and not reply.done():
            reply.set_result(message)
        if kind == "waiting":  # a host admits us: `joined` follows, with the same id
            self.me = message["self"]
            self.admitted = asyncio.get_running_loop().create_future()
        elif kind == "joined":
            self.on_joined(message)
        elif kind in ("participant_joined", "participant_updated"):
            self.participants[message["participant"]["id"]] = message["participant"]
        elif kind == "participant_left":
            self.participants.pop(message["participant_id"], None)
            self.left.append(message["participant_id"])
        elif kind == "hands":
            self.hands_seen.update(message["queue"])
        elif kind == "chat_message":
            self.chat.append(message["message"])
        elif kind == "subscribe_offer":
            self.offers.put_nowait(message)
        elif kind in ("call_ended", "removed", "denied"):
            self.ended = message  # the server closes the connection next
        self.changed.set()

    def on_joined(self, message: dict[str, Any]) -> None:
        self.me = message["self"]
        self.ice_servers = message["ice_servers"]
        self.participants = {p["id"]: p for p in message["participants"]}
        self.hands_seen.update(message["hands"])
        self.chat.extend(message["chat"])
        if self.admitted is not None and not self.admitted.done():
            self.admitted.set_result(message)

    async def until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until `condition()` holds (checked on every message and every 0.2 s)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.closed.is_set() or time.monotonic() > deadline:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)
        return True

    # --- joining and leaving

    async def join(self, lesson_id: str | None, timeout: float) -> None:
        if self.host_address:
            use_only_host_address(self.host_address)
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url.rstrip("/") + "/ws", max_msg_size=0)
        self.tasks.append(asyncio.create_task(self.read()))
        self.tasks.append(asyncio.create_task(self.answer_offers()))
        message: dict[str, Any] = {"type": "join", "token": self.token}
        if lesson_id:
            message["lesson_id"] = lesson_id
        reply = await self.request(message, timeout)
        if reply["type"] == "waiting" and self.admitted is not None:
            await asyncio.wait_for(self.admitted, timeout)  # `denied` closes the connection

    async def leave(self, timeout: float = 10) -> bool:
        """Leave the call; True when the server then closed the connection."""
        if self.ws is not None and not self.ws.closed:
            await self.send({"type": "leave"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), timeout)
        return self.closed.is_set()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                await pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()

    # --- media

    def configuration(self) -> RTCConfiguration:
        # Exactly the ICE servers the server names (an empty list, not None: aiortc would
        # otherwise add a public STUN server), and everything on one transport.
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in self.ice_servers
        ]
        return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)

    async def publish(self, camera: MediaStreamTrack, microphone: MediaStreamTrack) -> None:
        pc = self.publisher = RTCPeerConnection(self.configuration())
        sources = []
        for track, source in ((microphone, "microphone"), (camera, "camera")):
            transceiver = pc.addTransceiver(track, direction="sendonly")
            sources.append((transceiver, source))
        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        tracks = [{"mid": t.mid, "source": source} for t, source in sources]
        reply = await self.request(
            {"type": "publish", "sdp": pc.localDescription.sdp, "tracks": tracks}
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    async def answer_offers(self) -> None:
        """Answer each subscribe_offer in turn (the server waits for the answer)."""
        while True:
            offer = await self.offers.get()
            if self.subscriber is None:
                self.subscriber = RTCPeerConnection(self.configuration())
            pc = self.subscriber
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            self.slots = dict(offer["tracks"])  # an m-section not named here is idle
            for transceiver in pc.getTransceivers():
                self.read_slot(transceiver)
            await pc.setLocalDescription(await pc.createAnswer())
            await self.send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})

    def read_slot(self, transceiver: RTCRtpTransceiver) -> None:
        """Decode what one m-section receives, for whoever the latest offer says it is.

        aiortc matches packets to m-sections by the offer's a=ssrc lines, as the
        server requires (its packets carry no header extensions). A slot keeps
        its SSRC when another person takes it over; the server sends nothing of
        the new person there before their keyframe."""
        mid = transceiver.mid or ""
        if mid not in self.reading:
            self.reading.add(mid)
            track = transceiver.receiver.track
            self.tasks.append(asyncio.create_task(self.read_track(mid, track)))

    async def read_track(self, mid: str, track: MediaStreamTrack) -> None:
        sound: dict[str, list[int]] = {}
        with contextlib.suppress(Exception):  # the track ends when the connection closes
            while True:
                frame = await track.recv()
                owner = self.slots.get(mid)
                if owner is None:
                    continue
                received = self.received.setdefault(owner["participant_id"], Received())
                if isinstance(frame, av.VideoFrame):
                    received.video_frames += 1
                    received.video_rgb = average_rgb(frame)
                elif isinstance(frame, av.AudioFrame):
                    received.audio_frames += 1
                    samples = sound.setdefault(owner["participant_id"], [])
                    # aiortc decodes Opus to packed 16-bit stereo; the plane's buffer can
                    # be longer than the frame's samples.
                    channels = len(frame.layout.channels)
                    data = bytes(frame.planes[0])[: frame.samples * channels * 2]
                    values = struct.unpack(f"<{len(data) // 2}h", data)
                    samples.extend(values[::channels])  # the first channel
                    del samples[:-AUDIO_RATE]
                    received.audio_hz = tone_of(samples)
                self.changed.set()

    def report(self, left_cleanly: bool) -> dict[str, Any]:
        return {
            "self": self.me,
            "received": {pid: r.to_json() for pid, r in self.received.items()},
            "hands_seen": sorted(self.hands_seen),
            "chat": [
                {"author_id": m.get("author_id"), "kind": m["kind"], "text": m["text"]}
                for m in self.chat
            ],
            "left": self.left,
            "errors": self.errors,
            "ended": self.ended,
            "left_cleanly": left_cleanly,
        }


def use_only_host_address(address: str) -> None:
    """Gather ICE host candidates on `address` only.

    aioice leaves loopback addresses out of the host candidates it gathers, so
    a client and server on one machine (127.0.0.1) could never connect; aioice
    looks addresses up through this module-level function."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]


# --------------------------------------------------------------------------- a lesson


@dataclass
class Options:
    url: str
    token: str
    lesson: str | None = None
    say: str = "Здравствуйте!"
    colour: tuple[int, int, int] = (30, 200, 30)
    tone: float = 660.0
    peers: int = 1
    stay: bool = False
    timeout: float = 30.0
    host_address: str | None = None


async def run(options: Options) -> dict[str, Any]:
    client = Client(options.url, options.token, options.host_address)
    try:
        await client.join(options.lesson, options.timeout)
        await client.publish(ColourCamera(options.colour), ToneMicrophone(options.tone))
        me = client.me["id"]

        def others_heard_and_seen() -> bool:
            heard = [
                r for pid, r in client.received.items()
                if pid != me and r.video_frames >= 10 and r.audio_frames >= 50
            ]  # fmt: skip
            return len(heard) >= options.peers

        await client.until(others_heard_and_seen, options.timeout)
        await client.send({"type": "hand", "raised": True})
        await client.send({"type": "chat_send", "text": options.say})

        def others_answered() -> bool:
            hands = client.hands_seen - {me}
            talked = {m.get("author_id") for m in client.chat if m["kind"] == "text"} - {me}
            return len(hands) >= options.peers and len(talked) >= options.peers

        await client.until(others_answered, options.timeout)
        if options.stay:
            await client.until(lambda: len(set(client.left)) >= options.peers, options.timeout)
        left_cleanly = await client.leave()
        return client.report(left_cleanly)
    finally:
        await client.close()


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", required=True, help="a join token")
    parser.add_argument("--lesson", help="the lesson id (the server checks the token is for it)")
    parser.add_argument("--say", default="Здравствуйте!", help="the chat message to send")
    parser.add_argument("--colour", default="30,200,30", help="the camera's colour, R,G,B")
    parser.add_argument("--tone", type=float, default=660.0, help="the microphone's tone, Hz")
    parser.add_argument("--peers", type=int, default=1, help="how many others to wait for")
    parser.add_argument("--stay", action="store_true", help="leave after everybody else")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for each wait")
    parser.add_argument("--host-address", help="gather ICE candidates on this address only")
    args = parser.parse_args(argv)
    try:
        r, g, b = (int(c) for c in args.colour.split(","))
    except ValueError:
        parser.error("--colour must be R,G,B")
    if not all(0 <= c <= 255 for c in (r, g, b)):
        parser.error("--colour must be R,G,B with each 0..255")
    return Options(
        url=args.url,
        token=args.token,
        lesson=args.lesson,
        say=args.say,
        colour=(r, g, b),
        tone=args.tone,
        peers=args.peers,
        stay=args.stay,
        timeout=args.timeout,
        host_address=args.host_address,
    )


def main() -> int:
    options = parse_args(sys.argv[1:])
    try:
        report = asyncio.run(run(options))
    except (ClientError, TimeoutError, aiohttp.ClientError, OSError) as exc:
        print(json.dumps({"failed": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
