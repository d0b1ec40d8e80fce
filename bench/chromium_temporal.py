"""What Chromium's camera sends in each simulcast layer, by VP8 temporal layer: the bytes
and frame rate of TIDs 0, 1 and 2 (what a thumbnail at TIDs 0-1 costs: docs/performance.md
"Thumbnails at half the frame rate").

    python -m bench.chromium_temporal [--seconds 20] [--warmup 10]

(in a network namespace with only loopback up.) The app runs in this process on
loopback; one headless Chromium joins as the teacher with its fake camera through the
call page (three simulcast layers, as `publisher.js` asks); a second Chromium joins as a
pupil, so the camera is consumed. Every `--poll` s the bench reads the camera
producer's packet caches (`Producer.cached_packets`) and counts each packet once:
payload bytes and pictures (a picture's first packet) per layer and TID. Which layers
flow follows Chromium's own bandwidth estimate (our REMB): on a loaded machine `f` may
not be sent at all.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import aiohttp
from aiohttp import web
from playwright.async_api import Page

from bench.chromium import chromium_page
from bench.in_process import app_in_process
from bench.server import Journal
from sfu.producer import Producer
from sfu.vp8_descriptor import NO_TID, START, temporal_bits
from signalling.config import DEMO_SECRET
from signalling.keys import CALLS


async def _join(page: Page, url: str, video: bool) -> None:
    button = "#join-video" if video else "#join-audio"
    await page.goto(url)
    await page.wait_for_function(f"() => !document.querySelector('{button}').disabled")
    await page.locator(button).click()
    await page.wait_for_function("() => window.urok && window.urok.state === 'in-call'")


def _camera(app: web.Application, lesson: str, person: str) -> Producer | None:
    call = app[CALLS].get(lesson)
    participant = call.participants.get(person) if call is not None else None
    return participant.producers.get("camera") if participant is not None else None


async def count(producer: Producer, seconds: float, poll: float) -> dict[str, Counter[int]]:
    """Bytes and pictures by (layer, TID) of the packets that arrived over `seconds`."""
    seen: set[tuple[int, int, int]] = set()
    sizes: Counter[int] = Counter()
    pictures: Counter[int] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await asyncio.sleep(poll)
        for layer in range(producer.layer_count):
            for entry in producer.cached_packets(layer):
                key = (layer, entry.seq, entry.ts)
                if entry.received_at < started or key in seen:
                    continue
                seen.add(key)
                bits = temporal_bits(entry.payload)
                tid = 3 if bits == NO_TID else bits & 3  # 3: no TID
                sizes[layer * 4 + tid] += len(entry.payload)
                if bits != NO_TID and bits & START:
                    pictures[layer * 4 + tid] += 1
    return {"bytes": sizes, "pictures": pictures}


async def run(args: argparse.Namespace) -> str:
    async with app_in_process() as (base_url, app), aiohttp.ClientSession() as http:
        journal = Journal(base_url, DEMO_SECRET, http)
        lesson = await journal.create_lesson("t-1", ["s-1"])
        urls = []
        for user, role in (("t-1", "teacher"), ("s-1", "student")):
            body = await journal.call(
                "POST",
                f"/api/v1/lessons/{lesson}/tokens",
                {"user": {"id": user, "name": user}, "role": role},
            )
            urls.append(str(body["url"]))
        async with chromium_page() as teacher, chromium_page(fake_devices=False) as pupil:
            await _join(teacher, urls[0], video=True)
            await _join(pupil, urls[1], video=False)
            person = str(await teacher.evaluate("window.urok.self.id"))
            await asyncio.sleep(args.warmup)
            producer = _camera(app, lesson, person)
            if producer is None:
                raise RuntimeError("the teacher's camera did not reach the server")
            counted = await count(producer, args.seconds, args.poll)
    return report(counted, args.seconds)


def report(counted: dict[str, Counter[int]], seconds: float) -> str:
    sizes, pictures = counted["bytes"], counted["pictures"]
    lines = [
        "| layer | kbit/s | TID 0 / 1 / 2 of the bytes | pictures/s TID 0 / 1 / 2 "
        "| TIDs 0-1 of the bytes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for layer in range(3):
        total = sum(sizes[layer * 4 + tid] for tid in range(4))
        if not total:
            continue
        share = [sizes[layer * 4 + tid] / total for tid in range(3)]
        rates = [pictures[layer * 4 + tid] / seconds for tid in range(3)]
        lines.append(
            f"| {'qhf'[layer]} | {total * 8 / seconds / 1000:.0f} "
            f"| {' / '.join(f'{s:.0%}' for s in share)} "
            f"| {' / '.join(f'{r:.1f}' for r in rates)} | {share[0] + share[1]:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.25)
    print(asyncio.run(run(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
