"""A real, throwaway coturn (`turnserver`) for tests, with a shared secret (use-auth-secret).

    async with turn_server(secret) as turn:   # on loopback (and any `addresses` given)
        turn.url("udp"), turn.url("tcp")      # turn:127.0.0.1:<port>?transport=…

It listens on a free port (UDP and TCP) of 127.0.0.1 and the given addresses,
without its CLI, TLS or DTLS, with its log, pid file and database in a
temporary directory, and allows loopback peers (the SFU is on loopback in the
tests). A missing `turnserver` is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aioice.turn import create_turn_endpoint

from tests.certificates import self_signed
from tests.redis_server import stop_process

START_TIMEOUT = 10.0
REALM = "urok.test"


class TurnServerError(RuntimeError):
    """turnserver is missing or did not start."""


@dataclass(frozen=True)
class TurnServer:
    host: str  # the address the URLs name
    port: int
    log: Path
    tls_port: int | None = None  # TURN over TLS, when started with a certificate

    def url(self, transport: str, host: str | None = None) -> str:
        if transport == "tls":
            return f"turns:{host or self.host}:{self.tls_port}?transport=tcp"
        return f"turn:{host or self.host}:{self.port}?transport={transport}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def find_turnserver() -> str:
    binary = os.environ.get("UROK_TURNSERVER") or shutil.which("turnserver")
    for candidate in (binary, "/usr/bin/turnserver"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise TurnServerError(
        "turnserver not found: the TURN tests need a real coturn. Install it "
        "(Debian/Ubuntu: apt-get install coturn) or point UROK_TURNSERVER at the binary."
    )


def free_udp_tcp_port(addresses: tuple[str, ...]) -> int:
    """A port free for both UDP and TCP on every address (coturn takes both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in addresses:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind((address, port))
        except OSError:
            continue
        return port
    raise TurnServerError("no port free for both UDP and TCP")


def _binding_answered(address: str, port: int) -> bool:
    """A STUN Binding request over UDP gets a success response (RFC 5389)."""
    transaction = os.urandom(12)
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(request, (address, port))
            reply = sock.recv(2048)
        except OSError:
            return False
    return reply[:2] == b"\x01\x01" and reply[8:20] == transaction


def _command(
    binary: str,
    secret: str,
    port: int,
    directory: str,
    addresses: tuple[str, ...],
    tls: tuple[Path, Path, int] | None,
) -> list[str]:
    command = [binary, "-n", "--no-cli", "--no-dtls", "--no-rfc5780"]
    if tls is None:
        command.append("--no-tls")
    else:
        cert, key, tls_port = tls
        command += [f"--cert={cert}", f"--pkey={key}", f"--tls-listening-port={tls_port}"]
    command += [f"--listening-ip={address}" for address in addresses]
    command += [
        f"--listening-port={port}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--allow-loopback-peers",
        f"--log-file={directory}/turn.log",
        "--simple-log",
        f"--pidfile={directory}/turn.pid",
        f"--db={directory}/turndb",
        "--no-software-attribute",
    ]
    return command


# A coturn configuration file made by the caller for (port, its directory): the log
# must go to <directory>/turn.log.
ConfigFile = Callable[[int, Path], str]


@contextmanager
def turn_server_sync(
    secret: str,
    addresses: tuple[str, ...] = (),
    config: ConfigFile | None = None,
    tls: bool = False,
) -> Iterator[TurnServer]:
    """coturn on 127.0.0.1 (and `addresses`), stopped afterwards; with `tls`, TURN over
    TLS too, with a self-signed certificate for those addresses (<directory>/cert.pem);
    with `config`, run from that configuration file alone (it names everything itself)."""
    binary = find_turnserver()
    listen = ("127.0.0.1", *addresses)
    with tempfile.TemporaryDirectory(prefix="urok-turn-") as directory:
        log = Path(directory) / "turn.log"
        certificate = self_signed(Path(directory), listen) if tls else None
        for _attempt in range(3):  # another process may take the free port first
            port = free_udp_tcp_port(listen)
            tls_port = free_udp_tcp_port(listen) if certificate else None
            while tls_port == port:
                tls_port = free_udp_tcp_port(listen)
            tls_files = (*certificate, tls_port) if certificate and tls_port else None
            command = _command(binary, secret, port, directory, listen, tls_files)
            if config is not None:
                path = Path(directory) / "turnserver.conf"
                path.write_text(config(port, Path(directory)))
                command = [binary, "-c", str(path)]
            process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if _binding_answered("127.0.0.1", port):
                        break
                    time.sleep(0.05)
                else:
                    continue
                yield TurnServer("127.0.0.1", port, log, tls_port)
                return
            finally:
                stop_process(process)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise TurnServerError(f"turnserver ({binary}) did not start:\n{tail}")


@asynccontextmanager
async def turn_server(
    secret: str,
    addresses: tuple[str, ...] = (),
    config: ConfigFile | None = None,
    tls: bool = False,
) -> AsyncIterator[TurnServer]:
    """The same as an async context manager (starting and stopping off the event loop)."""
    manager = turn_server_sync(secret, addresses, config, tls)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


class Relay(asyncio.DatagramProtocol):
    """The application's side of a TURN allocation: what came back, what failed."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


@asynccontextmanager
async def allocation(
    address: tuple[str, int],
    username: str,
    password: str,
    transport: str = "udp",
    ssl: Any = None,
) -> AsyncIterator[tuple[Any, Relay]]:
    """A real TURN allocation with these credentials (aioice's client), freed afterwards:
    (its transport: sendto() relays, get_extra_info("sockname") is the relayed address;
    the Relay). A refusal raises aioice.stun.TransactionFailed."""
    relay, protocol = await create_turn_endpoint(
        Relay, address, username, password, transport=transport, ssl=ssl
    )
    try:
        yield relay, protocol
    finally:
        relay.close()
        await asyncio.wait_for(protocol.lost, 10)
