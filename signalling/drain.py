"""A node's orderly stop (SIGTERM, `urok serve`): nobody is cut off without a word.

1. The node drains: /readyz says so (a load balancer and the placement of new
   lessons pass it by) and joins and resumes are refused with `restarting`, an
   error the call page retries with its backoff.
2. Everyone in a call, admitted or waiting, gets `restarting`: the page shows
   "reconnecting" instead of an error and comes back by itself. Connections
   relayed to another node's call (ws_relay.py) get it too and are let go at
   once: they resume there through another node.
3. Running recordings are stopped and finished; each is posted into its call's
   chat (and to the journal) while people are still there to see it. With a
   durable store, what only this node knows of each person is written there.
4. Everyone is let go; then the app's cleanup flushes the webhooks and ends the
   calls. All of it within `drain_seconds`.

What a restart costs: with the memory store, everything (lessons included: the
page's fresh join is refused); with Redis, the page joins afresh and each person
takes back what they had (rooms/calls/restart.py; docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from rooms.calls.participant import safe_send
from rooms.calls.restart import RESTART_MARGIN_S
from signalling.keys import CALLS, HEALTH, SETTINGS, STORE
from signalling.ws_relay import let_go as let_relays_go

logger = logging.getLogger(__name__)

# What the page is told to wait before its first try (the node is about to go).
RETRY_AFTER_MS = 2000


async def drain(app: web.Application, deadline_s: float) -> None:
    """Steps 1-3 above, in at most `deadline_s` (recordings not finished by then are
    left to the cleanup, which finishes them as a call's end does)."""
    app[HEALTH].draining = True
    calls = list(app[CALLS].calls.values())
    logger.info("draining: %d calls, at most %.0f s", len(calls), deadline_s)
    notice = {"type": "restarting", "retry_after_ms": RETRY_AFTER_MS}
    everyone = [p for call in calls for p in (*call.participants.values(), *call.waiting.values())]
    await asyncio.gather(*(safe_send(p, notice) for p in everyone))
    relayed = await let_relays_go(app, notice)  # their calls are on other nodes
    try:
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(*(call.finish_recordings() for call in calls))
    except TimeoutError:
        logger.warning("draining: recordings not finished within %.0f s", deadline_s)
    if app[STORE].durable:  # people who come back take back what they had (restart.py)
        ttl = app[SETTINGS].resume_grace_seconds + RESTART_MARGIN_S
        kept = sum([await call.suspend_for_restart(ttl) for call in calls])
        logger.info("draining: what %d people had kept for %d s", kept, ttl)
    for call in calls:
        for person in [*call.participants.values(), *call.waiting.values()]:
            await person.disconnect()
    logger.info("drained: %d people told to come back", len(everyone) + relayed)
