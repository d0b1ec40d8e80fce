"""HTTP hardening (signalling.http_guard) over raw sockets to a real server: the header
timeout, connections per address, the body timeout, and one warning for many malformed
requests instead of a traceback each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signalling import http_guard
from signalling.config import LimitSettings
from signalling.http_guard import COUNTERS, MalformedRequestLog
from tests.live import LiveServer, running_server
from tests.test_ws import Client

GET = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


@contextlib.asynccontextmanager
async def server_with(**limits: Any) -> AsyncIterator[LiveServer]:
    async with running_server(limits=LimitSettings(**limits)) as server:
        yield server


async def connect(server: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.settings.port)


async def response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await asyncio.wait_for(reader.readexactly(length), 5)


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes (reads hit EOF); fails after `limit`."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


# ---------------------------------------------------------------- header timeout


async def test_silent_and_trickling_connections_are_closed_in_time() -> None:
    async with server_with(header_timeout_seconds=1.0) as server:
        silent_reader, silent = await connect(server)
        trickle_reader, trickle = await connect(server)

        async def trickling() -> None:
            trickle.write(b"GET /healthz HTTP/1.1\r\n")
            with contextlib.suppress(ConnectionError):
                for i in range(30):
                    await asyncio.sleep(0.2)
                    trickle.write(b"X-Slow-%d: 1\r\n" % i)
                    await trickle.drain()

        before = COUNTERS["header_timeouts"]
        task = asyncio.create_task(trickling())
        waited = await asyncio.gather(
            closed_after(silent_reader, 4), closed_after(trickle_reader, 4)
        )
        task.cancel()
        assert all(0.8 < w < 3 for w in waited), waited
        assert COUNTERS["header_timeouts"] - before == 2
        for writer in (silent, trickle):
            writer.close()


async def test_kept_alive_connections_and_bodies_are_not_cut() -> None:
    async with server_with(header_timeout_seconds=1.0) as server:
        reader, writer = await connect(server)
        writer.write(GET)
        assert (await response(reader))[0] == 200
        # Idle longer than the header timeout between requests: aiohttp's keep-alive rules.
        await asyncio.sleep(1.5)
        # A body (Content-Length) then, in the same packet, the next request.
        body = b'{"name": "x"}'
        writer.write(
            b"POST /invite/les_x.%s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (b"A" * 22, len(body), body) + GET
        )
        assert (await response(reader))[0] == 404
        assert (await response(reader))[0] == 200
        await asyncio.sleep(1.5)
        writer.write(GET)
        assert (await response(reader))[0] == 200
        writer.close()
        # The WebSocket lives on after its upgrade.
        client = await Client.open(server)
        await asyncio.sleep(1.5)
        await client.expect_alive()
        await client.close()


async def test_the_next_request_on_a_kept_alive_connection_is_timed_too() -> None:
    async with server_with(header_timeout_seconds=1.0) as server:
        reader, writer = await connect(server)
        writer.write(GET)
        assert (await response(reader))[0] == 200
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
        assert await closed_after(reader, 4) < 3
        writer.close()


async def test_a_connection_flooding_requests_is_read_more_slowly() -> None:
    # Past its budget a connection is read later: every request is answered, no
    # faster than the rate, and another connection is not held up.
    async with server_with(http_requests_per_second=10.0, http_request_burst=5) as server:
        before = COUNTERS["requests_delayed"]
        reader, writer = await connect(server)
        started = time.monotonic()
        count = 30
        for _ in range(count):
            writer.write(GET)
            assert (await response(reader))[0] == 200
        elapsed = time.monotonic() - started
        assert elapsed >= (count - 5) / 10 - 0.1, elapsed
        assert COUNTERS["requests_delayed"] - before >= count - 6
        writer.write(GET)  # the flood goes on meanwhile, paused...
        other_reader, other_writer = await connect(server)
        started = time.monotonic()
        other_writer.write(GET)
        assert (await response(other_reader))[0] == 200
        assert time.monotonic() - started < 1.0  # ... while another connection is answered
        assert (await response(reader))[0] == 200
        writer.close()
        other_writer.close()


async def test_an_address_opening_a_connection_per_request_is_paced_too() -> None:
    # The per-address budget holds a request back before aiohttp sees it, so a
    # fresh connection per request does not start a fresh budget.
    limits = {
        "http_requests_per_second": 100.0,
        "http_request_burst": 2,  # the address's bucket: 4 bursts = 8 requests
        "http_requests_per_address_per_second": 10.0,
        "pace_loopback": True,
    }
    async with server_with(**limits) as server:
        started = time.monotonic()
        count = 20
        for _ in range(count):
            reader, writer = await connect(server)
            writer.write(GET)
            assert (await response(reader))[0] == 200
            writer.close()
        elapsed = time.monotonic() - started
        assert elapsed >= (count - 8) / 10 - 0.1, elapsed


# ---------------------------------------------------------------- connections per address


async def test_connections_per_address_are_capped() -> None:
    async with server_with(max_connections_per_ip=3) as server:
        before = COUNTERS["connections_refused"]
        held = [await connect(server) for _ in range(3)]
        for reader, writer in held:  # all three work
            writer.write(GET)
            assert (await response(reader))[0] == 200
        reader, writer = await connect(server)
        status, body = await response(reader)
        assert status == 429 and b"Too many connections" in body
        assert await closed_after(reader, 2) < 2
        writer.close()
        assert COUNTERS["connections_refused"] - before == 1
        # One closes: another may come in.
        held[0][1].close()
        await held[0][1].wait_closed()
        await asyncio.sleep(0.2)
        reader, writer = await connect(server)
        writer.write(GET)
        assert (await response(reader))[0] == 200
        writer.close()
        for _, other in held[1:]:
            other.close()


async def test_a_trusted_proxy_is_not_capped_its_clients_elsewhere_are() -> None:
    # Behind nginx every pupil's connection comes from the proxy's address.
    async with server_with(max_connections_per_ip=2, trusted_proxies=("127.0.0.1",)) as server:
        held = [await connect(server) for _ in range(4)]
        for reader, writer in held:
            writer.write(GET)
            assert (await response(reader))[0] == 200
        untrusted = [
            await asyncio.open_connection(
                "127.0.0.1", server.settings.port, local_addr=("127.0.0.2", 0)
            )
            for _ in range(3)
        ]
        assert (await response(untrusted[-1][0]))[0] == 429
        for _, writer in held + untrusted:
            writer.close()


async def test_no_cap_when_off() -> None:
    async with server_with(max_connections_per_ip=0) as server:
        held = [await connect(server) for _ in range(20)]
        reader, writer = held[-1]
        writer.write(GET)
        assert (await response(reader))[0] == 200
        for _, writer in held:
            writer.close()


# ---------------------------------------------------------------- body timeout


async def test_a_slow_body_is_answered_408() -> None:
    async with server_with(body_timeout_seconds=1.0) as server:
        reader, writer = await connect(server)
        started = time.monotonic()
        writer.write(
            b"POST /api/v1/lessons HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"group": '
        )
        status, body = await response(reader)
        assert status == 408
        assert json.loads(body)["error"]["code"] == "body_timeout"
        assert time.monotonic() - started < 3
        # (aiohttp then discards what still comes for its lingering time, 10 s, and closes.)
        writer.close()
        # A whole body is read as before, and reaches the handler.
        status, body = await server.api("POST", "/api/v1/lessons", {"subject": "x"})
        assert status == 400 and body["error"]["code"] == "missing_field", body


# ---------------------------------------------------------------- quiet logs


async def test_malformed_requests_log_one_warning_not_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http_guard.quiet_malformed_requests(0)  # a fresh filter: nothing reported yet
    caplog.set_level(logging.DEBUG)
    async with server_with() as server:
        before = COUNTERS["malformed_requests"]
        for i in range(20):
            reader, writer = await connect(server)
            if i % 2:
                writer.write(
                    b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Long: %s\r\n\r\n" % (b"a" * 10000)
                )
            else:
                writer.write(b"GET /%s HTTP/1.1\r\nHost: test\r\n\r\n" % (b"a" * 10000))
            status, _ = await response(reader)
            assert status == 400
            writer.close()
        assert COUNTERS["malformed_requests"] - before == 20
        # Real requests are still served.
        async with server.http.get(server.base_url + "/healthz") as ok:
            assert ok.status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not [r for r in caplog.records if r.exc_info]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].name == "signalling.http_guard"
    assert "malformed HTTP request from 127.0.0.1" in warnings[0].getMessage()


def test_the_warning_repeats_once_per_interval_with_a_count() -> None:
    from aiohttp.http_exceptions import LineTooLong

    now = [0.0]
    quiet = MalformedRequestLog(60, clock=lambda: now[0])
    emitted: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            emitted.append(record)

    keep = Keep()
    logging.getLogger("signalling.http_guard").addHandler(keep)
    try:

        def bad(address: str) -> bool:
            exc = LineTooLong("too long", "8190")
            record = logging.LogRecord(
                "aiohttp.server",
                logging.ERROR,
                __file__,
                1,
                "Error handling request from %s",
                (address,),
                (LineTooLong, exc, None),
            )
            return quiet.filter(record)

        assert not any(bad("192.0.2.1") for _ in range(10))
        assert not bad("192.0.2.2")
        assert len(emitted) == 2
        now[0] = 61
        assert not bad("192.0.2.1")
        assert len(emitted) == 3 and "; 9 more" in emitted[-1].getMessage()
        # Other errors keep their tracebacks.
        other = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("192.0.2.1",),
            (ValueError, ValueError(), None),
        )
        assert quiet.filter(other)
    finally:
        logging.getLogger("signalling.http_guard").removeHandler(keep)
