"""docs/deploy/turnserver.conf works with Urok's credentials: coturn started from that
file (only its ports, address, secret, certificate and log replaced) relays for a
join's `ice_servers` over UDP, TCP and TLS, and refuses to relay into a private network.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

from aioice import stun

from signalling.config import Settings
from signalling.config_turn import TurnSettings
from signalling.turn import client_ice_servers
from tests.certificates import self_signed
from tests.turn_server import allocation, free_udp_tcp_port, turn_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "deploy" / "turnserver.conf"
SECRET = "deploy-turn-secret-77c1d0e2a9b4"


def _replace_once(text: str, old: str, new: str) -> str:
    # The example must keep these lines: the test fails when it drifts from them.
    assert text.count(old) == 1, f"{old!r} is not in {EXAMPLE} exactly once"
    return text.replace(old, new)


def rendered(port: int, directory: Path, tls_port: int) -> str:
    """The example with this test's ports, address, secret, certificate and files."""
    cert, key = self_signed(directory, ("127.0.0.1",))
    text = EXAMPLE.read_text()
    for old, new in (
        ("listening-port=3478", f"listening-port={port}"),
        ("tls-listening-port=443", f"tls-listening-port={tls_port}"),
        ("listening-ip=192.0.2.10", "listening-ip=127.0.0.1"),
        (
            "static-auth-secret=CHANGE-ME-the-same-secret-as-urok-turn-secret",
            f"static-auth-secret={SECRET}",
        ),
        ("cert=/etc/letsencrypt/live/turn.school.example/fullchain.pem", f"cert={cert}"),
        ("pkey=/etc/letsencrypt/live/turn.school.example/privkey.pem", f"pkey={key}"),
        ("\nsyslog\n", f"\nlog-file={directory}/turn.log\n"),
    ):
        text = _replace_once(text, old, new)
    # The Urok node of this test is on loopback (the deployment's is on its own address).
    return text + (
        f"allow-loopback-peers\nallowed-peer-ip=127.0.0.1\n"
        f"pidfile={directory}/turn.pid\ndb={directory}/turndb\n"
    )


class Echo(asyncio.DatagramProtocol):
    """A peer on loopback (where the SFU would be) that sends every datagram back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def test_the_example_coturn_config_relays_for_urok_credentials() -> None:
    tls_port = free_udp_tcp_port(("127.0.0.1",))
    config = lambda port, directory: rendered(port, directory, tls_port)  # noqa: E731
    async with turn_server(SECRET, config=config) as turn:
        urls = (turn.url("udp"), turn.url("tcp"), f"turns:127.0.0.1:{tls_port}?transport=tcp")
        settings = Settings(turn=TurnSettings(secret=SECRET, urls=urls))
        now = datetime.datetime.now(datetime.UTC)
        (entry,) = client_ice_servers(settings, "s-1", now + datetime.timedelta(minutes=45), now)
        credentials = (entry["username"], entry["credential"])
        loop = asyncio.get_running_loop()
        echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        peer = echo.get_extra_info("sockname")
        trusting = ssl.create_default_context(cafile=str(Path(turn.log).parent / "cert.pem"))
        try:
            for transport, port, tls in (
                ("udp", turn.port, None),
                ("tcp", turn.port, None),
                ("tcp", tls_port, trusting),  # turns: with the test's certificate
            ):
                async with allocation(
                    ("127.0.0.1", port), *credentials, transport=transport, ssl=tls
                ) as (relay, protocol):
                    relay.sendto(b"through the relay", peer)
                    data, source = await asyncio.wait_for(protocol.received.get(), 10)
                    assert (data, source) == (b"through the relay", peer)
            # Into a private network: coturn refuses the permission (denied-peer-ip).
            async with allocation(("127.0.0.1", turn.port), *credentials) as (relay, protocol):
                relay.sendto(b"inside the school", ("10.1.2.3", 9))
                error = await asyncio.wait_for(protocol.errors.get(), 10)
                assert isinstance(error, stun.TransactionFailed), error
                assert error.response.error_code == 403
        finally:
            echo.close()
