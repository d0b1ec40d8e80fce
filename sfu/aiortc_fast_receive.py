"""Receive SRTP without aioice's queue and aiortc's receive task (issue 11).

aioice's `Connection.data_received` puts every datagram on an asyncio.Queue, and
aiortc's `RTCDtlsTransport.__run` task wakes up for each one to `_recv_next` it: 3-5 µs
a packet of CPU (bench/receive_cost.py; docs/performance.md).
Once a DTLS transport is connected (handshake done, SRTP keys set up) a FastReceive
takes the place of its connection's `data_received`: an SRTP or SRTCP datagram (first
byte 128-191) is counted, unprotected and handled at once, as `_recv_next` would
(`_handle_rtp_data` / `_handle_rtcp_data`, whose coroutine is driven by hand). DTLS
and anything else still go to the queue and `__run` (STUN never reaches it); an empty
datagram is dropped (`_recv_next` would end `__run` on it).

Order is `__run`'s: one datagram after the other. A handling that suspends (it awaits
a future: a slow send) holds up the rest of its transport's datagrams in a backlog that
one task drains, in arrival order, after it. An error is logged and the packet dropped,
never the path (SRTP errors at debug, as aiortc). The switch is per transport: off
when its DTLS transport leaves "connected" (a running backlog is cancelled, as `__run`
is), and never on if a pinned name is missing or the versions differ (aiortc's own
path then, as before). The private names are PINNED below and checked at import
(class attributes) and per transport (instance attributes);
tests/test_aiortc_fast_receive.py checks that the list is complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import aioice
import aioice.ice
import aiortc
import pylibsrtp
from aiortc import RTCDtlsTransport, RTCIceTransport, RTCPeerConnection
from aiortc.rtp import is_rtcp

logger = logging.getLogger(__name__)

PINNED_AIORTC = "1.16.0"
PINNED_AIOICE = "0.13.0"
# aiortc's and aioice's private names used here: (class, name, set by the constructor).
PINNED: tuple[tuple[type, str, bool], ...] = (
    (RTCDtlsTransport, "_handle_rtp_data", False),
    (RTCDtlsTransport, "_handle_rtcp_data", False),
    (RTCDtlsTransport, "_rx_srtp", True),
    (RTCDtlsTransport, "_RTCDtlsTransport__rx_bytes", True),
    (RTCDtlsTransport, "_RTCDtlsTransport__rx_packets", True),
    (RTCIceTransport, "_connection", True),
    (aioice.ice.Connection, "_queue", True),
    (aioice.ice.Connection, "_protocols", True),
    (aioice.ice.Connection, "data_received", False),
    (aioice.ice.StunProtocol, "datagram_received", False),
)


def missing_at_import() -> list[str]:
    """What of PINNED the installed classes lack, and differing versions."""
    missing = [f"{c.__name__}.{n}" for c, n, inst in PINNED if not inst and not hasattr(c, n)]
    if aiortc.__version__ != PINNED_AIORTC:
        missing.append(f"aiortc version {aiortc.__version__} != {PINNED_AIORTC}")
    if aioice.__version__ != PINNED_AIOICE:
        missing.append(f"aioice version {aioice.__version__} != {PINNED_AIOICE}")
    return missing


def missing_on(dtls: RTCDtlsTransport) -> list[str]:
    """What of PINNED's instance attributes this transport (or its connection) lacks."""
    objects: dict[type, object] = {RTCDtlsTransport: dtls, RTCIceTransport: dtls.transport}
    objects[aioice.ice.Connection] = getattr(dtls.transport, "_connection", None)
    return [f"{c.__name__}.{n}" for c, n, inst in PINNED if inst and not hasattr(objects[c], n)]


MISSING = missing_at_import()
if MISSING:
    logger.warning("fast SRTP receiving off, aiortc/aioice differ: %s", ", ".join(MISSING))

_ERROR_LOG_EVERY = 1000  # a handling failing on every packet: one log line per this many
# Our attribute on the DTLS transport (a dict would keep every transport alive).
_ATTRIBUTE = "urok_fast_receive"


def receive_fast(pc: RTCPeerConnection) -> None:
    """Give each new DTLS transport of `pc` a FastReceive (before it connects: one
    already connected keeps aiortc's path). Call before each setLocalDescription."""
    if MISSING:
        return
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if isinstance(dtls, RTCDtlsTransport) and fast_receive_of(dtls) is None:
            setattr(dtls, _ATTRIBUTE, FastReceive(dtls))


def fast_receive_of(dtls: object) -> FastReceive | None:
    path = getattr(dtls, _ATTRIBUTE, None)
    return path if isinstance(path, FastReceive) else None


# From the Unix epoch (time.time) to the NTP epoch (1900), aiortc's clock's.
NTP_UNIX_OFFSET_S = 2_208_988_800


def ntp_now_ms() -> int:
    """aiortc's `clock.current_ms()` (ms since 1900, what `_handle_rtp_data` takes as a
    packet's arrival time) from time.time(): the same clock without the two datetimes
    it makes for every packet (0.6 -> 0.17 us here)."""
    return int((time.time() + NTP_UNIX_OFFSET_S) * 1000)


class FastReceive:
    """The fast path of one DTLS transport: on while the transport is connected."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.fast = 0  # SRTP/SRTCP datagrams taken (handled at once or via the backlog)
        self.deferred = 0  # of those, the ones that waited in the backlog
        self.errors = 0  # handlings that raised (logged, packet dropped)
        self.on = False
        self._dtls = dtls
        self._stats: Any = dtls  # aiortc's name-mangled counters, unknown to mypy
        self._ice_connection: Any = None
        self._protocols: list[aioice.ice.StunProtocol] = []  # ours: `_demux` (instance attr)
        self._backlog: deque[tuple[bytes, int]] = deque()
        self._task: asyncio.Future[None] | None = None
        missing = missing_on(dtls)
        if missing:
            logger.warning("fast SRTP receiving off for a transport: %s", ", ".join(missing))
            return
        if dtls.state in ("new", "connecting"):  # `__run` has not started yet
            dtls.on("statechange", self._on_statechange)

    def _on_statechange(self) -> None:
        # Emitted synchronously by aiortc; "connected" before `__run` is even scheduled.
        if self._dtls.state == "connected" and not self.on:
            self._switch_on()
        elif self._dtls.state != "connected" and self.on:
            self._switch_off()

    def _switch_on(self) -> None:
        connection: Any = self._dtls.transport._connection
        queue: asyncio.Queue[tuple[bytes, int] | None] = connection._queue
        # SRTP that came between the handshake and now goes first, in order; the
        # rest (DTLS, the end-of-connection None) stays for `__run`.
        kept = []
        now = ntp_now_ms()
        while not queue.empty():
            item = queue.get_nowait()
            if item is not None and item[0] and 127 < item[0][0] < 192:
                self._backlog.append((item[0], now))
                self._count(item[0])
            else:
                kept.append(item)
        for item in kept:
            queue.put_nowait(item)
        self._ice_connection = connection
        connection.data_received = self._datagram
        for protocol in connection._protocols:
            if type(protocol) is aioice.ice.StunProtocol:  # not a TURN relay's
                candidate = getattr(protocol, "local_candidate", None)
                if candidate is not None:
                    demux = self._demux(protocol, candidate.component)
                    protocol.datagram_received = demux  # type: ignore[method-assign,assignment]
                    self._protocols.append(protocol)
        self.on = True
        if self._backlog:
            self._task = asyncio.ensure_future(self._drain(None, None))

    def _switch_off(self) -> None:
        self.on = False
        if self._ice_connection is not None and "data_received" in vars(self._ice_connection):
            del self._ice_connection.data_received  # aioice's own method again
        for protocol in self._protocols:
            if "datagram_received" in vars(protocol):
                del protocol.datagram_received  # aioice's again
        self._protocols.clear()
        if self._task is not None:
            self._task.cancel()  # as aiortc cancels `__run` and the packet it handles
        self._backlog.clear()

    def _demux(
        self, protocol: aioice.ice.StunProtocol, component: int
    ) -> Callable[[bytes, tuple[Any, ...]], None]:
        """The socket's `datagram_received`: SRTP and SRTCP (first byte 128-191, RFC 7983)
        straight to `_datagram`. aioice's parses every datagram as STUN first and takes the
        ValueError as "not STUN" (0.87 us a packet against 0.10 us here); STUN and DTLS
        still go its way."""
        aioice_received = protocol.datagram_received  # the class's, bound
        datagram = self._datagram

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if data and 127 < data[0] < 192:
                datagram(data, component)
            else:
                aioice_received(data, addr)

        return datagram_received

    def _count(self, data: bytes) -> None:
        self.fast += 1
        stats = self._stats
        stats._RTCDtlsTransport__rx_bytes += len(data)
        stats._RTCDtlsTransport__rx_packets += 1

    def _datagram(self, data: bytes, component: int) -> None:
        """aioice's `Connection.data_received`, for this transport's connection."""
        if not data:
            return  # nothing to handle (and `_recv_next` would end `__run` on it)
        if not 127 < data[0] < 192:
            self._ice_connection._queue.put_nowait((data, component))
            return
        self.fast += 1
        stats = self._stats
        stats._RTCDtlsTransport__rx_bytes += len(data)
        stats._RTCDtlsTransport__rx_packets += 1
        arrived = ntp_now_ms()
        if self._task is not None:  # earlier packets still being handled: after them
            self._backlog.append((data, arrived))
            return
        coro = self._start(data, arrived)
        if coro is None:
            return
        try:
            waiting_for = coro.send(None)
        except StopIteration:
            return
        except (Exception, asyncio.CancelledError):
            self._failed()
            return
        self._task = asyncio.ensure_future(self._drain(coro, waiting_for))

    def _start(self, data: bytes, arrival_ms: int) -> Coroutine[Any, Any, None] | None:
        """What `_recv_next` does with an SRTP datagram, up to its coroutine."""
        dtls = self._dtls
        try:
            if is_rtcp(data):
                return dtls._handle_rtcp_data(dtls._rx_srtp.unprotect_rtcp(data))
            return dtls._handle_rtp_data(dtls._rx_srtp.unprotect(data), arrival_ms)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return None

    async def _drain(self, coro: Coroutine[Any, Any, None] | None, waiting_for: Any) -> None:
        """The suspended handling to its end, then the backlog, one after the other."""
        try:
            if coro is not None:
                await self._handled(_Resumed(coro, waiting_for))
            backlog = self._backlog
            while backlog:
                data, arrival_ms = backlog.popleft()
                self.deferred += 1
                started = self._start(data, arrival_ms)
                if started is not None:
                    await self._handled(started)
        finally:
            self._task = None

    async def _handled(self, awaitable: Any) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # ours (the transport closes); else the handling's own: logged
            self._failed()
        except Exception:
            self._failed()

    def _failed(self) -> None:
        self.errors += 1
        if self.errors % _ERROR_LOG_EVERY == 1:
            logger.warning(
                "handling a received packet failed (%d so far)", self.errors, exc_info=True
            )


class _Resumed:
    """Awaits a coroutine that has already run up to its first suspension (it gave
    `waiting_for`), as `yield from` would have from there on."""

    __slots__ = ("_coro", "_waiting_for")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_for: Any) -> None:
        self._coro, self._waiting_for = coro, waiting_for

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._waiting_for
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task: into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return
