"""Typed keys for what the application holds (see signalling.app.create_app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from rooms.lessons import LessonRegistry
from signalling.config import Settings
from signalling.tokens import TokenService

if TYPE_CHECKING:  # the media stack is imported only where it is used
    from rooms.calls import CallRegistry
    from rooms.recordings import RecordingService
    from rooms.store import Store
    from sfu.engine import MediaEngine
    from signalling.node import NodeAgent
    from signalling.readiness import Health
    from signalling.webhooks import WebhookSender
    from signalling.ws_counts import WsCounters

SETTINGS = web.AppKey("settings", Settings)
LESSONS = web.AppKey("lessons", LessonRegistry)
TOKENS = web.AppKey("tokens", TokenService)
CALLS: web.AppKey[CallRegistry] = web.AppKey("calls")
STORE: web.AppKey[Store] = web.AppKey("store")
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
MEDIA: web.AppKey[MediaEngine] = web.AppKey("media")
RECORDINGS: web.AppKey[RecordingService] = web.AppKey("recordings")
HEALTH: web.AppKey[Health] = web.AppKey("health")
WS_COUNTS: web.AppKey[WsCounters] = web.AppKey("ws_counts")
NODE: web.AppKey[NodeAgent] = web.AppKey("node")
