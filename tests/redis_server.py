"""A real, throwaway redis-server for tests (no mocks, no fakeredis).

    from tests.redis_server import redis_url_fixture  # noqa: F401  (provides `redis_url`)

    async def test_something(redis_url: str) -> None: ...

or, outside pytest fixtures:

    async with redis_server() as url: ...

The server listens on a free loopback port, persists nothing (--save '',
--appendonly no) and works in a temporary directory. If no redis-server
binary can be found the tests FAIL with a message saying so: the Redis backend
must never go untested silently. $UROK_REDIS_SERVER overrides the binary.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

START_TIMEOUT = 10.0


class RedisServerError(RuntimeError):
    """redis-server is missing or did not start."""


def find_redis_server() -> str:
    """Path of the redis-server binary, or RedisServerError saying how to get one."""
    override = os.environ.get("UROK_REDIS_SERVER")
    candidates = (
        [override]
        if override
        else [
            shutil.which("redis-server"),
            "/usr/bin/redis-server",
            "/usr/sbin/redis-server",
            "/usr/local/bin/redis-server",
        ]
    )
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerError(
        "redis-server not found: the Redis store tests need a real Redis server. "
        "Install it (Debian/Ubuntu: apt-get install redis-server) or point "
        f"UROK_REDIS_SERVER at the binary (now: {override or 'unset'})."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a test's server process; kill it if it does not go within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def redis_server_sync() -> Iterator[str]:
    """Start redis-server, yield its URL (redis://127.0.0.1:<port>/0), stop it afterwards."""
    binary = find_redis_server()
    with tempfile.TemporaryDirectory(prefix="urok-redis-") as tmp:
        log_path = Path(tmp) / "redis.log"
        last_error = ""
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            with open(log_path, "wb") as log:
                options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
                options |= {"dir": tmp, "daemonize": "no", "logfile": ""}
                command = [binary]
                for name, value in options.items():
                    command += [f"--{name}", value]
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if _pings(port):
                        break
                    time.sleep(0.05)
                else:
                    last_error = log_path.read_text(errors="replace")[-2000:]
                    stop_process(process)
                    continue
                yield f"redis://127.0.0.1:{port}/0"
                return
            finally:
                stop_process(process)
        raise RedisServerError(f"redis-server ({binary}) did not start:\n{last_error}")


@asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """The same as an async context manager (starting and stopping off the event loop)."""
    manager = redis_server_sync()
    url = await asyncio.to_thread(manager.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture() -> Iterator[str]:
    """One redis-server for the test session; use a distinct key prefix per test."""
    try:
        manager = redis_server_sync()
        url = manager.__enter__()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)
