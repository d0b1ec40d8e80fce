"""A call participant made of aiortc peer connections: for tests and load runs.

It speaks the real protocol over the real WebSocket. A bot publishes tracks
it encodes itself (or pre-encoded packets) and either decodes what it
receives (tests check content) or only counts packets (cheap, for load).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from bench.preencoded import PreEncodedTrack
from sfu.aiortc_hooks import ForwardingReceiver, on_keyframe_request, rtc_configuration

PacketObserver = Callable[[str, RtpPacket, float], None]


class BotError(RuntimeError):
    pass


class Bot:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        decode: bool = True,
        on_packet: PacketObserver | None = None,
        receive: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.decode = decode
        # receive=False: subscribe offers go unanswered, so nothing is sent to this bot
        # (a publisher that costs the machine no receiving).
        self.receive = receive
        self.on_packet = on_packet
        # Rewrites the publisher offer before it is sent (bench/simulcast_publisher.py).
        self.munge_offer: Callable[[str], str] | None = None
        # Sees every server message first (a simulcast camera follows publish_layers).
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.joined: dict[str, Any] | None = None
        self.waiting: dict[str, Any] | None = None
        self.participants: dict[str, dict[str, Any]] = {}
        self.messages: list[dict[str, Any]] = []
        self.publisher: RTCPeerConnection | None = None
        self.subscriber: RTCPeerConnection | None = None
        # mid -> {"participant_id", "kind", "source"} from the latest offer
        self.track_info: dict[str, dict[str, Any]] = {}
        # (participant_id, kind) -> packets received (counting mode)
        self.packet_counts: dict[tuple[str, str], int] = defaultdict(int)
        self.closed_by_server: asyncio.Event = asyncio.Event()
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[Any]]] = []
        self._reader: asyncio.Task[None] | None = None
        self._offer_lock = asyncio.Lock()
        self._published: list[tuple[MediaStreamTrack, str]] = []
        # Between asking for a new subscriber connection and `ice_restarted`: offers
        # still in flight were made for the old one and are dropped.
        self._subscriber_restarting = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def id(self) -> str:
        current = self.joined or self.waiting
        assert current is not None
        return str(current["self"]["id"])

    # --- connection

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        self.session = aiohttp.ClientSession()
        ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.session.ws_connect(ws_url, max_msg_size=4 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        waiter = self.wait_for(lambda m: m["type"] in ("joined", "waiting", "error"), timeout)
        await self.send({"type": "join", "token": self.token})
        reply = await waiter
        if reply["type"] == "error":
            raise BotError(f"join refused: {reply['code']}: {reply['message']}")
        if reply["type"] == "waiting":
            self.waiting = reply
            return reply
        self.joined = reply
        for p in reply["participants"]:
            self.participants[p["id"]] = p
        return reply

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def request(
        self,
        message: dict[str, Any],
        reply: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send `message` and wait for the first message matching `reply` (or an error)."""
        waiter = self.wait_for(lambda m: m["type"] == "error" or reply(m), timeout)
        await self.send(message)
        return await waiter

    async def send_raw(self, data: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(data)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> asyncio.Future[dict[str, Any]]:
        """A future for the next message matching `predicate` (register before sending)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))

        async def expire() -> dict[str, Any]:
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise BotError(f"no matching message within {timeout}s") from None

        return asyncio.ensure_future(expire())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                self.messages.append(message)
                await self._on_message(message)
                for predicate, future in list(self._waiters):
                    if not future.done() and predicate(message):
                        future.set_result(message)
                        self._waiters.remove((predicate, future))
        finally:
            self.closed_by_server.set()

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self.on_message is not None:
            self.on_message(message)
        if kind == "joined":
            # Here, not only in connect(): a subscribe_offer can follow in the same
            # read, and answering it needs `joined` (ICE servers) before connect() resumes.
            self.joined = message
            for p in message["participants"]:
                self.participants[p["id"]] = p
        elif kind == "resumed" and message["state"] == "in_call":
            self.joined = {**message, "chat": (self.joined or {}).get("chat", [])}
            self.participants = {p["id"]: p for p in message["participants"]}
        elif kind in ("participant_joined", "participant_updated"):
            self.participants[message["participant"]["id"]] = message["participant"]
        elif kind == "participant_left":
            self.participants.pop(message["participant_id"], None)
        elif kind == "ice_restarted" and message["connection"] == "subscriber":
            self._subscriber_restarting = False
        elif kind == "subscribe_offer" and self.receive and not self._subscriber_restarting:
            task = asyncio.create_task(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _configuration(self) -> Any:
        assert self.joined is not None
        configuration = rtc_configuration(self.joined.get("ice_servers", []))
        # aiortc's default "balanced" policy breaks BUNDLE when an offer brings two
        # new m-sections of one kind (the second keeps a transport that BUNDLE then
        # stops, so it never connects); browsers get this right, and so do we with
        # max-bundle: every m-section on the first one's transport.
        configuration.bundlePolicy = RTCBundlePolicy.MAX_BUNDLE
        return configuration

    # --- publishing

    async def publish(
        self, tracks: list[tuple[MediaStreamTrack, str]], timeout: float = 10
    ) -> None:
        """Publish (track, source) pairs on the publisher connection."""
        self._published = list(tracks)
        self.publisher = await self._offer_publisher({"type": "publish"}, "publish_answer", timeout)

    async def _offer_publisher(
        self, message: dict[str, Any], reply_type: str, timeout: float
    ) -> RTCPeerConnection:
        """A new publisher connection with every published track, offered in `message`."""
        pc = RTCPeerConnection(self._configuration())
        for track, _ in self._published:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if isinstance(track, PreEncodedTrack):  # answers PLIs as a browser does
                on_keyframe_request(transceiver.sender, track.keyframe_requested)
        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers fully here
        sources = [
            {"mid": t.mid, "source": source}
            for t, (_, source) in zip(pc.getTransceivers(), self._published, strict=True)
        ]
        sdp = pc.localDescription.sdp
        if self.munge_offer is not None:
            sdp = self.munge_offer(sdp)
        waiter = self.wait_for(lambda m: m["type"] in (reply_type, "error"), timeout)
        await self.send({**message, "sdp": sdp, "tracks": sources})
        reply = await waiter
        if reply["type"] == "error":
            await pc.close()
            raise BotError(f"{message['type']} refused: {reply['code']}: {reply['message']}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        return pc

    # --- a broken media path (docs/protocol.md "ice_restart")

    async def restart_publisher(self, timeout: float = 10) -> None:
        """Replace the publisher connection (what the call page does when it fails)."""
        old = self.publisher
        message = {"type": "ice_restart", "connection": "publisher"}
        self.publisher = await self._offer_publisher(message, "ice_restarted", timeout)
        if old is not None:
            await old.close()

    async def restart_subscriber(self, timeout: float = 10) -> None:
        """Replace the subscriber connection: the server offers a new one."""
        async with self._offer_lock:
            old, self.subscriber = self.subscriber, None
            self._subscriber_restarting = True
            if old is not None:
                await old.close()
            reply = await self.request(
                {"type": "ice_restart", "connection": "subscriber"},
                lambda m: m["type"] == "ice_restarted",
                timeout,
            )
        if reply["type"] == "error":
            self._subscriber_restarting = False
            raise BotError(f"ice_restart refused: {reply['code']}: {reply['message']}")

    @staticmethod
    def udp_ports(pc: RTCPeerConnection | None) -> set[int]:
        """The local UDP ports `pc`'s ICE gathered on (to cut its path in a test)."""
        ports: set[int] = set()
        for transceiver in pc.getTransceivers() if pc is not None else []:
            dtls = transceiver.sender.transport or transceiver.receiver.transport
            if dtls is not None:
                gatherer = dtls.transport.iceGatherer
                ports.update(c.port for c in gatherer.getLocalCandidates())
        return ports

    # --- subscribing

    async def _answer(self, message: dict[str, Any]) -> None:
        async with self._offer_lock:
            if self.subscriber is None:
                self.subscriber = RTCPeerConnection(self._configuration())
            pc = self.subscriber
            await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
            self.track_info = dict(message["tracks"])
            if not self.decode:
                for transceiver in pc.getTransceivers():
                    receiver = transceiver.receiver
                    if not isinstance(receiver, ForwardingReceiver):
                        counting = ForwardingReceiver.adopt(receiver)
                        counting.sink = self._make_counter(transceiver.mid or "")
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            await self.send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})

    def _make_counter(self, mid: str) -> Callable[[RtpPacket, RTCRtpCodecParameters], Any]:
        async def count(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            info = self.track_info.get(mid)
            if info is None:
                return
            # An audio slot names nobody (docs/protocol.md "audio slots"): counted by mid.
            source = info.get("participant_id") or f"slot:{mid}"
            self.packet_counts[(source, info["kind"])] += 1
            if self.on_packet is not None:
                self.on_packet(source, packet, time.monotonic())

        return count

    def track_of(self, participant_id: str, kind: str) -> MediaStreamTrack | None:
        """The decoding track that carries `participant_id`'s media of `kind` now."""
        if self.subscriber is None:
            return None
        for transceiver in self.subscriber.getTransceivers():
            info = self.track_info.get(transceiver.mid or "")
            if info and info["participant_id"] == participant_id and info["kind"] == kind:
                return transceiver.receiver.track
        return None

    async def wait_track(
        self, participant_id: str, kind: str, timeout: float = 15.0
    ) -> MediaStreamTrack:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            track = self.track_of(participant_id, kind)
            if track is not None:
                return track
            await asyncio.sleep(0.05)
        raise BotError(f"no {kind} track from {participant_id} within {timeout}s")

    # --- a dropped connection (docs/protocol.md "resume")

    @property
    def last_chat_seq(self) -> int:
        """The sequence number of the last chat message this bot received."""
        seen = [m["seq"] for m in (self.joined or {}).get("chat", [])]
        for message in self.messages:
            if message["type"] == "chat_message":
                seen.append(message["message"]["seq"])
            elif message["type"] == "resumed":
                seen.extend(m["seq"] for m in message.get("chat", []))
        return max(seen, default=0)

    async def drop_signalling(self) -> None:
        """Close the WebSocket only, as a network blip would; the peer connections stay."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    async def resume(
        self, session: str | None = None, last_chat_seq: int | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Open a new WebSocket and resume (this bot's session unless another is given):
        the `resumed` or `error` reply."""
        current = self.joined or self.waiting
        assert current is not None
        self.session = aiohttp.ClientSession()
        ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.session.ws_connect(ws_url, max_msg_size=4 * 1024 * 1024)
        self.closed_by_server = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        waiter = self.wait_for(lambda m: m["type"] in ("resumed", "error"), timeout)
        await self.send(
            {
                "type": "resume",
                "session": session or current["resume"]["session"],
                "token": self.token,
                "last_chat_seq": self.last_chat_seq if last_chat_seq is None else last_chat_seq,
            }
        )
        return await waiter

    # --- leaving

    async def leave(self) -> None:
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        # Stop handling messages first: an offer answered on a closed connection fails.
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                await pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
