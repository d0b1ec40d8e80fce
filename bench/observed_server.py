"""The real server, with what it sends each subscriber counted: for bench/weak_link.py.

    python -m bench.observed_server serve --host 10.77.1.1 --port 8090   (as `urok serve`)

It is `urok serve` (signalling, rooms, sfu unchanged) plus two routes that only
this bench process has, unauthenticated, so never run it where others reach it:

- `POST /_bench/observed` starts a measuring window: the wire count starts
  afresh, and every producer gets a tap counting video frames and keyframes;
  answers the snapshot below.
- `GET /_bench/observed` answers the snapshot: per subscriber what the wire
  count saw of its streams (packets, bytes, and per kind how many times each
  media packet was sent), its consumers' own counters, and per producer what
  the server received from the publisher (packets, bytes, video frames and
  keyframes since the last POST, keyframe requests sent to it).

The wire count sees every RTP packet a consumer sends, by either of the two
ways it can (`FastRtpPath.send`, and `ForwardingSender.send_rtp` when the fast
path cannot), retransmissions included: both are wrapped, in this process
only, as bench/baseline.py swaps classes. Nothing here is imported by the
server itself.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

import signalling.app
from bench.measure import rtp_payload
from rooms.calls import Participant
from sfu.aiortc_hooks import FastRtpPath, ForwardingReceiver, ForwardingSender
from sfu.consumer import Consumer
from sfu.keyframes import starts_keyframe
from sfu.producer import CachedPacket, Producer
from sfu.subscriber_transport import SubscriberTransport
from signalling.keys import CALLS

ROUTE = "/_bench/observed"
# The RTP header's second byte (marker, payload type), sequence number and SSRC.
_HEADER = struct.Struct("!xBH4xI")
_FID = re.compile(r"^a=ssrc-group:FID (\d+) (\d+)", re.MULTILINE)
_RTX_MAP = re.compile(r"^a=rtpmap:(\d+) rtx/", re.MULTILINE)
# Keyframe requests (PLI) sent to each publisher, by id() of its ForwardingReceiver.
_KEYFRAME_REQUESTS: dict[int, int] = {}


class WireCount:
    """Every RTP packet the server sent, counted by SSRC and by (SSRC, sequence number).

    An RTX packet counts for the packet it carries (its original sequence number is
    the first two bytes of its payload, RFC 4588), under the RTX SSRC; `by_kind`
    adds it to its media SSRC's count. Two dict updates per packet (~1-2 µs)."""

    def __init__(self, rtx_payload_types: frozenset[int] = frozenset()) -> None:
        self.rtx_payload_types = rtx_payload_types
        self.bytes: dict[int, int] = {}  # ssrc -> RTP bytes (header included)
        self.copies: dict[int, int] = {}  # ssrc << 16 | seq -> times sent

    def __call__(self, data: bytes) -> None:
        if len(data) < 12:
            return
        marker_pt, seq, ssrc = _HEADER.unpack_from(data)
        if 192 <= marker_pt <= 223:  # RTCP
            return
        if marker_pt & 0x7F in self.rtx_payload_types:
            payload = rtp_payload(data)
            if payload is None or len(payload) < 2:
                return
            seq = int.from_bytes(payload[:2], "big")
        key = ssrc << 16 | seq
        copies = self.copies
        copies[key] = copies.get(key, 0) + 1
        sizes = self.bytes
        sizes[ssrc] = sizes.get(ssrc, 0) + len(data)

    def sent(self, ssrcs: set[int]) -> tuple[int, int]:
        """(packets, bytes) sent on these SSRCs."""
        packets = sum(count for key, count in self.copies.items() if key >> 16 in ssrcs)
        return packets, sum(self.bytes.get(ssrc, 0) for ssrc in ssrcs)

    def by_kind(self, kinds: dict[int, str], rtx_of: dict[int, int]) -> dict[str, dict[str, int]]:
        """Per kind: packets sent (copies included), distinct media packets, most copies
        of one; of the streams in `kinds` (media SSRC -> kind) and their RTX streams
        (`rtx_of`: RTX SSRC -> media SSRC) only."""
        merged: dict[tuple[int, int], int] = {}
        for key, count in self.copies.items():
            ssrc, seq = key >> 16, key & 0xFFFF
            ssrc = rtx_of.get(ssrc, ssrc)
            if ssrc in kinds:
                merged[(ssrc, seq)] = merged.get((ssrc, seq), 0) + count
        out: dict[str, dict[str, int]] = {}
        for (ssrc, _), count in merged.items():
            tally = out.setdefault(kinds[ssrc], {"packets": 0, "distinct": 0, "max_copies": 0})
            tally["packets"] += count
            tally["distinct"] += 1
            tally["max_copies"] = max(tally["max_copies"], count)
        return out


# What every consumer of this process sends, since the last POST.
_WIRE = WireCount()


def _senders(participant: Participant) -> list[ForwardingSender]:
    transport = participant.subscriber
    if transport is None:
        return []
    return [
        t.sender for t in transport.pc.getTransceivers() if isinstance(t.sender, ForwardingSender)
    ]


def _local_sdp(participant: Participant) -> str:
    transport = participant.subscriber
    description = transport.pc.localDescription if transport is not None else None
    return description.sdp if description is not None else ""


def _rtx_of(sdp: str) -> dict[int, int]:
    return {int(rtx): int(media) for media, rtx in _FID.findall(sdp)}


def _counters(obj: object) -> dict[str, int]:
    """The public integer counters of a consumer (whatever its version keeps)."""
    out = {
        name: value
        for name, value in getattr(obj, "__dict__", {}).items()
        if not name.startswith("_") and isinstance(value, int) and not isinstance(value, bool)
    }
    link = getattr(obj, "link", None)  # a LinkReport dataclass, where consumers have one
    if dataclasses.is_dataclass(link) and not isinstance(link, type):
        for field in dataclasses.fields(link):  # not asdict: it cannot copy a mappingproxy
            name, value = field.name, getattr(link, field.name)
            if isinstance(value, int) and not isinstance(value, bool):
                out[f"link.{name}"] = value
            elif isinstance(value, Mapping):
                for key, count in value.items():
                    out[f"link.{name}.{key}"] = int(count)
    return out


def _consumer_json(consumer: Consumer) -> dict[str, Any]:
    producer = consumer.producer
    return {
        "kind": consumer.kind,
        "producer": producer.id if producer is not None else None,
        "counters": _counters(consumer),
    }


class Observer:
    """The snapshot of one server process, and the keyframe counts of its producers."""

    def __init__(self) -> None:
        self.keyframes: dict[str, int] = {}  # producer id -> keyframes received
        self.frames: dict[str, int] = {}  # producer id -> video frames (marker bits)

    def participants(self, app: web.Application) -> Iterator[Participant]:
        for call in list(app[CALLS].calls.values()):
            yield from list(call.participants.values())

    def start(self, app: web.Application) -> None:
        global _WIRE
        self.keyframes.clear()
        self.frames.clear()
        rtx: set[int] = set()
        for participant in self.participants(app):
            rtx.update(int(pt) for pt in _RTX_MAP.findall(_local_sdp(participant)))
            for producer in participant.producers.values():
                self.keyframes[producer.id] = self.frames[producer.id] = 0
                producer.add_tap(self._count_frames)
        _WIRE = WireCount(frozenset(rtx))

    def _count_frames(self, producer: Producer, entry: CachedPacket) -> None:
        if producer.kind != "video":
            return
        if entry.marker:
            self.frames[producer.id] = self.frames.get(producer.id, 0) + 1
        if starts_keyframe(entry.codec.mimeType, entry.payload):
            self.keyframes[producer.id] = self.keyframes.get(producer.id, 0) + 1

    def snapshot(self, app: web.Application) -> dict[str, Any]:
        subscribers: dict[str, Any] = {}
        producers: dict[str, Any] = {}
        for participant in self.participants(app):
            if participant.subscriber is not None:
                subscribers[participant.id] = _subscriber(participant)
            for producer, requests in _producers(participant):
                producers[producer.id] = {
                    "participant_id": participant.id,
                    "user_id": participant.user_id,
                    "kind": producer.kind,
                    "source": producer.app_data.get("source"),
                    "packets_received": producer.packets_received,
                    "bytes_received": producer.bytes_received,
                    "frames": self.frames.get(producer.id),
                    "keyframes": self.keyframes.get(producer.id),
                    "keyframe_requests": requests,
                }
        return {
            "process_cpu": time.process_time(),
            "subscribers": subscribers,
            "producers": producers,
        }


def _subscriber(participant: Participant) -> dict[str, Any]:
    assert participant.subscriber is not None
    kinds = {sender.ssrc: sender.kind for sender in _senders(participant)}
    rtx_of = _rtx_of(_local_sdp(participant))
    packets, size = _WIRE.sent(set(kinds) | set(rtx_of))
    return {
        "user_id": participant.user_id,
        "wire": {"packets": packets, "bytes": size, "by_kind": _WIRE.by_kind(kinds, rtx_of)},
        "consumers": [_consumer_json(c) for c in participant.subscriber.consumers],
        "bandwidth": _bandwidth(participant.subscriber),
    }


def _bandwidth(transport: SubscriberTransport) -> dict[str, Any]:
    """The subscriber's estimate (sfu/bandwidth.py), if this version has one."""
    estimator = getattr(transport, "bandwidth", None)
    if estimator is None:
        return {}
    return {
        "estimate_bps": estimator.estimate_bps(time.monotonic()),
        "remb_bps": estimator.remb_bps,
        "rembs_received": estimator.rembs_received,
        "loss_bound_bps": estimator.loss_bound_bps,
        "pacing_bps": transport.pacer.pacing_bps,
        "held": len(transport.held),
    }


def _producers(participant: Participant) -> Iterator[tuple[Producer, int]]:
    """The participant's producers, each with the keyframe requests sent to its publisher."""
    transport = participant.publisher
    if transport is None:
        return
    receivers = {t.mid: t.receiver for t in transport.pc.getTransceivers()}
    for mid, producer in transport.producers.items():
        receiver = receivers.get(mid)
        yield producer, _KEYFRAME_REQUESTS.get(id(receiver), 0)


def _count_sent_rtp() -> None:
    """Show _WIRE every RTP packet a consumer sends, by either path."""
    fast_send = FastRtpPath.send
    slow_send = ForwardingSender.send_rtp

    def send(self: FastRtpPath, data: bytes) -> bool:
        sent = fast_send(self, data)
        if sent:
            _WIRE(data)
        return sent

    async def send_rtp(self: ForwardingSender, data: bytes) -> None:
        await slow_send(self, data)
        _WIRE(data)  # RTCP (sender reports) is told apart and left out there

    FastRtpPath.send = send  # type: ignore[method-assign]
    ForwardingSender.send_rtp = send_rtp  # type: ignore[method-assign]


def _count_keyframe_requests() -> None:
    """Count the PLIs each publisher is sent (wrapping our own receiver class, here only)."""
    original = ForwardingReceiver.request_keyframe

    async def request_keyframe(self: ForwardingReceiver, ssrc: int | None = None) -> None:
        _KEYFRAME_REQUESTS[id(self)] = _KEYFRAME_REQUESTS.get(id(self), 0) + 1
        await original(self, ssrc)

    ForwardingReceiver.request_keyframe = request_keyframe  # type: ignore[method-assign]


def add_routes(app: web.Application) -> None:
    observer = Observer()

    async def start(request: web.Request) -> web.Response:
        observer.start(request.app)
        return web.json_response(observer.snapshot(request.app))

    async def snapshot(request: web.Request) -> web.Response:
        return web.json_response(observer.snapshot(request.app))

    app.router.add_post(ROUTE, start)
    app.router.add_get(ROUTE, snapshot)


def install() -> None:
    """Make `urok serve` in this process build its app with the bench's routes."""
    create_app = signalling.app.create_app

    def create_observed_app(*args: Any, **kwargs: Any) -> web.Application:
        app = create_app(*args, **kwargs)
        add_routes(app)
        return app

    signalling.app.create_app = create_observed_app
    _count_sent_rtp()
    _count_keyframe_requests()


def main(argv: list[str] | None = None) -> int:
    install()
    from signalling.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
