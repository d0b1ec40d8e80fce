"""Typed keys for what the application holds (see signalling.app.create_app)."""

from __future__ import annotations

from aiohttp import web

from rooms.calls import CallRegistry
from rooms.lessons import LessonRegistry
from sfu.engine import MediaEngine
from signalling.config import Settings
from signalling.tokens import TokenService

SETTINGS = web.AppKey("settings", Settings)
LESSONS = web.AppKey("lessons", LessonRegistry)
TOKENS = web.AppKey("tokens", TokenService)
CALLS = web.AppKey("calls", CallRegistry)
MEDIA = web.AppKey("media", MediaEngine)
