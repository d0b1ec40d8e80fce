"""The breakout bench's witness: another lesson on the server, in a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys

from bench.bot import Bot
from bench.breakout_media import RoomTrack, Switch
from bench.breakout_options import BenchError
from bench.breakout_setup import leave_bot
from bench.preencoded import encode_audio
from bench.server import REPO_ROOT, Journal, _die_with_parent, server_env
from sfu.aiortc_hooks import restrict_host_addresses


class Witness:
    """Another lesson on the same server, a teacher talking to one student: rooms don't touch it.

    Its two bots run in a process of their own (`--witness`), so the bench's busy
    event loop does not delay them: the largest gap between the student's
    packets shows how long the server held up forwarding for everybody.
    """

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.lesson_id: str | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, journal: Journal, base_url: str) -> None:
        self.lesson_id = await journal.create_lesson("bench-w-t", ["bench-w-s"])
        tokens = [
            await journal.token(self.lesson_id, "bench-w-t", "teacher"),
            await journal.token(self.lesson_id, "bench-w-s", "student"),
        ]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.breakout",
            "--witness",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=server_env(),
            cwd=str(REPO_ROOT),
            preexec_fn=_die_with_parent,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        # The tokens go through stdin, not the command line (which `ps` shows).
        self.process.stdin.write(json.dumps([base_url, *tokens]).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise BenchError(f"the witness process did not start: {line!r}")

    def max_gap(self, t0: float, t1: float) -> float | None:
        # From the last packet before t0 on, so a stall that begins at t0 counts whole.
        before = [t for t in self.arrivals if t < t0][-1:]
        times = before + [t for t in self.arrivals if t0 <= t <= t1]
        if len(times) < 2:
            return None
        return max(b - a for a, b in itertools.pairwise(times))

    async def stop(self, journal: Journal) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # end of input: it leaves and prints its arrival times
            try:
                out, _ = await asyncio.wait_for(process.communicate(), 30)
                self.arrivals = json.loads(out.decode().splitlines()[-1])
            except (TimeoutError, ValueError, IndexError):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self.lesson_id is not None:
            with contextlib.suppress(Exception):
                await journal.end_lesson(self.lesson_id)


async def witness_main() -> int:
    """The witness process: publish and receive until stdin ends, then print arrival times.

    stdin's first line is JSON: [server URL, teacher token, student token].
    """
    restrict_host_addresses(["127.0.0.1"])
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    base_url, teacher_token, student_token = json.loads(await reader.readline())
    arrivals: list[float] = []
    audio = await asyncio.to_thread(encode_audio, 10)
    teacher = Bot(base_url, teacher_token, decode=False)
    student = Bot(
        base_url, student_token, decode=False, on_packet=lambda p, k, now: arrivals.append(now)
    )
    try:
        await teacher.connect()
        await student.connect()
        track = RoomTrack(audio, b"\xff\xff", Switch(loud=True), 1)
        await teacher.publish([(track, "microphone")])
        print("ready", flush=True)
        await reader.read()
    finally:
        await asyncio.gather(leave_bot(teacher), leave_bot(student))
    print(json.dumps(arrivals), flush=True)
    return 0
