"""The baseline the bench compares the SFU with: relaying through aiortc's MediaRelay.

    python -m bench.baseline serve --port 8090   (same options as `urok serve`)

This is how an aiortc application usually relays a call: each publisher's
track goes through aiortc's normal RTCRtpReceiver (jitter buffer + decoder
thread), MediaRelay hands the decoded frames to one proxy track per
subscriber, and each subscriber's normal RTCRtpSender encodes them again.

It is the real server (signalling, rooms, protocol, the same bots work) with
the two transport classes of sfu.router swapped, in this process only, for
subclasses that relay decoded frames instead of forwarding packets. Nothing
here is imported by the server itself: the forwarding path in sfu/ stays free
of decode/encode code. It is a measuring stick, not a product: a slot freed
by a leaving publisher is not reused (a new m-section is added instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpTransceiver, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

import sfu.router
from sfu.subscriber_transport import SubscriberTransport, _Slot
from sfu.transport import PublisherTransport, SdpError

logger = logging.getLogger(__name__)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


class _GatedTrack(MediaStreamTrack):
    """A relay proxy that passes frames on only while its producer is not paused."""

    def __init__(self, source: MediaStreamTrack, producer: RelayProducer) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._producer = producer

    async def recv(self) -> Any:
        while True:
            frame = await self._source.recv()
            if not self._producer.paused:
                return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class RelayProducer:
    """A decoded incoming track, relayed to any number of subscribers.

    Duck-types sfu.producer.Producer for rooms.calls (id, kind, app_data,
    closed, paused, pause(), resume(), request_keyframe(), close()).
    """

    def __init__(self, kind: str, track: MediaStreamTrack, app_data: dict[str, Any]) -> None:
        self.id = _new_id("pr")
        self.kind = kind
        self.track = track
        self.app_data = app_data
        self.closed = False
        self.paused = False
        self.transport_id: str | None = None  # the publisher transport it came on
        self.relay = MediaRelay()
        # Keep reading the decoded track even with no subscriber started yet:
        # aiortc's receiver queues decoded frames without bound otherwise.
        self._drain = asyncio.ensure_future(self._discard(self.relay.subscribe(track, False)))

    @staticmethod
    async def _discard(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()

    def subscribe(self) -> MediaStreamTrack:
        return _GatedTrack(self.relay.subscribe(self.track, buffered=False), self)

    def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False

    async def request_keyframe(self) -> None:
        """Nothing to do: each subscriber's encoder makes its own keyframes."""

    def close(self) -> None:
        self.closed = True
        self._drain.cancel()


class RelayConsumer:
    """A relayed track on a normal RTCRtpSender towards one subscriber (which re-encodes)."""

    def __init__(self, kind: str) -> None:
        self.id = _new_id("co")
        self.kind = kind
        self.producer: RelayProducer | None = None
        self.track: MediaStreamTrack | None = None

    def detach(self) -> None:
        if self.track is not None:
            self.track.stop()  # the sender's encoder loop ends with it
        self.track = None
        self.producer = None

    def close(self) -> None:
        self.detach()


class RelayPublisherTransport(PublisherTransport):
    async def handle_offer(  # type: ignore[override]
        self, sdp: str, app_data_by_mid: dict[str, dict[str, Any]]
    ) -> tuple[str, list[RelayProducer]]:
        if self.closed:
            raise SdpError("transport closed")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:
            raise SdpError(f"cannot apply offer: {exc}") from exc
        new: list[RTCRtpTransceiver] = [
            t
            for t in self.pc.getTransceivers()
            if t.mid is not None
            and t.mid not in self.producers
            and t.direction in ("recvonly", "sendrecv")
        ]
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise SdpError(f"cannot answer offer: {exc}") from exc
        created = []
        for transceiver in new:
            mid = transceiver.mid
            assert mid is not None
            producer = RelayProducer(
                transceiver.kind, transceiver.receiver.track, dict(app_data_by_mid.get(mid, {}))
            )
            producer.transport_id = self.id
            self.producers[mid] = producer  # type: ignore[assignment]
            created.append(producer)
        return self._local_sdp(), created


class RelaySubscriberTransport(SubscriberTransport):
    def consume(self, producer: RelayProducer, pinned: bool = False) -> RelayConsumer:  # type: ignore[override]
        if self.closed:
            raise RuntimeError("transport closed")
        for slot in self._slots:
            if slot.consumer.producer is producer:
                return slot.consumer  # type: ignore[return-value]
        track = producer.subscribe()
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        consumer = RelayConsumer(producer.kind)
        consumer.producer = producer
        consumer.track = track
        self._slots.append(_Slot(transceiver, consumer))  # type: ignore[arg-type]
        self.request_negotiation()
        return consumer

    def stop_consuming(self, producer: RelayProducer) -> None:  # type: ignore[override]
        for slot in self._slots:
            if slot.consumer.producer is producer:
                slot.consumer.detach()
                self.request_negotiation()


def install() -> None:
    """Make sfu.router build relaying transports (in this process)."""
    sfu.router.PublisherTransport = RelayPublisherTransport  # type: ignore[misc]
    sfu.router.SubscriberTransport = RelaySubscriberTransport  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    install()
    from signalling.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
