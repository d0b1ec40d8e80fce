"""HTTP hardening below the handlers: slow and idle connections, connections per address,
slow bodies, and quiet logs for malformed requests.

aiohttp has no header read timeout and no cap on connections, so the server's
listening socket is made with `GuardedSite` (instead of web.TCPSite): every
connection gets a thin `asyncio.Protocol` in front of aiohttp's own
RequestHandler (made by runner.server, the public protocol factory) which

- refuses a connection beyond `limits.max_connections_per_ip` open ones from
  the same address (429, closed at once);
- closes a connection that has not sent a request's complete headers (up to
  the blank line) within `limits.header_timeout_seconds`: from the moment it
  is accepted for the first request, from the request's first byte for the
  next ones on a kept-alive connection (aiohttp's keep-alive timeout closes
  it when idle). It follows Content-Length bodies to find the next request;
  after an Upgrade (the WebSocket) or a chunked body it stops watching.

`body_timeout` (a middleware) reads a request's body within
`limits.body_timeout_seconds` before the handler runs (the handler's own
read() then returns it at once), else answers 408 and closes.

aiohttp logs every malformed request (a header line over 8 KiB, a bad request
line) as "Error handling request" with a traceback at ERROR. `quiet_malformed_
requests` puts a logging.Filter on the "aiohttp.server" logger that drops those
records and logs instead one WARNING line per client address per
`limits.bad_request_log_seconds`, with how many were not logged in between.
Any other error keeps its traceback.

What is counted is in COUNTERS (process-wide; there is no metrics endpoint).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from signalling.cluster_peers import ClusterPeers
from signalling.config import LimitSettings, Settings
from signalling.frame_budget import FrameBudgets
from signalling.ratelimit import budget_address, client_key, trusted_proxy

log = logging.getLogger(__name__)

# "connections_refused", "header_timeouts", "body_timeouts", "malformed_requests".
COUNTERS: Counter[str] = Counter()

# A header block this long without its end is aiohttp's to refuse (8 KiB per line).
MAX_HEADER_BYTES = 64 * 1024
_REFUSAL_TEXT = b"Too many connections from this address.\r\n"
_REFUSAL = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 10\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n%s" % (len(_REFUSAL_TEXT), _REFUSAL_TEXT)
)

_HEADERS, _BODY, _IDLE = "headers", "body", "idle"


class ConnectionGuard:
    """Open connections per client address, and the settings every connection follows."""

    def __init__(
        self, settings: LimitSettings | None = None, peers: ClusterPeers | None = None
    ) -> None:
        self.settings = settings = settings or LimitSettings()
        self.peers = peers  # the cluster's nodes: they relay many clients each
        self.open: Counter[str] = Counter()
        # Requests are paced like WebSocket frames (frame_budget.py): past the
        # budget a connection is read later, so a flood slows its sender.
        self.requests = FrameBudgets(
            settings.http_requests_per_second,
            settings.http_request_burst,
            settings.http_requests_per_address_per_second,
        )

    def admit(self, key: str, address: str | None = None) -> bool:
        """Count one more connection of `key` (from `address`), unless over the cap."""
        cap = self.settings.max_connections_per_ip
        # A trusted reverse proxy carries every client's connections: capping it would
        # cap the node (the proxy can cap per client: nginx's limit_conn).
        if (
            cap
            and self.open[key] >= cap
            and not trusted_proxy(address or key, self.settings)
            and not (self.peers is not None and key in self.peers)
        ):
            return False
        self.open[key] += 1
        return True

    def release(self, key: str) -> None:
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]

    def protocol_factory(
        self, make_handler: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, make_handler)


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the cap and the header timeout."""

    def __init__(self, guard: ConnectionGuard, make_handler: Callable[[], asyncio.Protocol]):
        self._guard = guard
        self._make_handler = make_handler
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._key: str | None = None
        self._timeout = guard.settings.header_timeout_seconds
        self._watching = self._timeout > 0
        self._timer: asyncio.TimerHandle | None = None
        self._state = _HEADERS
        self._head = bytearray()
        self._remaining = 0
        self._address: str | None = None  # for the per-address budget (None: loopback)
        self._budget = guard.requests.connection()
        self._resume: asyncio.TimerHandle | None = None
        # A request held back by the budget: its bytes, and how long to hold them.
        self._held: bytearray | None = None
        self._hold_for = 0.0
        self._eof_held = False

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            key = client_key(str(peer[0]))
            if not self._guard.admit(key, str(peer[0])):
                COUNTERS["connections_refused"] += 1
                transport.write(_REFUSAL)
                transport.close()
                return
            self._key = key
            self._address = budget_address(str(peer[0]), self._guard.settings)
        self._inner = self._make_handler()
        if self._watching:
            self._arm()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._resume is not None:
            self._resume.cancel()
        self._watching = False
        if self._key is not None:
            self._guard.release(self._key)
            self._key = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._watching:
            self._watch(data)  # may ask to hold this request back (_pace)
        if self._held is not None or self._hold_for > 0:
            self._hold(data)
            return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._held is not None:
            self._eof_held = True  # after the held request
            return True
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # -------------------------------------------------------------- the header timeout

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop_watching(self) -> None:
        self._disarm()
        self._watching = False
        self._head = bytearray()

    def _timed_out(self) -> None:
        self._timer = None
        transport = self._transport
        if self._state != _HEADERS or transport is None or transport.is_closing():
            return
        COUNTERS["header_timeouts"] += 1
        log.debug("closed a connection from %s: no request headers in time", self._key)
        transport.close()

    def _watch(self, data: bytes) -> None:
        pos, size = 0, len(data)
        while pos < size and self._watching:
            if self._state == _BODY:
                taken = min(self._remaining, size - pos)
                self._remaining -= taken
                pos += taken
                if not self._remaining:
                    self._state = _IDLE
            elif self._state == _IDLE:
                # Line breaks between requests are allowed (and ignored).
                while pos < size and data[pos] in b"\r\n":
                    pos += 1
                if pos < size:
                    self._state = _HEADERS
                    self._arm()
            else:
                before = len(self._head)
                self._head += data[pos:]
                end = self._head.find(b"\r\n\r\n", max(before - 3, 0))
                if end < 0:
                    if len(self._head) > MAX_HEADER_BYTES:
                        self._stop_watching()  # aiohttp refuses it
                    return
                pos += end + 4 - before
                head = bytes(self._head[:end])
                self._head = bytearray()
                self._disarm()
                self._after_headers(head)

    def _pace(self) -> None:
        """A request's head is in: past the budget, it reaches aiohttp later, and the
        connection is not read meanwhile (so also a new connection per request waits)."""
        wait = self._guard.requests.wait(self._address, self._budget)
        if wait > 0:
            COUNTERS["requests_delayed"] += 1
            self._hold_for = max(self._hold_for, wait)

    def _hold(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        if self._held is None:
            self._held = bytearray()
            transport.pause_reading()
        self._held += data
        if self._hold_for > 0:
            release_at = loop.time() + self._hold_for
            self._hold_for = 0.0
            if self._resume is None or release_at > self._resume.when():
                if self._resume is not None:
                    self._resume.cancel()
                self._resume = loop.call_at(release_at, self._release)

    def _release(self) -> None:
        self._resume = None
        held, self._held = self._held, None
        transport = self._transport
        if self._inner is None or transport is None or transport.is_closing():
            return
        transport.resume_reading()
        if held:
            self._inner.data_received(bytes(held))
        if self._eof_held:
            self._eof_held = False
            self._inner.eof_received()

    def _after_headers(self, head: bytes) -> None:
        self._pace()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name in (b"upgrade", b"transfer-encoding"):
                self._stop_watching()
                return
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self._stop_watching()  # aiohttp refuses it
                    return
        self._state = _BODY if length > 0 else _IDLE
        self._remaining = length


class GuardedSite(web.BaseSite):
    """web.TCPSite with every connection behind a ConnectionGuard (and quiet logs)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        backlog: int = 128,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.host = host
        self.port = port
        self.guard = guard
        # Several processes on one port (`--workers`), or a socket bound beforehand.
        self.reuse_port = reuse_port
        self.sock = sock

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self.host, port=self.port))

    async def start(self) -> None:
        await super().start()
        quiet_malformed_requests(self.guard.settings.bad_request_log_seconds)
        server = self._runner.server
        assert server is not None
        factory = self.guard.protocol_factory(server)
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self._server = await loop.create_server(factory, sock=self.sock, backlog=self._backlog)
            return
        self._server = await loop.create_server(
            factory, self.host, self.port, backlog=self._backlog, reuse_port=self.reuse_port or None
        )


# ------------------------------------------------------------------ request bodies

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def body_timeout(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Read the body within limits.body_timeout_seconds, else 408 (and close)."""
    from signalling.keys import SETTINGS

    timeout = request.app[SETTINGS].limits.body_timeout_seconds
    if timeout and request.can_read_body:
        try:
            async with asyncio.timeout(timeout):
                await request.read()  # kept by aiohttp: the handler's read() returns it
        except TimeoutError:
            COUNTERS["body_timeouts"] += 1
            response = web.json_response(
                {
                    "error": {
                        "code": "body_timeout",
                        "message": f"The request body did not arrive within {timeout:g} s.",
                    }
                },
                status=408,
            )
            response.force_close()
            return response
    return await handler(request)


def setup(app: web.Application, settings: Settings) -> None:
    """The body timeout; call after signalling.api.setup (inside its JSON errors)."""
    if settings.limits.body_timeout_seconds:
        app.middlewares.append(body_timeout)


# ------------------------------------------------------------------ quiet logs


class MalformedRequestLog(logging.Filter):
    """Drops aiohttp's tracebacks for malformed requests; one WARNING per address per interval."""

    MAX_ADDRESSES = 10_000

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        # address -> (when it was last reported, how many since then not reported)
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not str(record.msg).startswith(
            "Error handling request"
        ):
            return True
        COUNTERS["malformed_requests"] += 1
        args: Any = record.args
        address = str(args[0]) if isinstance(args, tuple) and args else "-"
        now = self.clock()
        last = self._seen.get(address)
        if last is not None and now - last[0] < self.interval:
            self._seen[address] = (last[0], last[1] + 1)
            return False
        if len(self._seen) >= self.MAX_ADDRESSES:
            self._seen = {a: s for a, s in self._seen.items() if now - s[0] < self.interval}
            if len(self._seen) >= self.MAX_ADDRESSES:
                self._seen.clear()
        self._seen[address] = (now, 0)
        reason = (getattr(exc, "message", "") or type(exc).__name__).replace("\n", " ")[:160]
        log.warning(
            "malformed HTTP request from %s (%s): %s; %d more from this address since the "
            "last report (reported at most every %g s)",
            address,
            type(exc).__name__,
            reason,
            last[1] if last is not None else 0,
            self.interval,
        )
        return False


def quiet_malformed_requests(interval: float) -> MalformedRequestLog | None:
    """Install (or retune) the filter on "aiohttp.server"; interval 0 removes it."""
    logger = logging.getLogger("aiohttp.server")
    current = next((f for f in logger.filters if isinstance(f, MalformedRequestLog)), None)
    if not interval:
        if current is not None:
            logger.removeFilter(current)
        return None
    if current is None:
        current = MalformedRequestLog(interval)
        logger.addFilter(current)
    current.interval = interval
    return current
