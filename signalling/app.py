"""Application factory: one aiohttp app holding every long-lived part under typed keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from recording.options import RecordingOptions
from rooms.calls import CallRegistry, ChatPolicy, Participant
from rooms.chat import ProfanityFilter
from rooms.lessons import Lesson, LessonRegistry
from rooms.model import RecordingRecord
from rooms.recordings import RecordingLibrary, RecordingService
from rooms.store import DEFAULT_RETENTION_SECONDS
from rooms.store_factory import create_store
from sfu.audio_slots import SlotSettings
from sfu.engine import MediaEngine
from sfu.media_ports import MediaPorts
from signalling import (
    adhoc,
    api,
    demo,
    health,
    http_guard,
    metrics,
    nodes_api,
    pages,
    ratelimit,
    recording_nodes,
    recordings,
    webhook_payloads,
    webhooks,
    ws,
)
from signalling.config import Settings
from signalling.keys import (
    CALLS,
    HEALTH,
    LESSONS,
    MEDIA,
    NODE,
    RECORDINGS,
    SETTINGS,
    STORE,
    TOKENS,
    WEBHOOKS,
    WS_COUNTS,
)
from signalling.protocol import SCHEMAS
from signalling.readiness import Health
from signalling.tokens import TokenService
from signalling.turn import server_ice_servers
from signalling.webhooks import WebhookSender
from signalling.ws_counts import WsCounters

logger = logging.getLogger(__name__)


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


async def _recording_library(app: web.Application) -> AsyncIterator[None]:
    """List this node's recordings (their sidecar records) in the store at start-up."""
    loaded = await app[RECORDINGS].load()
    if loaded:
        logger.info("%d recordings in %s", loaded, app[RECORDINGS].library.directory)
    yield


async def _recording_retention(app: web.Application) -> AsyncIterator[None]:
    """Delete recordings older than recording.retention_days (if set), hourly."""
    days = app[SETTINGS].recording.retention_days
    if not days:
        yield
        return

    async def sweep() -> None:
        while True:
            try:
                cutoff = datetime.now(UTC) - timedelta(days=days)
                deleted = await app[RECORDINGS].library.delete_older_than(cutoff)
                if deleted:
                    logger.info("deleted %d recordings older than %d days", deleted, days)
            except Exception:
                logger.exception("deleting old recordings failed")
            await asyncio.sleep(3600)

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _lesson_sweeper(app: web.Application) -> AsyncIterator[None]:
    """End lessons whose scheduled end plus grace has passed (the call with them)."""
    settings = app[SETTINGS]
    integrations = [i.key_id for i in settings.integrations]
    grace = timedelta(minutes=settings.end_grace_minutes)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(settings.lesson_sweep_seconds)
            try:
                await app[LESSONS].end_overdue(integrations, datetime.now(UTC), grace)
            except Exception:
                logger.exception("ending overdue lessons failed")

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _connect_webhooks(app: web.Application) -> None:
    """Lesson and presence events go to the owning journal's webhook."""
    settings, sender, store = app[SETTINGS], app[WEBHOOKS], app[STORE]

    def send(lesson: Lesson, event: str, data: dict[str, Any]) -> None:
        integration = settings.integration(lesson.integration)
        if integration is not None:
            sender.send(integration, event, data)

    def opened(lesson: Lesson, reason: str) -> None:
        send(lesson, webhooks.LESSON_OPENED, webhook_payloads.lesson_opened_payload(lesson))

    def ended(lesson: Lesson, reason: str) -> None:
        async def report() -> None:
            # Whoever is still in the call counts as present until ended_at.
            attendance = await store.attendance(lesson.id)
            ended_at = lesson.ended_at or datetime.now(UTC)
            send(
                lesson,
                webhooks.LESSON_ENDED,
                webhook_payloads.lesson_ended_payload(lesson, attendance, ended_at, reason),
            )

        app[CALLS].spawn(report())

    def presence(lesson: Lesson, event: str, participant: Participant, at: datetime) -> None:
        name = webhooks.PARTICIPANT_JOINED if event == "joined" else webhooks.PARTICIPANT_LEFT
        send(
            lesson,
            name,
            webhook_payloads.participant_payload(
                lesson.id, participant.user_id, participant.name, participant.role, at
            ),
        )

    def recording_ready(lesson: Lesson, record: RecordingRecord) -> None:
        send(
            lesson,
            webhooks.RECORDING_READY,
            recordings.recording_ready_payload(record, settings.public_url),
        )

    app[RECORDINGS].on_ready.append(recording_ready)
    app[LESSONS].on_opened.append(opened)
    app[LESSONS].on_ended.append(ended)
    app[CALLS].presence.append(presence)


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    await app[WEBHOOKS].start()
    yield
    await app[WEBHOOKS].close()


def _create_media(settings: Settings) -> MediaEngine:
    media = settings.media
    return MediaEngine(
        settings.ice.addresses,
        announced_address=settings.ice.announced_address,
        ice_servers=[server.to_json() for server in settings.ice.servers],
        # TURN (with credentials minted per connection) only with turn.server_uses.
        ice_servers_factory=server_ice_servers(settings, lambda: datetime.now(UTC)),
        keyframe_interval=media.keyframe_interval_s,
        audio_slots=SlotSettings(slots=media.audio_slots) if media.audio_slots else None,
        media_ports=MediaPorts(*media.udp_ports) if media.udp_ports else None,
        video_slots=media.video_slots,
    )


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(client_max_size=256 * 1024)
    app[SETTINGS] = settings
    app[STORE] = create_store(settings.redis_url)
    app[LESSONS] = LessonRegistry(app[STORE])
    app[TOKENS] = TokenService(settings)
    app[MEDIA] = _create_media(settings)
    recording = settings.recording
    app[RECORDINGS] = RecordingService(
        RecordingLibrary(settings.recordings_dir, app[STORE]),
        RecordingOptions(width=recording.width, height=recording.height, fps=recording.fps),
        enabled=recording.enabled,
        min_free_bytes=recording.min_free_mb * 1024 * 1024,
        max_concurrent=recording.max_concurrent,
    )
    app[CALLS] = CallRegistry(
        app[MEDIA],
        app[STORE],
        ChatPolicy(
            profanity=ProfanityFilter.default(),
            history_seconds=settings.chat_history_days * 86400,
        ),
        app[RECORDINGS],
        thumbnails_half_rate=settings.media.thumbnail_frame_rate == "half",
        dynacast=settings.media.dynacast,
    )
    app[WEBHOOKS] = WebhookSender()
    app[HEALTH] = Health()
    app[WS_COUNTS] = WsCounters(SCHEMAS)
    app[NODE] = nodes_api.create_agent(app)
    recording_nodes.connect_library(app)
    # When the lesson ends (journal, host, time), its call ends for everyone in it.
    app[LESSONS].on_ended.append(app[CALLS].end_for_lesson)
    # The call's state (chat, attendance) stays readable for a while, then expires.
    app[LESSONS].on_ended.append(
        lambda lesson, reason: app[CALLS].spawn(
            app[STORE].expire_call(lesson.id, DEFAULT_RETENTION_SECONDS)
        )
    )
    # The lesson's lease goes at once rather than at the node's next beat.
    app[LESSONS].on_ended.append(
        lambda lesson, reason: app[CALLS].spawn(app[NODE].release(lesson.id))
    )
    _connect_webhooks(app)
    # Cleanup runs in reverse: calls end first, then media, then the store;
    # webhooks last, so the lesson.ended of a shutdown still goes out.
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_store)
    # After the store (it uses its Redis client), before the calls (their leases).
    app.cleanup_ctx.append(nodes_api.node_context)
    app.cleanup_ctx.append(_recording_library)
    app.cleanup_ctx.append(_recording_retention)
    app.cleanup_ctx.append(_media_engine)
    app.cleanup_ctx.append(_calls)
    app.cleanup_ctx.append(_lesson_sweeper)
    _routes(app, settings)
    return app


def _routes(app: web.Application, settings: Settings) -> None:
    ratelimit.setup(app, settings)  # outside the API's JSON errors: before api.setup
    api.setup(app)
    http_guard.setup(app, settings)  # inside them: after api.setup
    adhoc.setup_api(app)
    nodes_api.setup(app)
    ws.setup(app)
    pages.setup(app)
    adhoc.setup_pages(app)
    if settings.demo_journal:
        demo.setup(app)
    recordings.setup(app)
    health.setup(app)
    metrics.setup(app)
