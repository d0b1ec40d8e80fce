"""Browser-test harness: the real app on a loopback port, and headless Chromium instances.

Run browser tests in a network namespace with only loopback up (CI does):

    unshare -n bash -c 'ip link set lo up && python -m pytest tests/browser'

Each browser is its own Chromium process with its own profile directory, with
fake camera/microphone devices and the permission prompt auto-accepted.
A missing Chromium is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright

from bench.chromium import CHROMIUM, CHROMIUM_ARGS, FAKE_DEVICES
from signalling.config import DEMO_KEY_ID, Settings
from tests import live

SCREENSHOT_DIR = Path(os.environ.get("UROK_SCREENSHOT_DIR", "/tmp"))

# getStats of the subscriber connection, summed per kind over inbound-rtp entries.
INBOUND_STATS_JS = """
async () => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs.subscriber;
  if (!pc) return null;
  const out = {video: {framesDecoded: 0, packetsReceived: 0, streams: 0},
               audio: {packetsReceived: 0, streams: 0}};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || !out[s.kind]) return;
    out[s.kind].streams += 1;
    out[s.kind].packetsReceived += s.packetsReceived || 0;
    if (s.kind === 'video') out.video.framesDecoded += s.framesDecoded || 0;
  });
  return out;
}
"""

# The same, per sender and source: {participant_id: {source: {packetsReceived, framesDecoded}}},
# using the latest subscribe_offer's mid -> participant/source map (window.urok.tracks).
INBOUND_BY_SOURCE_JS = """
async () => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs.subscriber;
  if (!pc) return {};
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.mid === undefined) return;
    const info = window.urok.tracks[s.mid];
    if (!info) return;
    const who = out[info.participant_id] = out[info.participant_id] || {};
    who[info.source] = {packetsReceived: s.packetsReceived || 0,
                        framesDecoded: s.framesDecoded || 0};
  });
  return out;
}
"""

# Every inbound RTP stream of the subscriber connection by mid, with whose media
# the latest subscribe_offer says it carries (null: an idle m-section):
# {mid: {kind, participant_id, source, packetsReceived, framesDecoded}}.
INBOUND_BY_MID_JS = """
async () => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs.subscriber;
  if (!pc) return {};
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.mid === undefined) return;
    const info = window.urok.tracks[s.mid] || null;
    out[s.mid] = {kind: s.kind, participant_id: info ? info.participant_id : null,
                  source: info ? info.source : null,
                  packetsReceived: s.packetsReceived || 0, framesDecoded: s.framesDecoded || 0};
  });
  return out;
}
"""


# The ICE candidate pair a connection of the page ("publisher" or "subscriber") uses:
# {local, local_protocol, relay_protocol, remote, state} and the relay protocols of every
# relay candidate it gathered (relays_gathered); null before a pair is selected.
SELECTED_PAIR_JS = """
async (which) => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs[which];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      pair = stats.get(s.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const relays = [];
  stats.forEach((s) => {
    if (s.type === 'local-candidate' && s.candidateType === 'relay') relays.push(s.relayProtocol);
  });
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {local: local.candidateType, local_protocol: local.protocol,
          relay_protocol: local.relayProtocol || null, remote: remote.candidateType,
          state: pair.state, relays_gathered: relays.sort()};
}
"""

# Every RTCPeerConnection the page makes gathers relay candidates only
# (iceTransportPolicy "relay"), as with a browser policy forcing TURN; the page's
# own code runs unchanged.
FORCE_RELAY_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      super({...(config || {}), iceTransportPolicy: 'relay'}, ...rest);
    }
  };
})();
"""


@dataclass
class Server:
    base_url: str
    app: web.Application
    settings: Settings
    http: aiohttp.ClientSession

    @property
    def secret(self) -> str:
        integration = self.settings.integration(DEMO_KEY_ID)
        assert integration is not None
        return integration.secret

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the journal API over HTTP as the demo journal."""
        headers = {"Authorization": f"Bearer {self.secret}"}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def create_lesson(
        self,
        group_id: str = "5a",
        teacher: dict[str, str] | None = None,
        roster: list[dict[str, str]] | None = None,
        open_: bool = True,
    ) -> dict[str, Any]:
        start = datetime.now(UTC) - timedelta(minutes=1)
        status, lesson = await self.api(
            "POST",
            "/api/v1/lessons",
            {
                "group": {"id": group_id, "title": "5А"},
                "subject": "Математика",
                "teacher": teacher or {"id": "t-1", "name": "Анна Петровна Смирнова"},
                "roster": roster
                or [
                    {"id": "s-1", "name": "Иван Иванов", "role": "student"},
                    {"id": "s-2", "name": "Мария Кузнецова", "role": "student"},
                ],
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=45)).isoformat(),
            },
        )
        assert status == 201, lesson
        if open_:
            status, lesson = await self.api("POST", f"/api/v1/lessons/{lesson['id']}/open")
            assert status == 200, lesson
        return lesson

    async def _minted(self, lesson_id: str, user_id: str, name: str, role: str) -> Any:
        status, body = await self.api(
            "POST",
            f"/api/v1/lessons/{lesson_id}/tokens",
            {"user": {"id": user_id, "name": name}, "role": role},
        )
        assert status == 201, body
        return body

    async def join_url(self, lesson_id: str, user_id: str, name: str, role: str) -> str:
        """The call page URL (token in the fragment) the API mints for one person."""
        return str((await self._minted(lesson_id, user_id, name, role))["url"])

    async def token(self, lesson_id: str, user_id: str, name: str, role: str) -> str:
        """A join token for one person (for a bot beside the browsers)."""
        return str((await self._minted(lesson_id, user_id, name, role))["token"])


@asynccontextmanager
async def running_server(host: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[Server]:
    """The real app on <host>:<free port> (tests/live.py): loopback, or the server side
    of a test host's link (bench/links.py) for browsers on that host."""
    async with live.running_server(host, **overrides) as server:
        yield Server(server.base_url, server.app, server.settings, server.http)


def require_chromium() -> None:
    """Fail (never skip) when the browser is missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) "
            "or point UROK_CHROMIUM at it"
        )


@asynccontextmanager
async def playwright() -> AsyncIterator[Playwright]:
    require_chromium()
    async with async_playwright() as pw:
        yield pw


@asynccontextmanager
async def chromium(
    pw: Playwright,
    *,
    viewport: tuple[int, int] = (1280, 800),
    extra_args: tuple[str, ...] = (),
    fake_devices: bool = True,
    executable: str | Path = CHROMIUM,
    origin: str | None = None,
) -> AsyncIterator[BrowserContext]:
    """One Chromium process with a fresh profile directory.

    fake_devices=False leaves out the fake camera/microphone (the permission
    prompt is still auto-accepted): a machine with no devices at all.
    executable: e.g. `host.executable(CHROMIUM)` to run it on a test host
    behind an emulated link (bench/links.py).
    origin: a server not on loopback (a test link's address) that the page must
    treat as secure, or getUserMedia is not there.
    """
    args = [a for a in CHROMIUM_ARGS if fake_devices or a != FAKE_DEVICES]
    if origin is not None:
        args.append(f"--unsafely-treat-insecure-origin-as-secure={origin}")
    profile = tempfile.mkdtemp(prefix="urok-chromium-")
    try:
        context = await pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(executable),
            args=[*args, *extra_args],
            headless=True,
            viewport={"width": viewport[0], "height": viewport[1]},
            locale="ru-RU",
        )
        try:
            yield context
        finally:
            await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@asynccontextmanager
async def chromiums(
    pw: Playwright, *options: dict[str, Any]
) -> AsyncIterator[list[BrowserContext]]:
    """Several `chromium(pw, **options[i])`, launched side by side and closed side by
    side (each is still its own process with its own profile): one launch costs a
    second or two of this machine, and the browsers of a test do not need each other
    to start."""
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    ready: list[asyncio.Future[BrowserContext]] = [loop.create_future() for _ in options]

    async def one(kwargs: dict[str, Any], started: asyncio.Future[BrowserContext]) -> None:
        try:
            async with chromium(pw, **kwargs) as context:
                started.set_result(context)
                await release.wait()
        except asyncio.CancelledError:
            started.cancel()
            raise
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    tasks = [asyncio.create_task(one(k, f)) for k, f in zip(options, ready, strict=True)]
    try:
        yield list(await asyncio.gather(*ready))
    finally:
        release.set()
        closed = await asyncio.gather(*tasks, return_exceptions=True)
        for started in ready:  # a launch that failed after another's failure: retrieved
            if started.done() and not started.cancelled():
                started.exception()
    failed = [r for r in closed if isinstance(r, BaseException)]
    if failed:
        raise failed[0]


async def new_page(context: BrowserContext) -> Page:
    page = context.pages[0] if context.pages else await context.new_page()
    page.on("console", lambda msg: _console(page, msg.type, msg.text))
    page.on("pageerror", lambda exc: print(f"[page error] {exc}"))
    return page


def _console(page: Page, kind: str, text: str) -> None:
    if kind in ("error", "warning"):
        print(f"[console {kind}] {page.url[:60]}: {text}")


async def force_relay(context: BrowserContext) -> None:
    """Pages opened from now on in `context` use TURN relays only (FORCE_RELAY_JS)."""
    await context.add_init_script(FORCE_RELAY_JS)


async def selected_pair(page: Page, which: str) -> dict[str, Any] | None:
    return await page.evaluate(SELECTED_PAIR_JS, which)


async def join_call(
    page: Page, url: str, *, video: bool = True, expect_state: str = "in-call"
) -> None:
    """Open the call page, press join, wait until the page is in `expect_state`
    ("in-call", or "waiting" when the waiting room is on)."""
    await page.goto(url)
    button = page.locator("#join-video" if video else "#join-audio")
    await button.wait_for(state="visible", timeout=15000)
    await page.wait_for_function(
        f"() => !document.getElementById('{'join-video' if video else 'join-audio'}').disabled",
        timeout=15000,
    )
    await button.click()
    await page.wait_for_function(
        "(state) => window.urok && window.urok.state === state", arg=expect_state, timeout=15000
    )


async def inbound_stats(page: Page) -> dict[str, Any] | None:
    return await page.evaluate(INBOUND_STATS_JS)


async def inbound_by_source(page: Page) -> dict[str, dict[str, dict[str, int]]]:
    return dict(await page.evaluate(INBOUND_BY_SOURCE_JS))


async def inbound_by_mid(page: Page) -> dict[str, dict[str, Any]]:
    return dict(await page.evaluate(INBOUND_BY_MID_JS))


async def wait_for_media(
    page: Page, *, timeout: float = 30.0, min_frames: int = 10, min_audio_packets: int = 50
) -> dict[str, Any]:
    """Poll the subscriber's getStats (every 0.2 s) until remote video decodes (and
    keeps decoding: more frames than at the poll before) and remote audio arrives;
    return the last stats."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    previous_frames = -1
    while time.monotonic() < deadline:
        last = await inbound_stats(page)
        if last is not None:
            frames = last["video"]["framesDecoded"]
            audio = last["audio"]["packetsReceived"]
            if frames > min_frames and previous_frames >= 0 and frames > previous_frames:
                if audio > min_audio_packets:
                    return last
            previous_frames = frames
        await asyncio.sleep(0.2)
    state = await page.evaluate(
        "() => window.urok && {state: window.urok.state, errors: window.urok.errors,"
        " tracks: window.urok.tracks,"
        " sub: window.urok.pcs.subscriber && window.urok.pcs.subscriber.connectionState,"
        " pub: window.urok.pcs.publisher && window.urok.pcs.publisher.connectionState}"
    )
    raise AssertionError(f"no remote media within {timeout}s: stats={last} page={state}")
