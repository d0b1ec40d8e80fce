"""The call WebSocket: authenticate with a join token, then relay the protocol to the call."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from rooms.admission import Door, Refused
from rooms.calls import Call, CallEnded, CallError, Participant
from rooms.lessons import Lesson
from sfu.transport import NegotiationError, SdpError
from signalling.access import admitted_lesson
from signalling.keys import CALLS, HEALTH, LESSONS, NODE, SETTINGS, TOKENS, WS_COUNTS
from signalling.log_format import log_as
from signalling.protocol import MAX_UNJOINED_BYTES, ProtocolError, parse_message
from signalling.ratelimit import LIMITS, budget_address, join_rate_limited
from signalling.relay_auth import relayed_peer
from signalling.tokens import TokenError
from signalling.turn import client_ice_servers
from signalling.ws_actions import ACTIONS
from signalling.ws_relay import relay_if_elsewhere
from signalling.ws_relay import setup as setup_relay
from signalling.ws_resume import RESUME_FAILED, resume

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
# Before joining, a connection is read only for these (anything else known is
# answered not_joined unread).
UNJOINED_TYPES = frozenset({"join", "resume", "ping"})


class Session:
    """One WebSocket connection, before and after it joins a call."""

    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, relayed_for: str | None = None
    ) -> None:
        self.app = request.app
        self.ws = ws
        self.call: Call | None = None
        self.participant: Participant | None = None
        self._send_lock = asyncio.Lock()
        # Relayed from another node (signalling/ws_relay.py): the client's own address;
        # such a connection is served here, never relayed again (no loops between nodes).
        self.peer = relayed_for or request.remote
        self.may_relay = relayed_for is None
        self._frames = request.app[LIMITS].frames.connection()
        self._address = budget_address(self.peer, request.app[LIMITS].settings)
        self._counts = request.app[WS_COUNTS]

    async def pace(self) -> None:
        """Wait, past this connection's (and address's) frame budget (frame_budget.py)."""
        wait = self.app[LIMITS].frames.wait(self._address, self._frames)
        if wait > 0:
            await asyncio.sleep(wait)

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        if message.get("type") == "error":
            self._counts.error(message.get("code", ""))
        async with self._send_lock:
            await self.ws.send_json(message)

    async def send_text(self, data: str) -> None:
        """A frame as it is (a relayed one), in turn with send()'s."""
        async with self._send_lock:
            await self.ws.send_str(data)

    async def close(self) -> None:
        await self.ws.close()

    async def error(self, code: str, message: str, ref: str | None = None) -> None:
        await self.send(ProtocolError(code, message, ref).to_json())

    async def run(self) -> None:
        settings = self.app[SETTINGS]
        deadline = asyncio.get_running_loop().time() + JOIN_TIMEOUT
        while self.participant is None:
            # Only waiting for a frame is timed: a join under way is never cut short.
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self.ws.receive()
            except TimeoutError:
                await self.error("join_timeout", f"no join message within {JOIN_TIMEOUT:g} s")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            await self.pace()
            if msg.type != WSMsgType.TEXT:
                await self.error("bad_json", "send JSON text frames")
                continue
            max_bytes = min(settings.max_ws_message_bytes, MAX_UNJOINED_BYTES)
            if not await self._handle_before_join(msg.data, max_bytes):
                return
        async for msg in self.ws:
            await self.pace()
            if msg.type == WSMsgType.TEXT:
                await self._handle(msg.data, settings.max_ws_message_bytes)
            elif msg.type == WSMsgType.BINARY:
                await self.error("bad_json", "send JSON text frames")
            if self.participant is None:
                break

    async def _handle_before_join(self, data: str, max_bytes: int) -> bool:
        """Handle a frame before joining; False once the connection should close."""
        try:
            message = self._parse(data, max_bytes, UNJOINED_TYPES)
        except ProtocolError as exc:
            await self.send(exc.to_json())
            return True
        if message["type"] == "ping":
            await self.send({"type": "pong", **_ref(message)})
            return True
        if self.app[HEALTH].draining:  # signalling/drain.py: the page tries again later
            await self.error("restarting", "the server is restarting: try again", message.get("id"))
            return False
        if self.may_relay and await relay_if_elsewhere(self, message, data):
            return False  # relayed to the lesson's node, and over
        try:
            if message["type"] == "resume":
                await resume(self, message)
            else:
                await self._join(message)
        except ProtocolError as exc:
            await self.send(exc.to_json())
            # A session that is gone: the client may join afresh on this connection.
            return exc.code == RESUME_FAILED
        return True

    def _parse(
        self, data: str, max_bytes: int, allowed: frozenset[str] | None = None
    ) -> dict[str, Any]:
        """parse_message, counted by type (an unknown type counts as "other")."""
        try:
            message = parse_message(data, max_bytes, allowed)
        except ProtocolError as exc:
            if exc.code == "unknown_type":
                self._counts.message(None)
            raise
        self._counts.message(message["type"])
        return message

    def connection_details(
        self, message: dict[str, Any], user_id: str, lesson: Lesson
    ) -> dict[str, Any]:
        """What joined / waiting / resumed carry for this connection (besides the call):
        fresh TURN credentials for this person and lesson among them."""
        settings = self.app[SETTINGS]
        now = datetime.now(UTC)
        return {
            "ice_servers": client_ice_servers(settings, user_id, lesson.ends_at, now),
            "language": settings.default_language,
            "resume": {
                "grace_s": settings.resume_grace_seconds,
                "retry_s": settings.reconnect_seconds,
            },
            **_ref(message),
        }

    async def _join(self, message: dict[str, Any]) -> None:
        """Join, within the limits on refused joins (signalling/ratelimit.py)."""
        limits = self.app[LIMITS]
        self._subject: str | None = None  # the token's person, once it is verified
        retry = limits.join_allowed(self.peer)
        if retry is not None:
            raise join_rate_limited(retry, message.get("id"))
        try:
            await self._join_checked(message)
        except ProtocolError as exc:
            limits.join_failed(self.peer, self._subject, exc.code)
            raise

    async def _join_checked(self, message: dict[str, Any]) -> None:
        ref = message.get("id")
        try:
            claims = self.app[TOKENS].verify(message["token"], message.get("lesson_id"))
        except TokenError as exc:
            raise ProtocolError("token_invalid", str(exc), ref) from None
        self._subject = self.app[LIMITS].join_subject(self.peer, claims, ref)
        try:
            lesson = await admitted_lesson(self.app, claims, Door.JOIN)
        except Refused as exc:
            raise ProtocolError(exc.code, exc.message, ref) from None
        assert lesson is not None
        call = self.app[CALLS].get_or_create(lesson)
        await self.app[NODE].claim(lesson.id)  # the lesson's media is on this node now
        try:
            self.participant = await call.enter(
                user_id=claims.user_id,
                name=claims.name,
                role=claims.role,
                jti=claims.jti,
                token_expires_at=claims.expires_at,
                send=self.send,
                disconnect=self.disconnected_by_call,
                joined_extra=self.connection_details(message, claims.user_id, lesson),
            )
        except CallEnded:
            raise ProtocolError("lesson_ended", "the lesson has ended", ref) from None
        self.call = call
        log_as(call.id, self.participant.id, claims.user_id)
        logger.info("%s joined %s as %s", claims.user_id, lesson.id, claims.role.value)

    async def disconnected_by_call(self) -> None:
        self.participant = None
        await self.close()

    async def _handle(self, data: str, max_bytes: int) -> None:
        try:
            message = self._parse(data, max_bytes)
            await self._dispatch(message)
        except ProtocolError as exc:
            await self.send(exc.to_json())
        except Exception:
            # A bug of ours must not cost the person their call.
            logger.exception("handling a client message failed")
            await self.error("internal_error", "the server could not handle this message")

    async def _dispatch(self, message: dict[str, Any]) -> None:
        call, participant = self.call, self.participant
        assert call is not None and participant is not None
        ref = message.get("id")
        kind = message["type"]
        try:
            await self._dispatch_to_call(call, participant, kind, message)
        except CallError as exc:
            raise ProtocolError(exc.code, exc.message, ref) from None

    async def _dispatch_to_call(
        self, call: Call, participant: Participant, kind: str, message: dict[str, Any]
    ) -> None:
        ref = message.get("id")
        if kind == "ping":
            await self.send({"type": "pong", **_ref(message)})
        elif kind in ("join", "resume"):
            raise ProtocolError("already_joined", "this connection has joined already", ref)
        elif kind == "leave":
            await self._leave()
        elif not participant.admitted:
            raise CallError("not_admitted", "wait until a host lets you in")
        elif kind == "publish":
            sources = {t["mid"]: t["source"] for t in message["tracks"]}
            try:
                answer = await call.publish(participant, message["sdp"], sources)
            except SdpError as exc:
                raise ProtocolError("bad_sdp", str(exc)[:300], ref) from None
            await self.send({"type": "publish_answer", "sdp": answer, **_ref(message)})
        elif kind == "ice_restart":
            await self._ice_restart(call, participant, message)
        elif kind == "subscribe_answer":
            try:
                await call.subscribe_answer(participant, message["sdp"])
            except NegotiationError as exc:
                raise ProtocolError("no_offer", str(exc), ref) from None
            except SdpError as exc:
                raise ProtocolError("bad_sdp", str(exc)[:300], ref) from None
        elif kind == "end_call":
            await self._end_call(call, participant)
        else:
            await ACTIONS[kind](call, participant, message)

    async def _ice_restart(
        self, call: Call, participant: Participant, message: dict[str, Any]
    ) -> None:
        """A new peer connection for a broken media path (rooms/calls/ice_restart.py)."""
        reply = {"type": "ice_restarted", "connection": message["connection"], **_ref(message)}
        if message["connection"] == "subscriber":
            await call.restart_subscriber(participant, reply)
            self._counts.ice_restarts["subscriber"] += 1
            return
        sources = {t["mid"]: t["source"] for t in message["tracks"]}
        try:
            answer = await call.restart_publisher(participant, message["sdp"], sources)
        except SdpError as exc:
            raise ProtocolError("bad_sdp", str(exc)[:300], message.get("id")) from None
        self._counts.ice_restarts["publisher"] += 1
        await self.send({**reply, "sdp": answer})

    async def _end_call(self, call: Call, participant: Participant) -> None:
        if not participant.host:
            raise CallError("not_host", "only the teacher or a co-host may end the call")
        # The lesson's end callbacks end the call for everyone (this host too).
        await self.app[LESSONS].end(call.id, None, datetime.now(UTC), "ended_by_host")

    async def _leave(self) -> None:
        call, participant = self.call, self.participant
        self.participant = None
        # Unless another connection has resumed them meanwhile (this one is being replaced).
        if participant is not None and participant.disconnect == self.disconnected_by_call:
            assert call is not None
            await call.leave(participant)
            await self.app[CALLS].remove_if_empty(call)
        await self.close()

    async def dropped(self) -> None:
        """The connection is gone without a `leave`: hold the participant for the grace
        (rooms/calls/resume.py), or let them go at once when there is none."""
        call, participant = self.call, self.participant
        self.participant = None
        if call is None or participant is None:
            return
        grace = self.app[SETTINGS].resume_grace_seconds
        registry = self.app[CALLS]
        if grace > 0 and await call.hold(
            participant, self.disconnected_by_call, grace, lambda: registry.remove_if_empty(call)
        ):
            return
        if participant.disconnect == self.disconnected_by_call:  # not resumed elsewhere
            await call.leave(participant)
            await registry.remove_if_empty(call)


def _ref(message: dict[str, Any]) -> dict[str, Any]:
    return {"ref": message["id"]} if "id" in message else {}


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    # aiohttp closes on frames above max_msg_size; ours answers `too_large`
    # below that and keeps the connection.
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=settings.max_ws_message_bytes * 4)
    await ws.prepare(request)
    open_now = request.app[WS_COUNTS].open
    open_now.add(ws)
    try:
        session = Session(request, ws, await relayed_peer(request))
        try:
            await session.run()
        except Exception:
            logger.exception("websocket session failed")
        finally:
            await session.dropped()
    finally:
        open_now.discard(ws)
    return ws


async def close_open_sockets(app: web.Application) -> None:
    """At shutdown, before aiohttp waits (up to a minute) for every handler to end: each
    connection still open is closed as going away; the page comes back with its backoff.
    After a drain (signalling/drain.py) everyone was let go already; after a drain cut
    short, or none (an embedding app's cleanup), this is how they go."""
    sockets = list(app[WS_COUNTS].open)
    if sockets:
        logger.warning("shutting down without a drain: closing %d connections", len(sockets))
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
        return_exceptions=True,
    )


def setup(app: web.Application) -> None:
    app.on_shutdown.append(close_open_sockets)
    app.router.add_get("/ws", websocket_handler)
    setup_relay(app)
