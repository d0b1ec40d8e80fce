"""Audio loss after Opus FEC / RED on a lossy downlink, at real Chromium subscribers (issue 16).

    unshare -n sh -c 'ip link set lo up && exec python -m bench.audio_loss --loss 0,3,10'

Run as root in a network namespace of its own (the test link: bench/links.py), with
Playwright and Chromium as for the browser tests (`UROK_CHROMIUM`, default
/usr/bin/chromium). The server runs in this process, on the test link's address.

Two publishers on loopback, microphone only: Chromium as it is ("red": it sends RED,
each packet carrying the one before), and an aiortc bot ("opus": pre-encoded plain Opus,
as a browser without RED sends it). Two Chromium subscribers on one test host, behind a
link with random downlink loss: one as it is ("red": takes RED, which the server sends
two packets deep whatever the publisher sent, sfu/red_forwarding.py), and the control,
which negotiates no RED and so gets plain Opus (the primary blocks), as before RED was
negotiated. Loss is random per packet: both see the same rate, not the same packets.

Audio loss after recovery is what the listener hears filled in: NetEq's concealed
samples over all samples played (`concealedSamples / totalSamplesReceived` of
inbound-rtp, per stream, over the window), next to the mean jitter buffer delay (how late
a redundant copy may come and still be played) and, for the control, the packets lost on
the way (RTP `packetsLost`, before any recovery).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path

import aiohttp
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright

from bench.bot import Bot
from bench.in_process import app_in_process
from bench.links import Host, LinkSpec, Testbed
from bench.preencoded import PreEncodedTrack, encode_audio
from bench.server import Journal
from sfu import red_forwarding
from signalling.config import DEMO_SECRET

PUBLISHERS = ("red", "opus")
# A window whose concealment episodes last this long on average is a stall, not loss.
STALL_MS = 60.0
SUBSCRIBERS = ("red", "control")

# An init script: the page's connections negotiate no audio/red (setCodecPreferences
# before every offer and answer), like a browser without RED.
NO_RED_JS = """(() => {
  const withoutRed = (pc) => {
    const codecs = RTCRtpReceiver.getCapabilities('audio').codecs
      .filter((c) => c.mimeType.toLowerCase() !== 'audio/red');
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind !== 'audio' || t.stopped) continue;
      t.setCodecPreferences(codecs);
    }
  };
  for (const name of ['createOffer', 'createAnswer']) {
    const original = RTCPeerConnection.prototype[name];
    RTCPeerConnection.prototype[name] = function (...args) {
      withoutRed(this);
      return original.apply(this, args);
    };
  }
})();"""

# The subscriber connection's audio streams by sender: {participant_id: counters}.
AUDIO_STATS_JS = """async () => {
  const pc = window.urok && window.urok.pcs && window.urok.pcs.subscriber;
  const out = {};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
    const info = window.urok.tracks[s.mid];
    if (!info || !info.participant_id) return;
    out[info.participant_id] = {
      received: s.packetsReceived || 0, lost: s.packetsLost || 0,
      concealed: s.concealedSamples || 0, total: s.totalSamplesReceived || 0,
      events: s.concealmentEvents || 0, bytes: s.bytesReceived || 0,
      delay_ms: Math.round(1000 * (s.jitterBufferDelay || 0)),
      emitted: s.jitterBufferEmittedCount || 0,
    };
  });
  return out;
}"""


@dataclass(frozen=True)
class AudioWindow:
    """One stream at one subscriber over a window (differences of getStats counters)."""

    received: int
    lost: int
    concealed: int
    total: int
    events: int  # concealment episodes (a lost packet, or a stall in playout)
    bytes: int  # RTP payload received
    delay_ms: int  # jitter buffer delay, summed over the samples played
    emitted: int

    def __add__(self, other: AudioWindow) -> AudioWindow:
        return AudioWindow(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def event_ms(self) -> float:
        """The mean length of a concealment episode (48 kHz): 20 ms a lost packet."""
        # No new episode but samples concealed: one going on from the window before.
        return self.concealed / max(1, self.events) / 48

    @property
    def jitter_buffer_ms(self) -> float:
        """The mean jitter buffer delay: how late a redundant copy may come and still play."""
        return self.delay_ms / self.emitted if self.emitted else float("nan")

    @property
    def kbit_s(self) -> float:
        """Payload received per second of audio played."""
        return self.bytes * 8 / 1000 / (self.total / 48000) if self.total else float("nan")

    @property
    def concealed_percent(self) -> float:
        return 100.0 * self.concealed / self.total if self.total else float("nan")

    @property
    def lost_percent(self) -> float:
        sent = self.received + self.lost
        return 100.0 * self.lost / sent if sent else float("nan")


def window(before: Mapping[str, int], after: Mapping[str, int]) -> AudioWindow:
    return AudioWindow(**{key: after[key] - before[key] for key in AudioWindow.__annotations__})


Key = tuple[str, str]  # (subscriber, publisher)


@dataclass
class Step:
    loss_percent: float  # set on the link
    link_loss_percent: float  # measured: dropped / sent towards the host, all packets
    windows: list[dict[Key, AudioWindow]] = field(default_factory=list)

    @property
    def streams(self) -> dict[Key, AudioWindow]:
        """Each stream over the whole step."""
        keys = set.intersection(*(set(w) for w in self.windows)) if self.windows else set()
        return {
            k: functools.reduce(AudioWindow.__add__, (w[k] for w in self.windows)) for k in keys
        }

    def steady(self, key: Key) -> list[AudioWindow]:
        """The windows without a stall: a busy machine's playout (or a publisher's capture)
        stops now and then for 60-450 ms, loss or not, concealed as one long episode,
        while a packet lost for good is 20 ms (RED leaves three in a row at random loss
        p about p**3 of the time)."""
        return [w[key] for w in self.windows if w[key].event_ms < STALL_MS]

    def steady_concealed(self, key: Key) -> float:
        """Concealed percent over the steady windows."""
        kept = self.steady(key)
        total = sum(w.total for w in kept)
        return 100.0 * sum(w.concealed for w in kept) / total if total else float("nan")


async def audio_stats(page: Page) -> dict[str, dict[str, int]]:
    return dict(await page.evaluate(AUDIO_STATS_JS))


async def measure(
    subscribers: Mapping[str, Page],
    publishers: Mapping[str, str],
    host: Host,
    losses: Sequence[float],
    seconds: float,
    windows: int = 1,
    settle: float = 2.0,
) -> list[Step]:
    """For each loss rate: shape the host's link, let it settle, then take `windows`
    windows of `seconds` one after the other.

    subscribers: role -> page; publishers: participant id -> role."""
    steps = []
    for loss in losses:
        host.shape(replace(host.spec, loss_percent=loss))
        await asyncio.sleep(settle)
        counters = host.counters()
        step = Step(loss, 0.0)
        after = {role: await audio_stats(page) for role, page in subscribers.items()}
        for _ in range(windows):
            before = after
            await asyncio.sleep(seconds)
            after = {role: await audio_stats(page) for role, page in subscribers.items()}
            step.windows.append(
                {
                    (role, publishers[pid]): window(before[role][pid], after[role][pid])
                    for role in subscribers
                    for pid in publishers
                    if pid in before[role] and pid in after[role]
                }
            )
        sent = host.counters().packets_to_host - counters.packets_to_host
        dropped = host.counters().dropped_to_host - counters.dropped_to_host
        step.link_loss_percent = 100.0 * dropped / max(1, sent)
        steps.append(step)
    return steps


def _cell(step: Step, key: Key) -> str:
    stream = step.streams.get(key)
    if stream is None:
        return "n/a"
    cell = f"{stream.concealed_percent:.2f} %"
    if len(step.windows) > 1:
        stalls = len(step.windows) - len(step.steady(key))
        cell += f" (steady {step.steady_concealed(key):.2f} %, {stalls} stalled)"
    cell += f"; {stream.events} × {stream.event_ms:.0f} ms; {stream.jitter_buffer_ms:.0f} ms"
    cell += f"; {stream.kbit_s:.0f} kbit/s"
    if key[0] == "control":
        cell += f"; RTP {stream.lost_percent:.1f} %"
    return cell


def report(steps: Sequence[Step], seconds: float) -> str:
    sends = {"red": "Chromium: RED, 1 back", "opus": "aiortc bot: Opus"}
    windows = max((len(s.windows) for s in steps), default=1)
    lines = [
        f"Audio concealed after recovery (concealed / played samples) over {windows} x "
        f"{seconds:g} s a step (steady: without the windows that stalled, {STALL_MS:.0f} ms"
        " or more concealed at once);"
        " concealment episodes x their mean length; the mean jitter buffer delay; payload"
        " received; for the control, packets lost (RTP).",
        "",
        "| loss set (measured) | publisher sends | subscriber with RED | control, no RED |",
        "| --- | --- | --- | --- |",
    ]
    for step in steps:
        for publisher in PUBLISHERS:
            lines.append(
                f"| {step.loss_percent:g} % ({step.link_loss_percent:.1f} %) | {sends[publisher]} "
                f"| {_cell(step, ('red', publisher))} | {_cell(step, ('control', publisher))} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the bench run

CHROMIUM = os.environ.get("UROK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
)


@contextlib.asynccontextmanager
async def _server(host: Host) -> AsyncIterator[str]:
    """The app in this process on the test link's address (media on loopback and there)."""
    async with app_in_process(host.gateway, ("127.0.0.1", host.gateway)) as (base_url, _):
        yield base_url


@contextlib.asynccontextmanager
async def _chromium(
    pw: Playwright, origin: str, executable: str | Path, no_red: bool
) -> AsyncIterator[BrowserContext]:
    profile = tempfile.mkdtemp(prefix="urok-chromium-")
    try:
        context = await pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(executable),
            args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
            headless=True,
        )
        if no_red:
            await context.add_init_script(NO_RED_JS)
        try:
            yield context
        finally:
            await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


async def _join(context: BrowserContext, url: str) -> Page:
    page = context.pages[0] if context.pages else await context.new_page()
    await page.goto(url)
    await page.wait_for_function("() => !document.getElementById('join-audio').disabled")
    await page.locator("#join-audio").click()
    await page.wait_for_function("() => window.urok && window.urok.state === 'in-call'")
    return page


async def publish_opus_bot(base_url: str, token: str, seconds: float) -> Bot:
    """A participant publishing plain Opus (an aiortc bot: no RED), pre-encoded."""
    bot = Bot(base_url, token, decode=False)
    await bot.connect()
    await bot.publish([(PreEncodedTrack(encode_audio(seconds)), "microphone")])
    return bot


async def run(losses: Sequence[float], seconds: float, windows: int, warmup: float) -> list[Step]:
    with Testbed() as bed:
        host = bed.add_host(LinkSpec())
        async with _server(host) as base_url, aiohttp.ClientSession() as http:
            journal = Journal(base_url, DEMO_SECRET, http)
            lesson = await journal.create_lesson("t-1", ["s-1", "s-2", "s-3"])
            urls = []
            for user_id, role in (("t-1", "teacher"), ("s-2", "student"), ("s-3", "student")):
                body = await journal.call(
                    "POST",
                    f"/api/v1/lessons/{lesson}/tokens",
                    {"user": {"id": user_id, "name": user_id}, "role": role},
                )
                urls.append(str(body["url"]))
            bot = await publish_opus_bot(
                base_url, await journal.token(lesson, "s-1", "student"), warmup + 60
            )
            try:
                async with async_playwright() as pw, contextlib.AsyncExitStack() as stack:
                    remote = host.executable(CHROMIUM)
                    places = ((CHROMIUM, False), (remote, False), (remote, True))
                    contexts = [
                        await stack.enter_async_context(_chromium(pw, base_url, exe, no_red))
                        for exe, no_red in places
                    ]
                    pages = [await _join(c, url) for c, url in zip(contexts, urls, strict=True)]
                    publishers = {
                        await pages[0].evaluate("window.urok.self.id"): "red",
                        bot.id: "opus",
                    }
                    await asyncio.sleep(warmup)
                    subscribers = dict(zip(SUBSCRIBERS, pages[1:], strict=True))
                    return await measure(subscribers, publishers, host, losses, seconds, windows)
            finally:
                await bot.leave()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="0,3,10", help="downlink loss steps, percent")
    parser.add_argument("--seconds", type=float, default=1.0, help="one window")
    parser.add_argument("--windows", type=int, default=30, help="windows per step")
    parser.add_argument("--warmup", type=float, default=10.0, help="before the first step")
    parser.add_argument(
        "--redundancy",
        type=int,
        default=red_forwarding.REDUNDANCY,
        help="packets back in the server's RED (the server runs in this process)",
    )
    args = parser.parse_args(argv)
    red_forwarding.REDUNDANCY = args.redundancy
    losses = [float(x) for x in args.loss.split(",")]
    steps = asyncio.run(run(losses, args.seconds, args.windows, args.warmup))
    print(report(steps, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
