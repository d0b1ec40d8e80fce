"""Blips in a lesson (issue 12): `python -m bench.chaos` (as root, in a network namespace of
its own: `unshare -n`, `ip link set lo up`; nftables cuts the bots' paths).

    python -m bench.chaos --people 30 --seconds 120 --concurrent 3

The server runs as its own process (`urok serve`, embedded defaults: resume grace
20 s). `--people` aiortc bots join one lesson (the first is the teacher) and publish a
pre-encoded microphone; the teacher posts a chat message every second. Meanwhile, up to
`--concurrent` pupils at a time lose their network for 1–5 s (random): the bot's
WebSocket dies and nftables drops every UDP packet of its peer connections; when the
blip is over the bot resumes (docs/protocol.md "resume"), as the call page does.
Reported: blips, resumes and failed resumes, the time from the blip's end to `resumed`
and to the teacher's audio arriving again (p50/p99), chat messages a pupil missed or got
twice (live or replayed in `resumed`), and "left"/"joined" announcements of anyone (there
must be none: nobody left).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import Bot
from bench.nft_drop import dropping
from bench.preencoded import PreEncodedTrack, prepare_media
from bench.server import Journal, ServerProcess
from sfu.aiortc_hooks import restrict_host_addresses
from signalling.config import DEMO_SECRET

MEDIA_BACK_PACKETS = 5  # the teacher's audio packets that say media is back
WAIT_S = 30.0


@dataclass
class Report:
    people: int
    seconds: float
    blips: int = 0
    resumed: int = 0
    failed: int = 0
    resume_s: list[float] = field(default_factory=list)
    media_back_s: list[float] = field(default_factory=list)
    media_not_back: int = 0
    packets_through_cuts: int = 0  # the teacher's audio a cut bot got mid-blip: 0
    chat_sent: int = 0
    chat_missed: int = 0
    chat_twice: int = 0
    left_or_joined: int = 0

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("resume_s", "media_back_s"):
            values = sorted(data.pop(name))
            data[f"{name}_p50"] = _percentile(values, 50)
            data[f"{name}_p99"] = _percentile(values, 99)
            data[f"{name}_max"] = values[-1] if values else None
        return data


def _percentile(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * p / 100))], 3)


async def blip(bot: Bot, teacher_id: str, seconds: float, report: Report, n: int) -> None:
    """`bot` loses its network for `seconds`, then resumes; what it took is reported."""
    ports = sorted(Bot.udp_ports(bot.publisher) | Bot.udp_ports(bot.subscriber))
    matches = [f"udp sport {{ {', '.join(map(str, ports))} }}"] if ports else []
    matches += [f"udp dport {{ {', '.join(map(str, ports))} }}"] if ports else []
    report.blips += 1
    await bot.drop_signalling()
    if matches:
        cut = dropping(f"chaos{n}", matches)
        await asyncio.to_thread(cut.__enter__)
    try:
        # Nothing gets through the cut (after what was already on its way).
        await asyncio.sleep(0.5)
        during = bot.packet_counts[(teacher_id, "audio")]
        await asyncio.sleep(seconds - 0.5)
        report.packets_through_cuts += bot.packet_counts[(teacher_id, "audio")] - during
    finally:
        if matches:
            await asyncio.to_thread(cut.__exit__, None, None, None)
    back = time.monotonic()
    before = bot.packet_counts[(teacher_id, "audio")]
    try:
        reply = await bot.resume(timeout=WAIT_S)
    except Exception:  # a resume that never answered counts as failed
        reply = {"type": "error"}
    if reply["type"] != "resumed":
        report.failed += 1
        return
    report.resumed += 1
    report.resume_s.append(time.monotonic() - back)
    deadline = back + WAIT_S
    while bot.packet_counts[(teacher_id, "audio")] < before + MEDIA_BACK_PACKETS:
        if time.monotonic() > deadline:
            report.media_not_back += 1
            return
        await asyncio.sleep(0.01)
    report.media_back_s.append(time.monotonic() - back)


async def blips(pupils: list[Bot], teacher_id: str, args: argparse.Namespace, r: Report) -> None:
    """`--concurrent` lanes of blips until `--seconds` have passed."""
    end = time.monotonic() + args.seconds
    busy: set[int] = set()
    counter = iter(range(1_000_000))

    async def lane() -> None:
        while time.monotonic() < end:
            free = [i for i in range(len(pupils)) if i not in busy]
            index = random.choice(free)
            busy.add(index)
            try:
                await blip(pupils[index], teacher_id, random.uniform(1, 5), r, next(counter))
            finally:
                busy.discard(index)
            await asyncio.sleep(random.uniform(0, 2))

    await asyncio.gather(*(lane() for _ in range(args.concurrent)))


async def chat_ticks(teacher: Bot, stop: asyncio.Event, report: Report) -> None:
    while not stop.is_set():
        await teacher.send({"type": "chat_send", "text": f"такт {report.chat_sent}"})
        report.chat_sent += 1
        await asyncio.sleep(1)


def chat_received(bot: Bot) -> Counter[int]:
    """Every chat seq this bot got, live or replayed in a `resumed`."""
    seqs: Counter[int] = Counter()
    for message in bot.messages:
        if message["type"] == "chat_message":
            seqs[message["message"]["seq"]] += 1
        elif message["type"] == "resumed":
            seqs.update(m["seq"] for m in message.get("chat", []))
    return seqs


def check_after(teacher: Bot, pupils: list[Bot], report: Report) -> None:
    sent = {m["message"]["seq"] for m in teacher.messages if m["type"] == "chat_message"}
    for pupil in pupils:
        got = chat_received(pupil)
        report.chat_missed += len(sent - set(got))
        report.chat_twice += sum(1 for seq, n in got.items() if seq in sent and n > 1)
    for bot in (teacher, *pupils):
        report.left_or_joined += sum(
            1
            for m in bot.messages
            if m["type"] in ("participant_left", "participant_joined")
            and m.get("participant_id", m.get("participant", {}).get("id")) != bot.id
        )


async def run(args: argparse.Namespace) -> Report:
    report = Report(args.people, args.seconds)
    media = prepare_media(audio_seconds=2, video_seconds=0.2, width=160, height=120)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess("signalling.cli", Path(tmp) / "server.log")
        await server.start()
        bots: list[Bot] = []
        try:
            async with aiohttp.ClientSession() as http:
                journal = Journal(server.base_url, DEMO_SECRET, http)
                names = [f"s-{i}" for i in range(1, args.people)]
                lesson = await journal.create_lesson("t-1", names)
                roles = [("t-1", "teacher")] + [(name, "student") for name in names]
                for user, role in roles:
                    token = await journal.token(lesson, user, role)
                    bot = Bot(server.base_url, token, decode=False)
                    bots.append(bot)
                    await bot.connect(timeout=WAIT_S)
                    await bot.publish([(PreEncodedTrack(media.audio), "microphone")], WAIT_S)
            teacher, pupils = bots[0], bots[1:]
            # Only the announcements from here on count (the joins above were real).
            for bot in bots:
                bot.messages.clear()
            stop = asyncio.Event()
            ticking = asyncio.create_task(chat_ticks(teacher, stop, report))
            await blips(pupils, teacher.id, args, report)
            stop.set()
            await ticking
            await asyncio.sleep(2)  # the last ticks arrive
            check_after(teacher, pupils, report)
        finally:
            for bot in bots:
                await bot.close()
            await server.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--concurrent", type=int, default=3, help="pupils cut at once")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    if not 2 <= args.people <= 200 or not 1 <= args.concurrent < args.people:
        parser.error("--people 2..200, --concurrent 1..people-1")
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds 1..600")
    random.seed(args.seed)
    restrict_host_addresses(["127.0.0.1"])  # the bots' candidates: aioice leaves loopback out
    summary = asyncio.run(run(args)).summary()
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
