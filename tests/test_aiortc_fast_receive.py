"""sfu/aiortc_fast_receive.py: SRTP handled from the datagram callback, in order.

Real peer connections on loopback: a client whose ForwardingSender sends numbered
RTP packets to a PublisherTransport; what the producer forwards is seen by a sink.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import logging
import socket
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.clock import current_ms
from aiortc.rtp import RtpPacket

import sfu.aiortc_fast_receive
from sfu.aiortc_fast_receive import (
    PINNED,
    FastReceive,
    fast_receive_of,
    missing_at_import,
    ntp_now_ms,
)
from sfu.aiortc_hooks import ForwardingSender
from sfu.ice import rtc_configuration
from sfu.layers import Layer
from sfu.producer import CachedPacket, Producer
from sfu.transport import PublisherTransport
from tests.sfu_support import transport_options


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class Sink:
    """A consumer as the producer sees it (PacketSink): records sequence numbers; the
    packet numbered `hold_at` waits for `gate` (its handling suspends) or raises."""

    def __init__(self, hold_at: int | None = None, fail_at: int | None = None) -> None:
        self.seqs: list[int] = []
        self.hold_at, self.fail_at = hold_at, fail_at
        self.gate = asyncio.Event()
        self.cancelled = False

    def forward(self, entry: CachedPacket, now: float) -> Coroutine[Any, Any, None] | None:
        self.seqs.append(entry.seq)
        if entry.seq == self.fail_at:
            raise RuntimeError("a consumer's bug")
        return self._held() if entry.seq == self.hold_at else None

    async def _held(self) -> None:
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def source_resumed(self) -> None:
        pass

    def offered_layers(self, layers: Sequence[Layer], now: float) -> Sequence[int]:
        return range(len(layers))

    def detach(self) -> None:
        pass


class Publishing:
    """A connected client and PublisherTransport with one video producer."""

    transport: PublisherTransport
    pc: RTCPeerConnection
    producer: Producer
    sender: ForwardingSender

    async def __aenter__(self) -> Publishing:
        self.transport = PublisherTransport(transport_options())
        self.pc = RTCPeerConnection(rtc_configuration([]))
        transceiver = self.pc.addTransceiver("video", direction="sendonly")
        self.sender = ForwardingSender.adopt(transceiver.sender)  # no encoder: our packets
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer, (self.producer,) = await self.transport.handle_offer(
            self.pc.localDescription.sdp, {"0": {}}
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await until(lambda: self.sender.started and self.transport.connection_state == "connected")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()
        await self.pc.close()

    @property
    def dtls(self) -> Any:
        return self.transport.pc.getTransceivers()[0].receiver.transport

    @property
    def path(self) -> FastReceive:
        path = fast_receive_of(self.dtls)
        assert path is not None
        return path

    async def send(self, seqs: range) -> None:
        payload_type = self.sender.negotiated_codecs[0].payloadType
        for seq in seqs:
            packet = RtpPacket(payload_type=payload_type, sequence_number=seq, timestamp=seq * 3000)
            packet.ssrc = self.sender.ssrc
            packet.payload = b"\x10\x00frame %d" % seq
            await self.sender.send_rtp(packet.serialize())

    def send_raw(self, data: bytes) -> None:
        """A datagram to the server's socket of the connection, from another socket
        (asyncio's own would not send an empty one)."""
        pair = self.dtls.transport._connection._nominated[1]  # test-side: aioice's
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(data, (pair.local_candidate.host, pair.local_candidate.port))

    async def rx_packets(self) -> int:
        stats = await self.transport.pc.getStats()
        return sum(s.packetsReceived for s in stats.values() if s.type == "transport")


async def test_packets_arrive_in_order_through_the_fast_path() -> None:
    async with Publishing() as p:
        sink = Sink()
        p.producer.add_consumer(sink)
        before = p.path.fast, await p.rx_packets()
        await p.send(range(200))
        await until(lambda: len(sink.seqs) == 200)
        assert sink.seqs == list(range(200))
        assert p.path.on and p.path.fast - before[0] >= 200 and p.path.deferred == 0
        # aiortc's transport statistics still count what arrives.
        assert await p.rx_packets() - before[1] >= 200


async def test_srtp_is_not_parsed_as_stun_and_stun_still_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aioice.ice  # test-side: which datagrams aioice's parser sees

    parsed: list[int] = []
    parse = aioice.ice.stun.parse_message

    def counting(data: bytes) -> Any:
        parsed.append(data[0])
        return parse(data)

    monkeypatch.setattr(aioice.ice.stun, "parse_message", counting)
    async with Publishing() as p:
        connection = p.dtls.transport._connection  # test-side: aioice's
        demuxed = [q for q in connection._protocols if "datagram_received" in vars(q)]
        assert demuxed  # the socket's own method, while the path is on
        sink = Sink()
        p.producer.add_consumer(sink)
        parsed.clear()
        await p.send(range(50))
        await until(lambda: len(sink.seqs) == 50)
        assert [b for b in parsed if 127 < b < 192] == []  # no SRTP went through STUN
        # The client's consent checks (STUN) still reach aioice: answered, still up.
        checks = len(parsed)
        await connection_checked(p, checks, parsed)
        await p.transport.close()
        await until(lambda: p.dtls.state == "closed")
        assert all("datagram_received" not in vars(q) for q in demuxed)  # aioice's again


async def connection_checked(p: Publishing, before: int, parsed: list[int]) -> None:
    """A binding request from the client (as its consent check) is parsed by aioice."""
    client = p.pc.getTransceivers()[0].sender.transport.transport._connection
    (pair,) = client._nominated.values()
    request = client.build_request(pair, nominate=False)
    await pair.protocol.request(request, pair.remote_addr, client.remote_password.encode())
    assert len(parsed) > before and parsed[-1] < 4  # a STUN message (first byte 0-3)


async def test_a_suspended_handling_keeps_later_packets_behind_it() -> None:
    async with Publishing() as p:
        sink = Sink(hold_at=5)
        p.producer.add_consumer(sink)
        await p.send(range(20))
        await until(lambda: p.path.fast >= 20)
        await asyncio.sleep(0.1)
        # 6..19 have arrived, but wait behind 5, whose handling waits for the gate.
        assert sink.seqs == list(range(6))
        sink.gate.set()
        await until(lambda: len(sink.seqs) == 20)
        assert sink.seqs == list(range(20)) and p.path.deferred == 14
        # Drained: the next packets are handled at once again.
        await p.send(range(20, 30))
        await until(lambda: len(sink.seqs) == 30)
        assert sink.seqs == list(range(30)) and p.path.deferred == 14


async def test_srtp_queued_before_the_switch_is_taken_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    switch_on, seen = FastReceive._switch_on, {}

    def queued_first(path: FastReceive) -> None:
        # What came between the handshake and "connected", waiting for aiortc's task.
        queue = path._dtls.transport._connection._queue  # test-side: aioice's
        queue.put_nowait((b"\x80\x60" + bytes(30), 1))  # SRTP (garbage: dropped)
        queue.put_nowait((b"\x17\xfe\xfd" + bytes(20), 1))  # DTLS: stays for aiortc
        switch_on(path)
        seen.update(queue=[data[0] for data, _ in queue._queue], fast=path.fast)
        seen.update(draining=path._task is not None)

    monkeypatch.setattr(FastReceive, "_switch_on", queued_first)
    async with Publishing() as p:
        assert seen == {"queue": [0x17], "fast": 1, "draining": True}
        sink = Sink()
        p.producer.add_consumer(sink)
        await p.send(range(10))
        await until(lambda: len(sink.seqs) == 10)
        assert sink.seqs == list(range(10)) and p.path.fast >= 11 and p.path.deferred == 1
        assert p.dtls.state == "connected"


async def test_closing_the_dtls_transport_turns_it_off() -> None:
    async with Publishing() as p:
        sink = Sink(hold_at=3)
        p.producer.add_consumer(sink)
        await p.send(range(10))
        await until(lambda: p.path.fast >= 10)
        connection = p.dtls.transport._connection  # test-side: aioice's Connection
        assert "data_received" in vars(connection)
        path = p.path
        await p.transport.close()
        await until(lambda: p.dtls.state == "closed")
        # The handling under way is cancelled with the transport, as aiortc's task is,
        # and nothing waiting behind it runs; aioice's own method is back.
        assert not path.on and "data_received" not in vars(connection)
        await until(lambda: sink.cancelled)
        await asyncio.sleep(0.05)
        assert sink.seqs == [0, 1, 2, 3]


async def test_the_remote_closing_dtls_turns_it_off() -> None:
    async with Publishing() as p:
        path, connection = p.path, p.dtls.transport._connection
        await p.pc.close()  # the client's DTLS close_notify ends the server's transport
        await until(lambda: p.dtls.state == "closed")
        assert not path.on and "data_received" not in vars(connection)


async def test_a_closed_transport_and_its_path_are_freed() -> None:
    async with Publishing() as p:
        path = weakref.ref(p.path)
        dtls = weakref.ref(p.dtls)
        await p.send(range(5))
        await asyncio.sleep(0.1)
        assert p.path.fast >= 5
    del p
    await asyncio.sleep(0.1)
    gc.collect()
    assert path() is None and dtls() is None


async def test_garbage_and_failing_handlings_do_not_break_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Publishing() as p:
        sink = Sink(fail_at=2)
        p.producer.add_consumer(sink)
        for garbage in (b"", b"\x80", b"\x80\x60" + bytes(30), b"\xbf" * 1200, b"\x90junk"):
            p.send_raw(garbage)
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="sfu.aiortc_fast_receive"):
            await p.send(range(5))
            await until(lambda: len(sink.seqs) == 5)
        assert sink.seqs == list(range(5)) and p.path.on and p.path.errors == 1
        assert "a consumer's bug" in caplog.text
        # aiortc's own receive task (DTLS) is still running: it would end on b"".
        assert p.dtls.state == "connected" and not p.dtls._task.done()


async def test_without_the_pinned_names_aiortc_receives_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sfu.aiortc_fast_receive, "MISSING", ["RTCDtlsTransport._rx_srtp"])
    async with Publishing() as p:
        sink = Sink(hold_at=5)
        p.producer.add_consumer(sink)
        assert fast_receive_of(p.dtls) is None
        await p.send(range(20))
        await asyncio.sleep(0.2)
        assert sink.seqs == list(range(6))
        sink.gate.set()
        await until(lambda: len(sink.seqs) == 20)
        assert sink.seqs == list(range(20))


def test_arrival_times_are_aiortcs_clock() -> None:
    # The arrival time each packet is handed with is what aiortc's own path gives
    # (clock.current_ms: ms since 1900), made without datetimes.
    for _ in range(100):
        before, ours, after = current_ms(), ntp_now_ms(), current_ms()
        assert before - 1 <= ours <= after + 1


def test_a_missing_name_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    assert missing_at_import() == []
    owner, name = next((c, n) for c, n, on_instance in PINNED if not on_instance)
    monkeypatch.delattr(owner, name)
    assert missing_at_import() == [f"{owner.__name__}.{name}"]


async def test_a_missing_instance_name_leaves_the_transport_on_aiortcs_path() -> None:
    async with Publishing() as p:
        del p.dtls._rx_srtp  # test-side: as an aiortc without it
        path = FastReceive(p.dtls)
        assert not path.on and path.fast == 0
        assert sfu.aiortc_fast_receive.missing_on(p.dtls) == ["RTCDtlsTransport._rx_srtp"]


def test_every_private_name_the_module_uses_is_pinned() -> None:
    tree = ast.parse(inspect.getsource(sfu.aiortc_fast_receive))
    used, own = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                own.add(node.attr)
            else:
                used.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            own.add(node.name)
    used = {n for n in used if not (n.startswith("__") and n.endswith("__"))}
    pinned = {name for _, name, _ in PINNED if name.startswith("_")}  # and data_received
    assert used - own - pinned == set(), "add them to PINNED"
    assert pinned - used == set()
