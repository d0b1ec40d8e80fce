"""The access log never holds a join token from a recording link."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web

from signalling.access_log import RedactingAccessLogger
from tests.live import free_port


async def test_token_in_the_query_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=request.query.get("token", ""))

    app = web.Application()
    app.router.add_get("/recordings/x/file", ok)
    logger = logging.getLogger("test.access")
    caplog.set_level(logging.INFO, logger="test.access")
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger, access_log=logger)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/recordings/x/file?token=eyJ.secret.sig&t=5") as response:
                # The handler still sees the real token: only the log line is redacted.
                assert await response.text() == "eyJ.secret.sig"
            async with http.get(base + "/recordings/x/file?plain=1") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.access"]
    assert len(lines) == 2, lines
    assert "eyJ.secret.sig" not in lines[0]
    assert "GET /recordings/x/file?token=REDACTED&t=5 HTTP/1.1" in lines[0]
    assert "GET /recordings/x/file?plain=1 HTTP/1.1" in lines[1]
