"""Chromium as a call participant for benches: launched on a test host, joins, reports getStats.

Playwright (a test dependency) is imported only when a browser is started.
The flags are those of the browser tests (tests/browser/harness.py imports
them from here): headless, fake devices when wanted, loopback allowed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = os.environ.get("UROK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
FAKE_DEVICES = "--use-fake-device-for-media-stream"

# The subscriber connection's inbound-rtp entries summed per kind (cumulative
# getStats counters), and the number of streams that carried anything.
SUBSCRIBER_STATS_JS = """
async () => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs.subscriber;
  if (!pc) return null;
  const sums = {
    audio: ['packetsReceived', 'packetsLost', 'concealedSamples', 'totalSamplesReceived',
            'concealmentEvents', 'jitterBufferDelay', 'jitterBufferEmittedCount'],
    video: ['packetsReceived', 'packetsLost', 'framesDecoded', 'framesReceived',
            'framesDropped', 'nackCount', 'pliCount', 'firCount', 'freezeCount',
            'totalFreezesDuration', 'keyFramesDecoded'],
  };
  const out = {audio: {streams: 0}, video: {streams: 0}};
  for (const kind of ['audio', 'video']) for (const k of sums[kind]) out[kind][k] = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || !out[s.kind]) return;
    if ((s.packetsReceived || 0) > 0) out[s.kind].streams += 1;
    for (const k of sums[s.kind]) out[s.kind][k] += s[k] || 0;
  });
  return out;
}
"""


class ChromiumError(RuntimeError):
    pass


def require_chromium() -> None:
    """Fail (never skip) when the browser is missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise ChromiumError(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) "
            "or point UROK_CHROMIUM at it"
        )


@asynccontextmanager
async def chromium_page(
    executable: str | Path = CHROMIUM, origin: str | None = None, fake_devices: bool = True
) -> AsyncIterator[Page]:
    """One headless Chromium process (e.g. `host.executable(CHROMIUM)`: on a test host)
    with one page. `origin`: a server not on loopback that the page must treat as
    secure, or getUserMedia is not there."""
    from playwright.async_api import async_playwright

    require_chromium()
    args = [a for a in CHROMIUM_ARGS if fake_devices or a != FAKE_DEVICES]
    if origin is not None:
        args.append(f"--unsafely-treat-insecure-origin-as-secure={origin}")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(executable), args=args)
        try:
            context = await browser.new_context(locale="ru-RU")
            yield await context.new_page()
        finally:
            await browser.close()


async def join_without_devices(page: Page, url: str, timeout_ms: int = 40000) -> str:
    """Open the call page and join with no camera or microphone (a listening pupil);
    returns the participant id."""
    from playwright.async_api import Error as PlaywrightError

    try:
        await page.goto(url)
        await page.wait_for_function(
            "() => !document.getElementById('join-audio').disabled", timeout=timeout_ms
        )
        await page.locator("#join-audio").click()
        await page.wait_for_function(
            "() => window.urok && window.urok.state === 'in-call'", timeout=timeout_ms
        )
        return str(await page.evaluate("() => window.urok.self.id"))
    except PlaywrightError as exc:
        state = await page.evaluate(
            "() => window.urok && {state: window.urok.state, errors: window.urok.errors}"
        )
        raise ChromiumError(f"the call page did not join: {exc.message}; page: {state}") from exc


async def subscriber_stats(page: Page) -> dict[str, Any] | None:
    stats = await page.evaluate(SUBSCRIBER_STATS_JS)
    return dict(stats) if stats is not None else None
