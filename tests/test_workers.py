"""`urok serve --workers N`: real processes on a real redis-server, on loopback. Two
workers share the public port (two listening sockets on it), register as two nodes with
their own ids, media port slices and internal addresses; a killed worker is started
again; SIGTERM to the parent stops them all and their records go. Without Redis, or with
a worker count that is no count, it is refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bench.bot import Bot
from bench.media import PatternVideoTrack
from rooms.placement import NodeRecord
from rooms.placement_redis import RedisPlacement
from rooms.store_redis import DEFAULT_PREFIX
from signalling.cli import main
from signalling.config import ConfigError, Settings, settings_from_mapping
from signalling.worker_settings import check_workers, media_slice, worker_settings
from signalling.workers import Supervisor
from tests.live import free_port, running_server, wait_healthy
from tests.redis_server import redis_server

ROOT = Path(__file__).resolve().parent.parent
GREEN, BLUE = (30, 200, 30), (30, 30, 220)
START_SECONDS = 60.0  # two workers importing the media stack on a starved machine
CONFIG = """
[cluster]
node_id = "school-a"
[media]
udp_ports = "40000-40099"
"""


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not in {timeout:.0f} s: {what}"
        await asyncio.sleep(0.1)


def listening_sockets(port: int) -> int:
    """TCP sockets listening on `port` in this network namespace (/proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):  # no IPv6
            continue
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                count += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port
    return count


class Output:
    """What a process writes (stdout and stderr), read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        self.lines: list[str] = []
        self._reading = asyncio.ensure_future(self._read(process.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.lines.append(line.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def worker_pid(self, index: int, not_pid: int = 0) -> int | None:
        found = re.findall(rf"worker {index} started \(pid (\d+)\)", self.text)
        pids = [int(p) for p in found if int(p) != not_pid]
        return pids[-1] if pids else None

    async def close(self) -> None:
        self._reading.cancel()  # workers left behind may hold the pipe a while
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading


async def answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url + "/healthz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def test_two_workers_are_two_nodes_on_one_port(tmp_path: Path) -> None:
    config = tmp_path / "urok.toml"
    config.write_text(CONFIG)
    port = free_port()
    async with redis_server() as url:
        client = aioredis.from_url(url, decode_responses=True)
        placement = RedisPlacement(client, DEFAULT_PREFIX)
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "signalling.cli", "--config", str(config), "serve"),
            *("--port", str(port), "--redis-url", url, "--workers", "2"),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "UROK_DATA_DIR": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        log = Output(process)
        records: dict[str, NodeRecord] = {}

        async def both_registered() -> bool:
            records.clear()
            records.update({r.id: r for r in await placement.nodes()})
            return len(records) == 2

        try:
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, f"http://127.0.0.1:{port}", timeout=START_SECONDS)
                await eventually(both_registered, START_SECONDS, "two node records")
                await _check_records(http, records, port)
                await _bots_on_two_workers_are_in_one_call(url, placement, records)
                await _killed_worker_comes_back(http, placement, log)
                internals = [r.internal_url for r in await placement.nodes()]
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 60) == 0, log.text
                assert await placement.nodes() == []
                assert listening_sockets(port) == 0
                for internal in internals:
                    assert not await answers(http, internal)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()  # the workers drain by themselves once orphaned
                    await process.wait()
            await log.close()
            await client.aclose()


async def _check_records(
    http: aiohttp.ClientSession, records: dict[str, NodeRecord], port: int
) -> None:
    assert sorted(records) == ["school-a-w0", "school-a-w1"]
    one, two = records["school-a-w0"], records["school-a-w1"]
    assert one.public_url == two.public_url == f"http://127.0.0.1:{port}"
    assert one.media_ports == (40000, 40049) and two.media_ports == (40050, 40099)
    assert one.internal_url != two.internal_url
    for record in (one, two):
        assert record.internal_url != record.public_url
        assert await answers(http, record.internal_url), record
    # Both workers listen on the public port (SO_REUSEPORT), and it answers.
    assert listening_sockets(port) == 2
    assert await answers(http, f"http://127.0.0.1:{port}")


async def _bots_on_two_workers_are_in_one_call(
    url: str, placement: RedisPlacement, records: dict[str, NodeRecord]
) -> None:
    """A lesson held by worker 0: a pupil whose WebSocket reaches worker 1 is relayed there,
    in one call with the teacher on worker 0 (chat and video both ways)."""
    one, two = records["school-a-w0"], records["school-a-w1"]
    # An app beside the workers on the same Redis: the journal's side (lessons, tokens).
    async with running_server(redis_url=url) as journal:
        lesson = await journal.create_lesson()
        assert await placement.claim(lesson, one.id, 60) == one.id
        teacher = Bot(
            one.internal_url, await journal.token(lesson, "t-1", "Анна", "teacher"), decode=False
        )
        pupil = Bot(
            two.internal_url, await journal.token(lesson, "s-1", "Иван", "student"), decode=False
        )
        try:
            await teacher.connect(timeout=START_SECONDS)
            await pupil.connect(timeout=START_SECONDS)
            assert teacher.id in pupil.participants

            async def teacher_sees_pupil() -> bool:
                return pupil.id in teacher.participants

            await eventually(teacher_sees_pupil, START_SECONDS, "the pupil at the teacher")
            heard = teacher.wait_for(
                lambda m: m["type"] == "chat_message" and m["message"]["text"] == "привет",
                START_SECONDS,
            )
            await pupil.send({"type": "chat_send", "text": "привет"})
            await heard
            await teacher.publish([(PatternVideoTrack(GREEN), "camera")])
            await pupil.publish([(PatternVideoTrack(BLUE), "camera")])

            async def video_both_ways() -> bool:
                return (
                    pupil.packet_counts[(teacher.id, "video")] > 20
                    and teacher.packet_counts[(pupil.id, "video")] > 20
                )

            await eventually(video_both_ways, START_SECONDS, "video between the workers")
        finally:
            await pupil.close()
            await teacher.close()


async def _killed_worker_comes_back(
    http: aiohttp.ClientSession, placement: RedisPlacement, log: Output
) -> None:
    """A worker that dies is started again by the parent: same node id, a new process."""
    killed = log.worker_pid(1)
    assert killed is not None, log.text
    old_url = (await placement.node("school-a-w1") or pytest.fail("no w1")).internal_url
    os.kill(killed, signal.SIGKILL)

    async def restarted() -> bool:
        record = await placement.node("school-a-w1")
        if log.worker_pid(1, not_pid=killed) is None or record is None:
            return False
        return record.internal_url != old_url and await answers(http, record.internal_url)

    await eventually(restarted, START_SECONDS, "worker 1 started again")
    assert "worker 1 exited with status -9: starting it again" in log.text


def test_workers_without_redis_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    port = str(free_port())
    assert main(["serve", "--port", port, "--redis-url", "", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("urok: configuration error: --workers 2 needs Redis"), err


@pytest.mark.parametrize("count", ["0", "-1", "two", "65", "1.5"])
def test_a_worker_count_that_is_no_count_is_refused(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--workers", count])
    assert stopped.value.code == 2
    assert "argument --workers" in capsys.readouterr().err


def test_each_worker_gets_its_own_ports_id_and_recordings() -> None:
    base = settings_from_mapping(
        {
            "redis_url": "redis://127.0.0.1:1/0",
            "data_dir": "/srv/urok",
            "media": {"udp_ports": "40000-40999"},
            "metrics": {"port": 9464},
            "cluster": {"internal_url": "http://10.0.0.5:9100"},
        }
    )
    check_workers(base, 3, "school-a")
    slices = [media_slice((40000, 40999), i, 3) for i in range(3)]
    assert slices == [(40000, 40332), (40333, 40665), (40666, 40999)]
    third = worker_settings(base, 2, 3, "school-a", "http://10.0.0.5:9102")
    assert third.cluster.node_id == "school-a-w2"
    assert third.cluster.internal_url == "http://10.0.0.5:9102"
    assert third.media.udp_ports == (40666, 40999) and third.metrics.port == 9466
    assert third.recordings_dir == Path("/srv/urok/recordings/worker-2")
    first = worker_settings(base, 0, 3, "school-a", "http://10.0.0.5:9100")
    assert first.recordings_dir == base.recordings_dir  # one process's recordings stay listed
    with pytest.raises(ConfigError, match="too small for 60 workers"):
        check_workers(base, 60, "school-a")
    with pytest.raises(ConfigError, match="include the public port"):
        check_workers(settings_from_mapping({"port": 9465}, base), 2, "school-a")
    check_workers(Settings(), 1, "alone")  # one process: nothing to check


def test_a_worker_that_keeps_dying_stops_the_parent_with_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    supervisor = Supervisor(lambda index: failing, 1, env=dict(os.environ), stop_seconds=30)
    supervisor.restarts_per_minute = 2
    with caplog.at_level("INFO", logger="signalling.workers"):
        assert supervisor.run() == 1
    started = [r for r in caplog.records if "worker 0 started" in r.getMessage()]
    assert len(started) == 3  # the first start and two restarts
    assert "its 2 restarts in a minute are used up" in caplog.text
