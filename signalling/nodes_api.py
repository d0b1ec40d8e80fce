"""The node agent in the app: its load figures, its heartbeat task, and
GET /api/v1/lessons/{id}/node (which node holds the lesson, placing it if none does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from rooms.placement import NodeLoad, NodeRecord
from rooms.store_factory import create_placement
from rooms.vocabulary import LessonState
from sfu.subscriber_transport import SubscriberTransport
from signalling.api import ApiError, _ended, _integration, _lesson
from signalling.keys import CALLS, HEALTH, MEDIA, NODE, RECORDINGS, SETTINGS, STORE
from signalling.node import NodeAgent


def measure_load(app: web.Application) -> NodeLoad:
    """What this node carries now (the CPU share is the agent's own reading)."""
    calls = [call for call in app[CALLS].calls.values() if not call.ended]
    streams = 0
    for router in list(app[MEDIA].routers.values()):
        for transport in router.transports.values():
            if isinstance(transport, SubscriberTransport):
                streams += sum(1 for c in transport.consumers if c.producer is not None)
    return NodeLoad(
        streams=streams,
        participants=sum(len(call.participants) for call in calls),
        recordings=app[RECORDINGS].running,
        calls=len(calls),
    )


def create_agent(app: web.Application) -> NodeAgent:
    return NodeAgent(
        app[SETTINGS],
        create_placement(app[STORE]),
        measure=lambda: measure_load(app),
        draining=lambda: app[HEALTH].draining,
        running=lambda: [i for i, call in app[CALLS].calls.items() if not call.ended],
    )


async def node_context(app: web.Application) -> AsyncIterator[None]:
    """Registered before the server answers; gone (record, leases) after it stops."""
    agent = app[NODE]
    # The first beat before the server answers (a Redis that is down shows in /readyz,
    # and the beats go on trying).
    await agent.beat_logged()
    task = asyncio.create_task(agent.run())
    yield
    agent.halt()
    # A beat under way finishes first (bounded: a Redis that hangs does not hold the stop).
    await asyncio.wait({task}, timeout=5)
    task.cancel()
    await agent.stop()


def node_json(record: NodeRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "url": record.public_url,
        "media_address": record.media_address,
        "draining": record.draining,
    }


async def lesson_node(request: web.Request) -> web.Response:
    integration = _integration(request)
    lesson = await _lesson(request, integration)
    if lesson.state is LessonState.ENDED:
        raise _ended(lesson)
    record = await request.app[NODE].locate(lesson.id)
    if record is None:
        error = ApiError(503, "no_node_available", "Every node is draining or full.")
        error.headers["Retry-After"] = "5"
        raise error
    return web.json_response({"lesson_id": lesson.id, "node": node_json(record)})


def setup(app: web.Application) -> None:
    app.router.add_get(
        "/api/v1/lessons/{lesson_id}/node", lesson_node, name="api_lesson_node", allow_head=False
    )
