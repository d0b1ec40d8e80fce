"""Application factory: one aiohttp app holding every long-lived part under typed keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from rooms.calls import CallRegistry
from rooms.lessons import LessonRegistry
from rooms.store import MemoryStore
from sfu.engine import MediaEngine
from signalling import api, pages, ws
from signalling.config import Settings
from signalling.keys import CALLS, LESSONS, MEDIA, SETTINGS, STORE, TOKENS
from signalling.tokens import TokenService


async def _media_engine(app: web.Application) -> AsyncIterator[None]:
    engine = app[MEDIA]
    yield
    await engine.close()


async def _store(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STORE].close()


async def _calls(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CALLS].close_all()


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(client_max_size=256 * 1024)
    app[SETTINGS] = settings
    app[STORE] = MemoryStore()
    app[LESSONS] = LessonRegistry(app[STORE])
    app[TOKENS] = TokenService(settings)
    app[MEDIA] = MediaEngine(
        settings.ice.addresses,
        announced_address=settings.ice.announced_address,
        ice_servers=[server.to_json() for server in settings.ice.servers],
    )
    app[CALLS] = CallRegistry(app[MEDIA])
    # When the journal ends a lesson, its call ends for everyone in it.
    app[LESSONS].on_ended.append(app[CALLS].end_for_lesson)
    # Cleanup runs in reverse: calls end first, then media, then the store.
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_media_engine)
    app.cleanup_ctx.append(_calls)
    api.setup(app)
    ws.setup(app)
    pages.setup(app)
    return app
