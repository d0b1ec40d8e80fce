"""sfu/ice_consent.py: our ICE connections send no consent checks and take the peer's as
consent; a peer that stops checking is closed after CONSENT_TIMEOUT, one that goes on
checking never. A real PublisherTransport and an aiortc client over loopback, the
intervals shortened (aioice's module constant for the client's checks)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aioice.ice
import pytest

import sfu.ice_consent
from sfu.ice_consent import peer_consent_of
from tests.test_aiortc_fast_receive import Publishing, until

TIMEOUT = 1.5


@pytest.fixture(autouse=True)
def short_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfu.ice_consent, "CONSENT_TIMEOUT", TIMEOUT)
    monkeypatch.setattr(sfu.ice_consent, "CONSENT_LOOK", 0.1)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.3)  # the client's: 0.24-0.36 s


def _connections(p: Publishing) -> tuple[Any, Any]:
    server = p.transport.pc.getTransceivers()[0].receiver.transport.transport._connection
    client = p.pc.getTransceivers()[0].sender.transport.transport._connection
    return server, client


def _count_requests(connection: Any) -> list[float]:
    """When `connection` receives binding requests from here on."""
    seen: list[float] = []
    request_received = connection.request_received

    def counting(*args: Any) -> None:
        seen.append(time.monotonic())
        request_received(*args)

    connection.request_received = counting
    return seen


async def test_the_server_sends_no_checks_and_stays_connected_while_the_peer_checks() -> None:
    async with Publishing() as p:
        server, client = _connections(p)
        consent = peer_consent_of(server)
        assert consent is not None and peer_consent_of(client) is None
        to_client, to_server = _count_requests(client), _count_requests(server)
        await asyncio.sleep(2 * TIMEOUT)
        # The client checked the server about every 0.3 s; the server checked nobody.
        assert len(to_server) >= 5 and to_client == []
        assert time.monotonic() - consent.last_check < 1.0
        assert p.transport.connection_state == "connected"


async def test_a_peer_that_stops_checking_is_closed_after_the_timeout() -> None:
    async with Publishing() as p:
        server, client = _connections(p)
        client._query_consent_task.cancel()  # the client's own checks: it "vanishes"
        stopped = time.monotonic()
        await asyncio.sleep(TIMEOUT / 2)
        assert p.transport.connection_state == "connected"  # not before the timeout
        await until(lambda: p.transport.connection_state in ("failed", "closed"), 3 * TIMEOUT)
        consent = peer_consent_of(server)
        assert consent is not None and consent.closing is not None
        # Closed TIMEOUT after the client's last check (which may precede `stopped`: its
        # task was cancelled between two checks), never sooner.
        assert consent.last_check <= stopped
        assert time.monotonic() - consent.last_check > TIMEOUT
