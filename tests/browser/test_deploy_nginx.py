"""Urok behind a real nginx running docs/deploy/nginx.conf: the demo journal, the call page
and its WebSocket over https/wss in Chromium (its media straight to the node's UDP port
range), and the client's address (not the proxy's) in the rate limits and the access log,
believed from the trusted proxy only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from signalling.config import Settings
from tests.browser.harness import Server, chromium, join_call, new_page, playwright
from tests.live import free_port, wait_healthy
from tests.nginx_proxy import nginx_in_front_of
from tests.test_media_ports import free_port_block

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
INVITE_LIMIT = 3
FORGED_INVITE = "/invite/forged.AAAAAAAAAAAAAAAAAAAAAA"
MEDIA_PORTS = 8

# The remote (server's) port of the publisher connection's selected ICE candidate pair.
SELECTED_REMOTE_PORT_JS = """
async () => {
  const stats = await window.urok.pcs.publisher.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      pair = stats.get(s.selectedCandidatePairId);
    }
  });
  return pair ? stats.get(pair.remoteCandidateId).port : null;
}
"""


def _server_config(path: Path, https_port: int, media_port: int) -> None:
    path.write_text(
        f'public_url = "https://127.0.0.1:{https_port}"\n'
        "[media]\n"
        f'udp_ports = "{media_port}-{media_port + MEDIA_PORTS - 1}"\n'
        "[limits]\n"
        'trusted_proxies = ["127.0.0.1"]\n'
        f"invite_failures_per_ip = {INVITE_LIMIT}\n"
        "[log]\n"
        'format = "json"\n'
    )


async def _invite_statuses(
    base: str, source: str, count: int, forwarded: list[str] | None = None
) -> list[int]:
    """GET a forged invite link `count` times from address `source` (a loopback alias)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=False)
    statuses = []
    async with aiohttp.ClientSession(connector=connector) as http:
        for i in range(count):
            headers = {"X-Forwarded-For": forwarded[i]} if forwarded else {}
            async with http.get(base + FORGED_INVITE, headers=headers) as response:
                statuses.append(response.status)
    return statuses


def _access_lines(log: Path) -> list[str]:
    records: list[dict[str, Any]] = [json.loads(line) for line in log.read_text().splitlines()]
    return [r["message"] for r in records if r["logger"] == "aiohttp.access"]


async def test_journal_call_page_and_websocket_over_https_and_client_addresses(
    tmp_path: Path,
) -> None:
    port, https_port, media_port = free_port(), free_port(), free_port_block(MEDIA_PORTS)
    config = tmp_path / "urok.toml"
    _server_config(config, https_port, media_port)
    log = tmp_path / "urok.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "signalling.cli", "--config", str(config), "serve", "--port", str(port)),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "UROK_DATA_DIR": str(tmp_path / "data")},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    direct = f"http://127.0.0.1:{port}"
    try:
        async with (
            aiohttp.ClientSession() as http,
            nginx_in_front_of(port, tmp_path / "nginx", https_port) as proxy,
        ):
            await wait_healthy(http, direct, 60.0)  # a loaded machine starts it slowly
            journal = Server(direct, web.Application(), Settings(), http)
            lesson = await journal.create_lesson()
            url = await journal.join_url(lesson["id"], "t-1", "Анна Петровна", "teacher")
            assert url.startswith(proxy.https_url + "/call/")
            media = await _in_chromium_over_https(proxy.https_url, url)
            assert media_port <= media < media_port + MEDIA_PORTS

            # Behind the proxy, each client is limited by its own address, and what it
            # puts in X-Forwarded-For itself is not believed (nginx appends the real one).
            spoofed = ["198.51.100.7"] * (INVITE_LIMIT + 1)
            a = await _invite_statuses(proxy.https_url, "127.0.0.5", INVITE_LIMIT + 1, spoofed)
            assert a == [404] * INVITE_LIMIT + [429]
            assert await _invite_statuses(proxy.https_url, "127.0.0.6", 1) == [404]
            # Straight to Urok from an address that is not a trusted proxy: its
            # X-Forwarded-For is ignored, neither blocked as 127.0.0.5 nor let off as others.
            fresh = [f"203.0.113.{i}" for i in range(INVITE_LIMIT + 1)]
            assert await _invite_statuses(direct, "127.0.0.7", 1, ["127.0.0.5"]) == [404]
            c = await _invite_statuses(direct, "127.0.0.7", INVITE_LIMIT, fresh)
            assert c == [404] * (INVITE_LIMIT - 1) + [429]
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 20)

    lines = [line for line in _access_lines(log) if FORGED_INVITE in line]
    by_address = {line.split(" ", 1)[0] for line in lines}
    assert by_address == {"127.0.0.5", "127.0.0.6", "127.0.0.7"}, lines


async def _in_chromium_over_https(https_url: str, call_url: str) -> int:
    """Demo journal and call page over https/wss; the server's media port the page uses."""
    async with (
        playwright() as pw,
        chromium(pw, extra_args=("--ignore-certificate-errors",)) as browser,
    ):
        page = await new_page(browser)
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        # The demo journal.
        await page.goto(https_url + "/")
        await page.wait_for_function(
            "() => document.querySelectorAll('#roster-body tr').length === 5"
        )
        assert page.url.startswith("https://")
        # The call page: joined over wss, camera and microphone allowed (a secure page),
        # and its media connection up: straight to Urok over UDP, on a port of
        # [media] udp_ports, not through nginx.
        await join_call(page, call_url)
        assert sockets == [https_url.replace("https://", "wss://") + "/ws"]
        assert await page.evaluate("() => window.isSecureContext") is True
        assert await page.evaluate("() => window.urok.local.video.readyState") == "live"
        await page.wait_for_function(
            "() => window.urok.pcs.publisher"
            " && window.urok.pcs.publisher.connectionState === 'connected'",
            timeout=30000,
        )
        port = await page.evaluate(SELECTED_REMOTE_PORT_JS)
        assert isinstance(port, int)
        return port
