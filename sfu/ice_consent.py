"""ICE consent (RFC 7675) on our side: the peer's checks are its consent; we send none.

aioice, as a full ICE agent, sends a consent check (a STUN binding request with
MESSAGE-INTEGRITY, and a transaction waiting for its answer) on every nominated
pair every 4-6 s, and the peer does the same to us: four STUN messages per
connection in that time, two connections per participant. With nothing else
flowing that was the largest part of what a connected participant costs
(docs/performance.md, "upkeep"). A server needs only one direction: as
mediasoup's ICE-lite transports do, ours sends no checks of its own and takes
each authenticated binding request from the peer (aioice has checked its
USERNAME and MESSAGE-INTEGRITY, keyed with our ICE password, before
`check_incoming`) as consent; without one for CONSENT_TIMEOUT it closes the
connection, as aioice does after six unanswered checks (30 s). Browsers check
every 2.5 s, aiortc clients every 5 s; a peer that vanishes stops checking, so
nothing is sent to an address that no longer wants it for longer than before.

Only public aioice names are used (`Connection.query_consent`, which aioice starts
as a task once connected, and `check_incoming`, which it calls for each
authenticated request), replaced on our connections' instances only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aioice
from aiortc import RTCPeerConnection

from sfu.aiortc_hooks import ice_connections

logger = logging.getLogger(__name__)

# RFC 7675 section 5.1: consent expires 30 s after the last one was granted.
CONSENT_TIMEOUT = 30.0
# How often a connection looks at the time of the peer's last check.
CONSENT_LOOK = 5.0


class PeerConsent:
    """When the peer of one aioice connection last checked us; its consent task."""

    __slots__ = ("_check_incoming", "closing", "connection", "last_check")

    def __init__(self, connection: aioice.Connection) -> None:
        self.connection = connection
        self.last_check = time.monotonic()
        self._check_incoming = connection.check_incoming
        self.closing: asyncio.Future[None] | None = None

    def check_incoming(self, message: Any, addr: tuple[str, int], protocol: Any) -> None:
        """An authenticated binding request from the peer: its consent (then aioice's own
        handling: a triggered check, nomination)."""
        self.last_check = time.monotonic()
        self._check_incoming(message, addr, protocol)

    async def query_consent(self) -> None:
        """In place of aioice's checks (started by `connect`): close the connection once
        the peer has not checked us for CONSENT_TIMEOUT."""
        self.last_check = max(self.last_check, time.monotonic())  # connected just now
        while True:
            await asyncio.sleep(CONSENT_LOOK)
            if time.monotonic() - self.last_check > CONSENT_TIMEOUT:
                logger.info("no consent check from the peer for %.0f s: closing", CONSENT_TIMEOUT)
                # Not awaited here: close() cancels and awaits this very task.
                self.closing = asyncio.ensure_future(self.connection.close())
                return


def consent_from_peer(pc: RTCPeerConnection) -> None:
    """Before each setLocalDescription: `pc`'s ICE connections take the peer's checks as
    consent and send none of their own (`PeerConsent`)."""
    for connection in ice_connections(pc):
        if peer_consent_of(connection) is not None:
            continue  # already (an earlier setLocalDescription)
        consent = PeerConsent(connection)
        connection.check_incoming = consent.check_incoming  # type: ignore[method-assign]
        connection.query_consent = consent.query_consent  # type: ignore[method-assign]


def peer_consent_of(connection: aioice.Connection) -> PeerConsent | None:
    owner = getattr(connection.query_consent, "__self__", None)
    return owner if isinstance(owner, PeerConsent) else None
