"""A WebSocket that reaches another node than its lesson's: relayed to the lesson's node.

With several nodes (docs/architecture.md "Several nodes") a lesson's call runs
on one node, but the page's WebSocket lands wherever the load balancer sends
it. When a `join` or `resume` names a lesson that another live node holds (or
that placement gives another node), this node becomes a transparent relay: it
opens a WebSocket to that node's `internal_url` + "/ws", sends it the first
message as it came, and pipes text frames both ways until either side closes,
then closes the other with the same code. The owning node runs the call as if
the client were its own, so every call event reaches everybody there, and the
SDP and ICE candidates it sends are its own: the media goes straight to it.

The client's address travels in a header signed with the cluster key
(signalling/relay_auth.py), so the owner limits and logs by it. What stays
here: the token and admission are checked before anything is opened (garbage
never costs a node-to-node connection; refusals are answered by the ordinary
local path), the frame budget and message size limits and the message schema
apply to every frame, and nothing queues: each direction reads its next frame
only once the previous one is written (aiohttp waits for the socket to drain),
so a slow owner or client slows its sender instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
from aiohttp import WSMsgType, web

from rooms.admission import Door, Refused
from rooms.placement import LocalPlacement, NodeRecord
from signalling.access import admitted_lesson
from signalling.cluster_peers import relay_source
from signalling.keys import CALLS, NODE, SETTINGS, TOKENS, WS_COUNTS
from signalling.protocol import ProtocolError, parse_message
from signalling.ratelimit import LIMITS, client_key
from signalling.relay_auth import relay_headers, relay_key
from signalling.tokens import TokenError

logger = logging.getLogger(__name__)

RELAY_HTTP = web.AppKey("relay_http", aiohttp.ClientSession)
CONNECT_TIMEOUT = 10.0
HEARTBEAT = 20.0
# What the owning node sends (a `joined` with a long chat, an SDP offer for a full
# class) is bounded by it, not by a client's limit; this only caps a runaway.
MAX_OWNER_MESSAGE = 64 * 1024 * 1024
# Close codes that may be sent in a close frame (RFC 6455 7.4).
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011}
NORMAL, GOING_AWAY = 1000, 1001


class Client(Protocol):
    """What the relay needs of the client's WebSocket session (signalling.ws.Session)."""

    app: web.Application
    ws: web.WebSocketResponse
    peer: str | None

    async def send(self, message: dict[str, Any]) -> None: ...

    async def send_text(self, data: str) -> None: ...

    async def pace(self) -> None: ...


# The connections this node relays now (a draining node lets them go: `let_go`).
RELAYS: web.AppKey[set[Client]] = web.AppKey("relays")


async def relay_if_elsewhere(client: Client, message: dict[str, Any], data: str) -> bool:
    """If `message` (a join or resume, `data` as it came) is for a lesson on another
    live node, relay this connection there until either side closes: True, the
    connection is over. False: this node serves it."""
    target = await owner_elsewhere(client, message)
    if target is None:
        return False
    logger.info("relaying a %s for node %s", message["type"], target.id)
    await _relay(client, target, data, message.get("id"))
    return True


async def owner_elsewhere(client: Client, message: dict[str, Any]) -> NodeRecord | None:
    """The live node other than this one that runs (or is given) the message's lesson;
    None when this node serves it: one node, a refused or unchecked request (answered
    by the local path, with its limits), or the lesson here."""
    app = client.app
    agent = app[NODE]
    if isinstance(agent.placement, LocalPlacement):
        return None
    if app[LIMITS].join_ip.retry_after(client_key(client.peer)) is not None:
        return None  # refused by the local path (and counted there once)
    lesson_id = await _admitted_lesson_id(app, message)
    if lesson_id is None:
        return None
    try:
        record = await agent.locate(lesson_id)
    except Exception as exc:  # Redis away: serve here, as a lone node would
        logger.warning("could not locate lesson %s: %s", lesson_id, exc)
        return None
    if record is None or record.id == agent.id:
        return None
    return record


async def _admitted_lesson_id(app: web.Application, message: dict[str, Any]) -> str | None:
    """The lesson of a join or resume whose token is valid and admitted, else None."""
    if message["type"] == "resume" and app[CALLS].find_session(message["session"]) is not None:
        return None  # the session is here
    try:
        claims = app[TOKENS].verify(message["token"], message.get("lesson_id"))
        await admitted_lesson(app, claims, Door.JOIN)
    except (TokenError, Refused):
        return None
    return claims.lesson_id


async def _relay(client: Client, target: NodeRecord, data: str, ref: str | None) -> None:
    counts = client.app[WS_COUNTS]
    try:
        async with _owner_socket(client, target) as owner:
            counts.relays += 1
            counts.relayed += 1
            client.app[RELAYS].add(client)
            try:
                await owner.send_str(data)
                await _pipe(client, owner)
            finally:
                counts.relayed -= 1
                client.app[RELAYS].discard(client)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        logger.warning("cannot reach node %s at %s: %s", target.id, target.internal_url, exc)
        # The page tries again (docs/protocol.md "restarting"); by then the node
        # answers or its record has run out and the lesson is placed again.
        await client.send(ProtocolError("restarting", "try again", ref).to_json())
    if not client.ws.closed:
        await client.ws.close()


@contextlib.asynccontextmanager
async def _owner_socket(
    client: Client, target: NodeRecord
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    app = client.app
    headers = relay_headers(await relay_key(app), client.peer or "", time.time())
    async with asyncio.timeout(CONNECT_TIMEOUT):
        owner = await app[RELAY_HTTP].ws_connect(
            target.internal_url.rstrip("/") + "/ws",
            headers=headers,
            heartbeat=HEARTBEAT,
            max_msg_size=MAX_OWNER_MESSAGE,
        )
    try:
        yield owner
    finally:
        await owner.close()


async def _pipe(client: Client, owner: aiohttp.ClientWebSocketResponse) -> None:
    """Both directions until one side closes; each closes the other as it ends."""
    tasks = {
        asyncio.create_task(_client_to_owner(client, owner)),
        asyncio.create_task(_owner_to_client(owner, client)),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.ALL_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, ConnectionError):
            logger.warning("relaying a WebSocket failed: %r", result)


async def _client_to_owner(client: Client, owner: aiohttp.ClientWebSocketResponse) -> None:
    try:
        async for msg in client.ws:  # ends at the client's close
            await client.pace()
            if await _checked(client, msg):
                await owner.send_str(msg.data)
    finally:
        await owner.close(code=_sendable(client.ws.close_code, NORMAL))


async def _checked(client: Client, msg: aiohttp.WSMessage) -> bool:
    """Whether a client frame goes on: the same limits and schema as a local session's
    (refusals answered here, as the owner would)."""
    if msg.type != WSMsgType.TEXT:
        if msg.type == WSMsgType.BINARY:
            await client.send(ProtocolError("bad_json", "send JSON text frames").to_json())
        return False
    try:
        parse_message(msg.data, client.app[SETTINGS].max_ws_message_bytes)
    except ProtocolError as exc:
        await client.send(exc.to_json())
        return False
    return True


async def _owner_to_client(owner: aiohttp.ClientWebSocketResponse, client: Client) -> None:
    try:
        async for msg in owner:  # ends at the owner's close (or its death)
            if msg.type == WSMsgType.TEXT:
                await client.send_text(msg.data)
    finally:
        # An owner gone without a close frame (1006: it died) is "going away" here.
        await client.ws.close(code=_sendable(owner.close_code, GOING_AWAY))


def _sendable(code: int | None, otherwise: int) -> int:
    """`code` if a close frame may carry it, else `otherwise`."""
    if code is not None and (code in _SENDABLE or 3000 <= code <= 4999):
        return code
    return otherwise


async def let_go(app: web.Application, notice: dict[str, Any]) -> int:
    """A draining node (signalling/drain.py) tells each relayed connection `notice` and
    closes it at once: the page comes back through another node and resumes on the
    lesson's, which holds the person meanwhile. How many there were."""
    relays: list[Client] = [*app[RELAYS]]

    async def close(client: Client) -> None:
        with contextlib.suppress(ConnectionError):
            await client.send(notice)
        await client.ws.close(code=GOING_AWAY)

    await asyncio.gather(*(close(client) for client in relays))
    return len(relays)


async def relay_http(app: web.Application) -> AsyncIterator[None]:
    """One client session for every relayed connection (no cap on connections: each
    relayed WebSocket holds one for its life)."""
    # From this node's internal address (cluster_peers.py: the owner's connection cap
    # knows it as a node's, not as one client with hundreds of connections).
    source = relay_source(app[NODE].internal_url) if NODE in app else None
    local_addr = (source, 0) if source is not None else None
    connector = aiohttp.TCPConnector(limit=0, local_addr=local_addr)
    app[RELAY_HTTP] = aiohttp.ClientSession(connector=connector)
    yield
    await app[RELAY_HTTP].close()


def setup(app: web.Application) -> None:
    relays: set[Client] = set()
    app[RELAYS] = relays
    app.cleanup_ctx.append(relay_http)
