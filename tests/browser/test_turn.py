"""The call page through a real coturn (tests/turn_server.py) with credentials that expire.

- Forced through TURN (iceTransportPolicy "relay", tests/browser/harness.py's
  force_relay), a page receives a bot's video and audio over a relayed candidate
  pair, and nothing it receives (WebSocket frames, HTTP bodies) holds the shared
  secret; the server, not told to, gathers no relay candidates of its own.
- On a test host whose UDP is dropped both ways (bench/links.py), the page falls
  back to TURN over TCP by itself, or over TLS when TCP to the TURN port is
  refused too, and the media flows.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, Response, WebSocket

from bench.bot import Bot
from bench.links import LinkSpec, Testbed
from bench.preencoded import PreEncodedTrack, prepare_media
from signalling.config_turn import TurnSettings
from tests.browser.harness import (
    CHROMIUM,
    Server,
    chromium,
    force_relay,
    join_call,
    new_page,
    playwright,
    running_server,
    selected_pair,
    wait_for_media,
)
from tests.turn_server import turn_server

pytestmark = pytest.mark.browser

SECRET = "browser-turn-secret-5f1e9c0a7b3d"


async def publishing_bot(server: Server, lesson_id: str) -> Bot:
    """A pupil publishing pre-encoded camera and microphone (cheap on two cores)."""
    media = prepare_media(audio_seconds=30, width=320, height=240, video_seconds=2)
    token = await server.token(lesson_id, "s-2", "Мария Кузнецова", "student")
    bot = Bot(server.base_url, token, receive=False)  # receiving would only cost CPU
    await bot.connect()
    await bot.publish(
        [(PreEncodedTrack(media.audio), "microphone"), (PreEncodedTrack(media.video), "camera")]
    )
    return bot


async def relayed_pairs(page: Page) -> dict[str, Any]:
    """Both connections' selected pairs, once both are selected and succeeded."""
    deadline = time.monotonic() + 20
    while True:
        pairs = {which: await selected_pair(page, which) for which in ("publisher", "subscriber")}
        if all(p is not None and p["state"] == "succeeded" for p in pairs.values()):
            return pairs
        assert time.monotonic() < deadline, pairs
        await page.wait_for_timeout(250)


class Received:
    """Everything the page receives from the server: WebSocket frames and HTTP bodies."""

    def __init__(self, page: Page) -> None:
        self.frames: list[str] = []
        self.responses: list[Response] = []
        page.on("websocket", self._socket)
        page.on("response", lambda response: self.responses.append(response))

    def _socket(self, socket: WebSocket) -> None:
        socket.on(
            "framereceived",
            lambda payload: self.frames.append(
                payload if isinstance(payload, str) else payload.decode("latin-1")
            ),
        )

    def messages(self, kind: str) -> list[dict[str, Any]]:
        decoded = [json.loads(f) for f in self.frames if f.startswith("{")]
        return [m for m in decoded if m.get("type") == kind]

    async def bodies(self) -> list[str]:
        out = []
        for response in self.responses:
            if 300 <= response.status < 400:
                continue  # a redirect has no body
            out.append((await response.body()).decode("latin-1"))
        return out


async def test_page_forced_through_turn_gets_media_and_never_the_secret() -> None:
    async with turn_server(SECRET) as turn:
        settings = TurnSettings(secret=SECRET, urls=(turn.url("udp"),))
        async with (
            running_server(turn=settings) as server,
            playwright() as pw,
            chromium(pw) as browser,
        ):
            lesson = await server.create_lesson()
            bot = await publishing_bot(server, lesson["id"])
            try:
                await force_relay(browser)
                page = await new_page(browser)
                received = Received(page)
                url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
                await join_call(page, url, video=False)
                stats = await wait_for_media(page)
                pairs = await relayed_pairs(page)
                bodies = await received.bodies()
            finally:
                await bot.close()
    print(f"through TURN: {stats}, {pairs}")
    for which, pair in pairs.items():
        # The page's side is coturn's relay; the server's side its own host candidate.
        assert (pair["local"], pair["relay_protocol"], pair["remote"]) == (
            "relay",
            "udp",
            "host",
        ), (which, pair)
        assert pair["relays_gathered"] and set(pair["relays_gathered"]) == {"udp"}
    (joined,) = received.messages("joined")
    (entry,) = joined["ice_servers"]
    assert entry["urls"] == [turn.url("udp")] and entry["username"].endswith(":s-1")
    # The secret, as it is or base64-encoded, is in nothing the page received.
    # (What was captured: the page, its modules and styles, the lesson's info, the frames.)
    assert len(bodies) > 5 and any("<html" in body for body in bodies), len(bodies)
    for text in (*received.frames, *bodies):
        assert SECRET not in text and base64.b64encode(SECRET.encode()).decode() not in text
    # turn.server_uses is off: the server's SDP offers no relay candidate of its own.
    sdps = [m["sdp"] for m in received.messages("subscribe_offer")]
    sdps += [m["sdp"] for m in received.messages("publish_answer")]
    assert sdps and all(" typ relay" not in sdp and " typ host" in sdp for sdp in sdps)


async def joined_through_turn(browser: BrowserContext, url: str) -> dict[str, Any]:
    """Join on a new page, wait for media, close the page: its connections' pairs."""
    page = await new_page(browser)
    started = time.monotonic()
    await join_call(page, url, video=False)
    joined = time.monotonic() - started
    stats = await wait_for_media(page, timeout=45)
    pairs = await relayed_pairs(page)
    print(
        f"in the call {joined:.1f} s, media {time.monotonic() - started:.1f} s after opening"
        f" the page: {stats}, {pairs}"
    )
    await page.close()
    return pairs


@contextmanager
def tcp_refused(source: str, address: str, port: int) -> Iterator[None]:
    """This namespace refuses TCP from `source` to address:port (a reset, as a firewall
    that rejects; a silent drop would only make the page wait longer for its candidates)."""
    table = f"urok_turn_{os.getpid()}_{port}"
    rule = f"ip saddr {source} ip daddr {address} tcp dport {port} reject with tcp reset"
    script = (
        f"add table inet {table}\n"
        f"add chain inet {table} in {{ type filter hook input priority 0; }}\n"
        f"add rule inet {table} in {rule}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)


async def test_turn_over_tcp_then_tls_carries_the_media_when_udp_is_dropped() -> None:
    """UDP from the pupil's host dropped (and TLS to TURN refused): TURN over TCP. Then
    TCP to the plain TURN port refused instead (a firewall that passes HTTPS only): TURN
    over TLS (with the test's certificate)."""
    with Testbed() as bed:
        pupil_host = bed.add_host(LinkSpec(udp_dropped=True))
        gateway = pupil_host.gateway
        async with turn_server(SECRET, addresses=(gateway,), tls=True) as turn:
            urls = tuple(turn.url(kind, gateway) for kind in ("udp", "tcp", "tls"))
            async with (
                running_server(host=gateway, turn=TurnSettings(secret=SECRET, urls=urls)) as server,
                playwright() as pw,
            ):
                lesson = await server.create_lesson()
                bot = await publishing_bot(server, lesson["id"])
                try:
                    async with chromium(
                        pw,
                        executable=pupil_host.executable(CHROMIUM),
                        origin=server.base_url,
                        # The TURN server's certificate is the test's own (this test only).
                        extra_args=("--ignore-certificate-errors",),
                    ) as browser:
                        url = await server.join_url(lesson["id"], "s-1", "Иван Иванов", "student")
                        assert turn.tls_port is not None
                        with tcp_refused(pupil_host.address, gateway, turn.tls_port):
                            over_tcp = await joined_through_turn(browser, url)
                        with tcp_refused(pupil_host.address, gateway, turn.port):
                            url = await server.join_url(
                                lesson["id"], "t-1", "Анна Петровна Смирнова", "teacher"
                            )
                            over_tls = await joined_through_turn(browser, url)
                finally:
                    await bot.close()
    for which, pair in over_tcp.items():
        assert (pair["local"], pair["relay_protocol"]) == ("relay", "tcp"), (which, pair)
        # TURN over UDP was offered first and got nowhere: no relay over UDP was allocated.
        assert set(pair["relays_gathered"]) == {"tcp"}, (which, pair)
    for which, pair in over_tls.items():
        assert (pair["local"], pair["relay_protocol"]) == ("relay", "tls"), (which, pair)
        assert set(pair["relays_gathered"]) == {"tls"}, (which, pair)
