"""An attack during a lesson (issue 9): the worst frames and bodies, while bots forward media.

    python -m bench.attack [load bench options]   (the same as python -m bench.load --attack)
    python -m bench.attack -p 2 -n 8 --seconds 20 --attack-rate 0

The load bench (bench/load.py) runs its lesson (by default 2 publishers + 8
subscribers = 10 bots) and measures three windows in one run: before the
attack, during it, and after it. The attacker is a separate process (its CPU
is not the bench's, so it cannot slow the bots' event loop), started before
the first window: it opens --attack-joined WebSocket connections that join
the lesson as rostered students (tokens from the journal API) and stay idle
until the attack, --attack-unjoined connections that never join, and
--attack-http HTTP clients. When told, it replays in a loop, for the attack
window only, the frames and bodies that once blocked the server's event loop
for seconds (tests/test_bounded_work.py) and the worst ones
bench/worst_messages.py found: each connection sends a frame, waits for the
server's answer (an error, or a pong), and sends the next one, flat out
(--attack-rate 0) or at most R frames a second. Every frame is refused: the
attack changes nothing in the lesson.

Bounds: the attacker only talks to a loopback address, stops at the end of
its window or after --attack-max-frames frames and requests, whichever comes
first, and exits when the bench closes its standard input (or after
WORKER_LIFETIME in any case).

The report gives, per window, the forwarding latency, loss and server CPU as
the load bench does, the frames and requests the server answered the attacker
per second, and the server's /healthz response time (probed every
HEALTH_PERIOD from the bench process); and the ratio of the p99 latency with
the attack to before (and to after) it, which is what to compare on a shared,
noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from bench.worst_messages import HALFWAY, padded_ping
from signalling.config import DEMO_SECRET
from signalling.protocol import MAX_UNJOINED_BYTES

JOINED_BYTES = 320 * 1024  # the server's max_ws_message_bytes (signalling.config)
WORKER_LIFETIME = 900.0  # seconds: the attacker process exits after this whatever happens
REPLY_TIMEOUT = 10.0
HEALTH_PERIOD = 0.1
BUCKET = 0.1  # seconds: answers are counted per bucket of the monotonic clock


# --------------------------------------------------------------------------- the attack


def _objects(count: int) -> list[dict[str, int]]:
    return [{"a": i} for i in range(count)]


def _numbers(literal: str, limit: int) -> str:
    count = min((limit - 40) // (len(literal) + 1), 4000)
    return '{"type":"ping","x":[' + ",".join([literal] * count) + "]}"


def unjoined_frames() -> list[str]:
    """Frames for a connection that never joins (the server reads 8 KiB at most)."""
    return [
        json.dumps({"type": "recording_start", "visibility": _objects(1500)}),  # 15 KB
        json.dumps({"type": "recording_start", "visibility": _objects(500)}),
        json.dumps({"type": "publish", "sdp": "x", "tracks": [{}] * 60_000}),
        json.dumps({"type": "subscribe_answer", "sdp": "v" * 300_000}),
        '{"type":"ping","x":' + "[" * 4000 + "]" * 4000 + "}",
        '{"type":"ping","x":' + '{"a":' * 3000 + "1" + "}" * 3000 + "}",
        '{"type":"ping","x":' + "[" * 990 + "]" * 990 + "}",
        _numbers("9" * 4299, MAX_UNJOINED_BYTES),
        padded_ping(MAX_UNJOINED_BYTES),  # answered pong
        padded_ping(MAX_UNJOINED_BYTES + 1),
    ]


def joined_frames() -> list[str]:
    """Frames for a student's connection (the server reads 320 KiB)."""
    return [
        json.dumps({"type": "recording_start", "visibility": _objects(1500)}),
        json.dumps({"type": "publish", "sdp": "x", "tracks": [{}] * 60_000}),
        json.dumps({"type": "publish", "sdp": "x", "tracks": [{}] * 100_000}),  # 400 KB
        json.dumps({"type": "publish", "sdp": "x", "tracks": _objects(1300)}),
        json.dumps({"type": "breakout_assign", "assignments": {f"p{i}": "r" for i in range(4000)}}),
        json.dumps(
            {
                "type": "set_permissions",
                "role": "student",
                "permissions": {f"k{i}": True for i in range(4000)},
            }
        ),
        json.dumps({"type": "subscribe_answer", "sdp": "v" * 300_000}),
        '{"type":"ping","x":' + "[" * 4000 + "]" * 4000 + "}",
        '{"type":"ping","x":' + '{"a":' * 3000 + "1" + "}" * 3000 + "}",
        '{"type":"ping","x":' + "[" * 990 + "]" * 990 + "}",
        json.dumps({"type": "mute", "participant_id": "p", "kind": [[0] * 3] * 300}),
        _numbers("9" * 4299, JOINED_BYTES),  # 47 ms a frame before numbers were bounded
        _numbers(HALFWAY, JOINED_BYTES),  # 38 ms
        _numbers("3.6038705561092812e-13", 100_000),
        json.dumps({"type": "ping", "id": "i" * 327_000}),
        padded_ping(JOINED_BYTES),  # answered pong
        padded_ping(JOINED_BYTES + 1),
    ]


def http_requests(invite_path: str | None) -> list[tuple[str, bytes, bool]]:
    """(path, body, with the integration secret): every one answered 400."""
    deep = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
    requests = [
        ("/api/v1/lessons", json.dumps({"roster": [{}] * 60_000}).encode(), True),
        ("/api/v1/lessons", deep, True),
        ("/api/v1/lessons", _numbers("9" * 4299, 250_000).encode(), True),
        ("/api/v1/calls", deep, True),
    ]
    if invite_path is not None:
        requests.append((invite_path, deep, False))
    return requests


@dataclass
class AttackStats:
    """What the attacker sent and what the server answered (one attack window)."""

    seconds: float = 0.0
    frames_sent: int = 0
    frames_answered: int = 0
    requests_sent: int = 0
    requests_answered: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # error code / pong / HTTP status
    reconnects: int = 0
    failures: list[str] = field(default_factory=list)
    # Answers per BUCKET of the (system-wide) monotonic clock: int(t / BUCKET) -> count.
    buckets: Counter[int] = field(default_factory=Counter)
    reply_ms: list[float] = field(default_factory=list)  # send to answer, per frame/request

    def answered(self, now: float, sent_at: float, what: str, frame: bool) -> None:
        if frame:
            self.frames_answered += 1
        else:
            self.requests_answered += 1
        self.answers[what] += 1
        self.buckets[int(now / BUCKET)] += 1
        self.reply_ms.append(1000 * (now - sent_at))

    def to_json(self) -> dict[str, Any]:
        replies = np.array(self.reply_ms) if self.reply_ms else None
        return {
            "seconds": self.seconds,
            "frames_sent": self.frames_sent,
            "frames_answered": self.frames_answered,
            "requests_sent": self.requests_sent,
            "requests_answered": self.requests_answered,
            "answers": dict(self.answers),
            "reconnects": self.reconnects,
            "failures": self.failures[:20],
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "reply_p50_ms": None if replies is None else float(np.percentile(replies, 50)),
            "reply_p99_ms": None if replies is None else float(np.percentile(replies, 99)),
            "reply_max_ms": None if replies is None else float(replies.max()),
        }


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the attacker only attacks a loopback address, not {host!r}")


class Attacker:
    """The connections and the attack loops (runs in the attacker process)."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        tokens: list[str],
        unjoined: int,
        http_clients: int,
        rate: float,
        max_frames: int,
    ) -> None:
        check_loopback(base_url)
        self.base_url = base_url.rstrip("/")
        self.ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.secret = secret
        self.tokens = tokens
        self.unjoined = unjoined
        self.http_clients = http_clients
        self.rate = rate
        self.max_frames = max_frames
        self.http: aiohttp.ClientSession | None = None
        self.joined: list[aiohttp.ClientWebSocketResponse] = []
        self.call_id: str | None = None
        self.invite_path: str | None = None
        self._unjoined_frames = unjoined_frames()
        self._joined_frames = joined_frames()

    async def prepare(self) -> None:
        self.http = aiohttp.ClientSession()
        for token in self.tokens:
            ws = await self.http.ws_connect(self.ws_url, max_msg_size=0)
            await ws.send_str(json.dumps({"type": "join", "token": token}))
            while True:
                reply = json.loads((await ws.receive(timeout=REPLY_TIMEOUT)).data)
                if reply["type"] == "joined":
                    break
                if reply["type"] in ("error", "waiting"):
                    raise RuntimeError(f"the attacker could not join: {reply}")
            self.joined.append(ws)
        if self.http_clients:
            # An ad-hoc call, for its invite link (POST /invite/{code} needs no secret).
            async with self.http.post(
                self.base_url + "/api/v1/calls",
                json={"title": "Attack bench", "host": {"id": "attack-host", "name": "Host"}},
                headers={"Authorization": f"Bearer {self.secret}"},
            ) as response:
                call = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"cannot create an ad-hoc call: {call}")
            self.call_id = call["id"]
            self.invite_path = urlsplit(call["invite_url"]).path

    async def close(self) -> None:
        for ws in self.joined:
            with contextlib.suppress(Exception):
                await ws.send_str('{"type":"leave"}')
                await ws.close()
        if self.http is not None:
            if self.call_id is not None:
                with contextlib.suppress(Exception):
                    async with self.http.delete(
                        f"{self.base_url}/api/v1/calls/{self.call_id}",
                        headers={"Authorization": f"Bearer {self.secret}"},
                    ):
                        pass
            await self.http.close()

    async def attack(self, seconds: float) -> AttackStats:
        stats = AttackStats()
        started = time.monotonic()
        deadline = started + seconds
        loops = [self._joined_loop(ws, i, stats, deadline) for i, ws in enumerate(self.joined)]
        loops += [self._unjoined_loop(i, stats, deadline) for i in range(self.unjoined)]
        loops += [self._http_loop(i, stats, deadline) for i in range(self.http_clients)]
        await asyncio.gather(*loops)
        stats.seconds = time.monotonic() - started
        return stats

    def _go_on(self, stats: AttackStats, deadline: float) -> bool:
        return (
            time.monotonic() < deadline
            and stats.frames_sent + stats.requests_sent < self.max_frames
        )

    async def _pace(self, sent_at: float) -> None:
        if self.rate > 0:
            await asyncio.sleep(max(0.0, sent_at + 1 / self.rate - time.monotonic()))

    async def _exchange(
        self, ws: aiohttp.ClientWebSocketResponse, frame: str, stats: AttackStats
    ) -> str | None:
        """Send one frame; the server's answer to it (None: the connection closed)."""
        sent_at = time.monotonic()
        await ws.send_str(frame)
        stats.frames_sent += 1
        while True:
            msg = await ws.receive(timeout=REPLY_TIMEOUT)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return None
            reply = json.loads(msg.data)
            if reply.get("type") in ("error", "pong"):
                what = reply.get("code", "pong")
                stats.answered(time.monotonic(), sent_at, what, frame=True)
                return str(what)
            # Anything else is the lesson going on (participants, offers): not an answer.

    async def _joined_loop(
        self, ws: aiohttp.ClientWebSocketResponse, index: int, stats: AttackStats, deadline: float
    ) -> None:
        frames = itertools.cycle(self._joined_frames[index:] + self._joined_frames[:index])
        while self._go_on(stats, deadline):
            sent_at = time.monotonic()
            try:
                if await self._exchange(ws, next(frames), stats) is None:
                    stats.failures.append("a joined connection was closed")
                    return
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.failures.append(f"joined: {type(exc).__name__}: {exc}")
                return
            await self._pace(sent_at)

    async def _unjoined_loop(self, index: int, stats: AttackStats, deadline: float) -> None:
        assert self.http is not None
        frames = itertools.cycle(self._unjoined_frames[index:] + self._unjoined_frames[:index])
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            while self._go_on(stats, deadline):
                sent_at = time.monotonic()
                if ws is None or ws.closed:
                    if ws is not None:
                        stats.reconnects += 1
                    ws = await self.http.ws_connect(self.ws_url, max_msg_size=0)
                try:
                    answer = await self._exchange(ws, next(frames), stats)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    stats.failures.append(f"unjoined: {type(exc).__name__}: {exc}")
                    answer = None
                if answer in (None, "join_timeout"):
                    await ws.close()  # the server gives a connection 10 s to join
                await self._pace(sent_at)
        finally:
            if ws is not None:
                await ws.close()

    async def _http_loop(self, index: int, stats: AttackStats, deadline: float) -> None:
        assert self.http is not None
        requests = http_requests(self.invite_path)
        cycle = itertools.cycle(requests[index:] + requests[:index])
        while self._go_on(stats, deadline):
            path, body, auth = next(cycle)
            headers = {"Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = f"Bearer {self.secret}"
            sent_at = time.monotonic()
            stats.requests_sent += 1
            try:
                async with self.http.post(self.base_url + path, data=body, headers=headers) as r:
                    await r.read()
                    stats.answered(time.monotonic(), sent_at, f"HTTP {r.status}", frame=False)
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.failures.append(f"http: {type(exc).__name__}: {exc}")
            await self._pace(sent_at)


async def _worker(args: argparse.Namespace) -> int:
    """The attacker process: prepare, then attack when told ("go SECONDS"), until stdin closes."""
    attacker = Attacker(
        args.url,
        args.secret,
        args.token or [],
        args.unjoined,
        args.http,
        args.rate,
        args.max_frames,
    )

    def say(data: dict[str, Any]) -> None:
        print(json.dumps(data), flush=True)

    async with asyncio.timeout(WORKER_LIFETIME):
        try:
            await attacker.prepare()
            say({"ready": True})
            while True:
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line or line.strip() == "quit":
                    break
                command, _, seconds = line.strip().partition(" ")
                if command == "go":
                    stats = await attacker.attack(min(float(seconds), WORKER_LIFETIME))
                    say({"stats": stats.to_json()})
        finally:
            await attacker.close()
    return 0


# --------------------------------------------------------------------------- bench side


class AttackerProcess:
    """`python -m bench.attacker --worker ...`, driven over its stdin and stdout."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None

    async def start(
        self,
        base_url: str,
        secret: str,
        tokens: list[str],
        unjoined: int,
        http_clients: int,
        rate: float,
        max_frames: int,
        timeout: float = 60.0,
    ) -> None:
        from bench.server import REPO_ROOT, server_env

        check_loopback(base_url)
        command = [
            sys.executable, "-m", "bench.attacker", "--worker", "--url", base_url,
            "--secret", secret, "--unjoined", str(unjoined), "--http", str(http_clients),
            "--rate", str(rate), "--max-frames", str(max_frames),
        ]  # fmt: skip
        for token in tokens:
            command += ["--token", token]
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=server_env(),
            cwd=str(REPO_ROOT),
            limit=64 * 1024 * 1024,
        )
        reply = await self._read(timeout)
        if not reply.get("ready"):
            raise RuntimeError(f"the attacker did not start: {reply}")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the attacker process exited")
        data: dict[str, Any] = json.loads(line)
        return data

    async def go(self, seconds: float) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"go {seconds}\n".encode())
        await self.process.stdin.drain()

    async def stats(self, timeout: float) -> dict[str, Any]:
        reply = await self._read(timeout)
        stats: dict[str, Any] = reply["stats"]
        return stats

    async def stop(self, timeout: float = 20.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class HealthProbe:
    """GET /healthz every HEALTH_PERIOD: (monotonic time sent, seconds to the answer)."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/healthz"
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    def start(self, http: aiohttp.ClientSession) -> None:
        self._task = asyncio.ensure_future(self._run(http))

    async def _run(self, http: aiohttp.ClientSession) -> None:
        while True:
            sent = time.monotonic()
            try:
                async with http.get(self.url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
                    if r.status == 200:
                        self.samples.append((sent, time.monotonic() - sent))
                    else:
                        self.failures += 1
            except (aiohttp.ClientError, TimeoutError):
                self.failures += 1
            await asyncio.sleep(max(0.0, sent + HEALTH_PERIOD - time.monotonic()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, t0: float, t1: float) -> list[float]:
        return [seconds for sent, seconds in self.samples if t0 <= sent <= t1]


def answered_between(stats: dict[str, Any] | None, t0: float, t1: float) -> int:
    """Answers the attacker got in [t0, t1] (to a BUCKET)."""
    if stats is None:
        return 0
    first, last = int(t0 / BUCKET), int(t1 / BUCKET)
    return sum(v for k, v in stats["buckets"].items() if first <= int(k) < last)


# --------------------------------------------------------------------------- command line


def _worker_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.attacker --worker")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", default=DEMO_SECRET)
    parser.add_argument("--token", action="append")
    parser.add_argument("--unjoined", type=int, default=2)
    parser.add_argument("--http", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--max-frames", type=int, default=1_000_000)
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    """`python -m bench.attacker --worker ...`: the attacker process load starts."""
    return await _worker(_worker_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    from bench.cli import run_main

    run_main(main)
