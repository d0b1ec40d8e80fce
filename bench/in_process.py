"""The app in the bench's own process (for benches that read the server's state), on a
free port of `host`, with a fresh data directory."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from bench.server import free_port
from signalling.config import IceSettings, Settings


@contextlib.asynccontextmanager
async def app_in_process(
    host: str = "127.0.0.1", addresses: Sequence[str] = ("127.0.0.1",)
) -> AsyncIterator[tuple[str, web.Application]]:
    """(base URL, the app), media gathered on `addresses`."""
    from signalling.app import create_app  # the server side, only for this run

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="urok-bench-") as data:
        settings = replace(
            Settings(),
            port=port,
            public_url=f"http://{host}:{port}",
            ice=IceSettings(addresses=tuple(addresses)),
            data_dir=Path(data),
        )
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        try:
            yield settings.public_url, app
        finally:
            await runner.cleanup()
