"""`[media] udp_ports`: every media socket of the server in one UDP port range.

The sockets are read from the kernel (/proc), not from the server's own objects: the
server runs as `urok serve` in a child process and its UDP sockets are those of
/proc/<pid>/net/udp whose inode is one of /proc/<pid>/fd.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCPeerConnection

from bench.bot import Bot, BotError
from bench.media import SilentAudioTrack
from sfu.aiortc_hooks import gather_hosts_with, restrict_host_addresses
from sfu.ice import rtc_configuration
from sfu.media_ports import MediaPorts, MediaPortsExhausted
from signalling.config import ConfigError, Settings, load_settings
from signalling.config_ops import MetricsSettings
from signalling.config_sections import MediaSettings
from tests.live import LiveServer, free_port, running_server, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
BOTS = 10


def free_port_block(size: int) -> int:
    """The first of `size` consecutive free UDP ports on loopback, below the kernel's
    ephemeral range (32768-60999), where nothing else of the tests binds by number."""
    for _ in range(200):
        first = random.randrange(20000, 32000 - size)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + size):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise AssertionError("no block of free UDP ports")


def process_udp_ports(pid: int) -> list[int]:
    """The local ports of every UDP socket process `pid` has open (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, inode = fields[1], fields[9]
            if inode in inodes:
                ports.append(int(local.rsplit(":", 1)[1], 16))
    return ports


@contextlib.contextmanager
def held_ports(first: int, count: int) -> Iterator[None]:
    """Another program holding these UDP ports on loopback."""
    with contextlib.ExitStack() as stack:
        for port in range(first, first + count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind(("127.0.0.1", port))
        yield


async def _offer_ports(pc: RTCPeerConnection, ports: MediaPorts) -> set[int]:
    pc.addTransceiver("audio", direction="sendonly")
    gather_hosts_with(pc, ports.gather_hosts)
    await pc.setLocalDescription(await pc.createOffer())
    gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
    return {c.port for c in gatherer.getLocalCandidates()}


async def test_a_port_in_use_is_skipped_and_an_exhausted_range_is_a_clear_error() -> None:
    restrict_host_addresses(["127.0.0.1"])
    first = free_port_block(3)
    ports = MediaPorts(first, first + 2)
    pcs = [RTCPeerConnection(rtc_configuration([])) for _ in range(3)]
    try:
        with held_ports(first, 1):  # someone else's socket on the range's first port
            assert await _offer_ports(pcs[0], ports) == {first + 1}
            assert await _offer_ports(pcs[1], ports) == {first + 2}
            with pytest.raises(MediaPortsExhausted) as raised:
                await _offer_ports(pcs[2], ports)
        assert raised.value.errno == errno.EADDRINUSE
        message = str(raised.value)
        assert f"{first}-{first + 2}" in message and "127.0.0.1" in message
        assert "udp_ports" in message
        assert ports.exhausted == 1
    finally:
        for pc in pcs:
            await pc.close()
    # The ports of closed connections are free again.
    freed = RTCPeerConnection(rtc_configuration([]))
    try:
        assert (await _offer_ports(freed, ports)) <= {first, first + 1, first + 2}
    finally:
        await freed.close()


async def test_a_publish_with_no_port_left_is_refused_clearly_and_counted() -> None:
    first = free_port_block(2)
    token = "a-metrics-token-for-this-test"
    media = MediaSettings(udp_ports=(first, first + 1))
    with held_ports(first, 2):  # another program holds the whole range
        async with running_server(media=media, metrics=MetricsSettings(token=token)) as server:
            lesson = await server.create_lesson()
            bot = Bot(server.base_url, await server.token(lesson, "s-1", "Ученик 1", "student"))
            try:
                await bot.connect()
                with pytest.raises(BotError) as refused:
                    await bot.publish([(SilentAudioTrack(), "microphone")])
            finally:
                await bot.close()
            headers = {"Authorization": f"Bearer {token}"}
            async with server.http.get(server.base_url + "/metrics", headers=headers) as response:
                scraped = await response.text()
    assert f"no free UDP port for media on 127.0.0.1 in the range {first}-{first + 1}" in str(
        refused.value
    )
    assert "urok_media_ports_exhausted_total 1.0" in scraped.splitlines()


def test_udp_ports_config(tmp_path: Path) -> None:
    config = tmp_path / "urok.toml"
    config.write_text('[media]\nudp_ports = "40000-40999"\n')
    assert load_settings(config, env={}).media.udp_ports == (40000, 40999)
    assert load_settings(env={}).media.udp_ports is None
    env = {"UROK_MEDIA_UDP_PORTS": "41000 - 41099"}
    assert load_settings(config, env=env).media.udp_ports == (41000, 41099)
    config.write_text('[media]\nudp_ports = "50000"\n')
    assert load_settings(config, env={}).media.udp_ports == (50000, 50000)
    for bad in ('"40999-40000"', '"80-90"', '"40000-70000"', "40000", '"40000:40999"', '"a-b"'):
        config.write_text(f"[media]\nudp_ports = {bad}\n")
        with pytest.raises(ConfigError, match=r"media\.udp_ports"):
            load_settings(config, env={})


async def _serve(config: Path, port: int, data: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "signalling.cli", "--config", str(config), "serve", "--port", str(port)),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "UROK_DATA_DIR": str(data)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _all_hear_each_other(bots: list[Bot], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            bot.packet_counts[(other.id, "audio")] > 0
            for bot in bots
            for other in bots
            if other is not bot
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not every bot received every other bot's audio")


def _remote_ports(pc: RTCPeerConnection | None) -> set[int]:
    assert pc is not None
    ice = pc.getTransceivers()[0].sender.transport.transport
    return {c.port for c in ice.getRemoteCandidates()}


async def test_every_media_socket_of_a_lesson_of_ten_bots_is_in_the_range(tmp_path: Path) -> None:
    size = 2 * BOTS + 10  # a publisher and a subscriber connection each, and a margin
    first = free_port_block(size)
    last = first + size - 1
    config = tmp_path / "urok.toml"
    # Everyone hears everyone (no audio slots): every connection must carry media.
    config.write_text(f'[media]\nudp_ports = "{first}-{last}"\naudio_slots = 0\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await _serve(config, port, tmp_path / "data")
    bots: list[Bot] = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, 60.0)  # a loaded machine starts it slowly
            journal = LiveServer(base, web.Application(), Settings(), http)
            lesson = await journal.create_lesson()
            for i in range(1, BOTS + 1):
                token = await journal.token(lesson, f"s-{i}", f"Ученик {i}", "student")
                bots.append(Bot(base, token, decode=False))
            await asyncio.gather(*(bot.connect() for bot in bots))
            await asyncio.gather(
                *(bot.publish([(SilentAudioTrack(dtx=False), "microphone")]) for bot in bots)
            )
            await _all_hear_each_other(bots)
            server_ports = process_udp_ports(process.pid)
            # What the bots' ICE reached the server on: the same range.
            reached = set().union(
                *(_remote_ports(pc) for bot in bots for pc in (bot.publisher, bot.subscriber))
            )
    finally:
        await asyncio.gather(*(bot.close() for bot in bots), return_exceptions=True)
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 20)
    assert len(server_ports) >= 2 * BOTS, server_ports
    outside = [p for p in server_ports if not first <= p <= last]
    assert outside == [], f"UDP sockets outside {first}-{last}: {outside}"
    assert len(set(server_ports)) == len(server_ports)
    assert reached and all(first <= p <= last for p in reached), reached
