"""Media ports an admin can open in a firewall: every ICE host socket of the node's peer
connections is bound to a port of one configured UDP range.

aioice binds its host sockets to port 0 (any ephemeral port) and has no option for a
range; sfu/aiortc_hooks.py's `gather_hosts_with` lets `MediaPorts.gather_hosts` make
them instead. A port in use (by another connection, another program) is skipped; a
range with no free port left is `MediaPortsExhausted`, logged and counted (the
`exhausted` count is the `urok_media_ports_exhausted_total` metric).

Ports needed: one per peer connection and ICE address, i.e. about two per participant
(publisher and subscriber connections) per address in `[ice] addresses`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aioice
import aioice.ice
import aioice.turn

logger = logging.getLogger(__name__)

# bind() errors that mean "this port, not the address, is unavailable": try the next.
_PORT_TAKEN = (errno.EADDRINUSE, errno.EACCES)
_STUN_TIMEOUT = 5.0  # aioice's own gathering timeout
_RETRY_ELSEWHERE_S = 5.0
# (connection, component, addresses) -> (host sockets' StunProtocols, other candidates)
HostGathering = Callable[
    [aioice.Connection, int, list[str]], Awaitable[tuple[list[Any], list[aioice.Candidate]]]
]


class MediaPortsExhausted(OSError):
    """No port of the configured media range is free on an address."""


@dataclass
class MediaPorts:
    """A UDP port range (both ends included) for the media sockets of one node."""

    first: int
    last: int
    exhausted: int = 0  # sockets asked for when none was free
    # The next bind starts after the last port handed out, not at the range's start:
    # a port just freed by a closed connection is taken last, so late packets of its
    # old peer do not reach a new connection, and a busy range is not rescanned.
    _cursor: int = field(default=0, repr=False)
    # The sockets handed out, by port: one still open (an asyncio transport closes it with
    # its connection) is skipped without a bind() call, so a busy range costs a lookup
    # per port in use, not three system calls.
    _handed: dict[int, socket.socket] = field(default_factory=dict, repr=False)
    # Ports another program held at the last try, skipped until then (monotonic time):
    # a range mostly held elsewhere costs its bind() calls once per this many seconds.
    _elsewhere: dict[int, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last <= 65535:
            raise ValueError(f"not a UDP port range: {self.first}-{self.last}")

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def bind(self, address: str) -> socket.socket:
        """A non-blocking UDP socket on `address` and the next free port of the range."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        now = time.monotonic()
        for step in range(self.size):
            offset = (self._cursor + step) % self.size
            port = self.first + offset
            ours = self._handed.get(port)
            if ours is not None and ours.fileno() != -1:
                continue
            if self._elsewhere.get(port, 0.0) > now:
                continue
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno in _PORT_TAKEN:
                    self._elsewhere[port] = now + _RETRY_ELSEWHERE_S
                    continue
                raise
            self._elsewhere.pop(port, None)
            self._handed[port] = sock
            self._cursor = (offset + 1) % self.size
            sock.setblocking(False)
            # As aioice sizes its own host sockets' receive buffers.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
            return sock
        self.exhausted += 1
        message = (
            f"no free UDP port for media on {address} in the range {self} ({self.size} ports"
            " all in use): widen [media] udp_ports"
        )
        logger.error(message)
        raise MediaPortsExhausted(errno.EADDRINUSE, message)

    async def gather_hosts(
        self, connection: aioice.Connection, component: int, addresses: list[str]
    ) -> tuple[list[aioice.ice.StunProtocol], list[aioice.Candidate]]:
        """What aioice's gathering does for host candidates, on sockets of the range:
        the host sockets' protocols, and server-reflexive candidates if the connection
        has a STUN server."""
        loop = asyncio.get_running_loop()
        protocols: list[aioice.ice.StunProtocol] = []
        try:
            for address in addresses:
                sock = self.bind(address)
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice.ice.StunProtocol(connection), sock=sock
                )
                protocol.local_candidate = _host_candidate(sock, component)
                protocols.append(protocol)
        except BaseException:
            for protocol in protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            raise
        return protocols, await _reflexive(protocols, connection.stun_server)


def _host_candidate(sock: socket.socket, component: int) -> aioice.Candidate:
    host, port = sock.getsockname()[:2]
    return aioice.Candidate(
        foundation=aioice.ice.candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=aioice.ice.candidate_priority(component, "host"),
        host=host,
        port=port,
        type="host",
    )


async def _reflexive(
    protocols: list[aioice.ice.StunProtocol], stun_server: tuple[str, int] | None
) -> list[aioice.Candidate]:
    # IPv4 only, as aioice; a STUN server that does not answer in time gives none.
    if stun_server is None:
        return []
    queries = [
        aioice.ice.server_reflexive_candidate(p, stun_server)
        for p in protocols
        if ":" not in p.local_candidate.host
    ]
    if not queries:
        return []
    found: list[aioice.Candidate] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_STUN_TIMEOUT):
            for result in await asyncio.gather(*queries, return_exceptions=True):
                if isinstance(result, tuple):
                    found.append(result[0])
    return found
