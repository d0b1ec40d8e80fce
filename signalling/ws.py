"""The call WebSocket: authenticate with a join token, then relay the protocol to the call."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from rooms.calls import Call, CallEnded, CallError, Participant
from rooms.lessons import LessonNotFound, LessonState, Role
from sfu.transport import NegotiationError, SdpError
from signalling.keys import CALLS, LESSONS, MEDIA, SETTINGS, STORE, TOKENS
from signalling.protocol import ProtocolError, parse_message
from signalling.ratelimit import LIMITS, join_rate_limited
from signalling.tokens import TokenError

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0


class Session:
    """One WebSocket connection, before and after it joins a call."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.app = request.app
        self.ws = ws
        self.call: Call | None = None
        self.participant: Participant | None = None
        self._send_lock = asyncio.Lock()
        self.peer = request.remote

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            await self.ws.send_json(message)

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
            if msg.type != WSMsgType.TEXT:
                await self.error("bad_json", "send JSON text frames")
                continue
            if not await self._handle_before_join(msg.data, settings.max_ws_message_bytes):
                return
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                await self._handle(msg.data, settings.max_ws_message_bytes)
            elif msg.type == WSMsgType.BINARY:
                await self.error("bad_json", "send JSON text frames")
            if self.participant is None:
                break

    async def _handle_before_join(self, data: str, max_bytes: int) -> bool:
        """Handle a frame before joining; False once the connection should close."""
        try:
            message = parse_message(data, max_bytes)
        except ProtocolError as exc:
            await self.send(exc.to_json())
            return True
        if message["type"] == "ping":
            await self.send({"type": "pong", **_ref(message)})
            return True
        if message["type"] != "join":
            await self.error("not_joined", "send join first", message.get("id"))
            return True
        try:
            await self._join(message)
        except ProtocolError as exc:
            await self.send(exc.to_json())
            return False
        return True

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
            lesson = await self.app[LESSONS].get(claims.lesson_id)
        except LessonNotFound:
            raise ProtocolError("lesson_not_found", "this lesson does not exist", ref) from None
        if lesson.integration != claims.key_id:
            # Signed by another journal's key: it cannot open this journal's lesson.
            raise ProtocolError("token_invalid", "token is not for this lesson", ref)
        # The same roster rules as the API's token endpoint, for tokens a
        # journal signed itself.
        if not lesson.admits(claims.user_id, claims.role):
            raise ProtocolError(
                "not_in_roster", f"{claims.user_id} is not this lesson's {claims.role.value}", ref
            )
        settings = self.app[SETTINGS]
        if lesson.state is LessonState.ENDED:
            raise ProtocolError("lesson_ended", "the lesson has ended", ref)
        early = timedelta(minutes=settings.early_join_minutes)
        if not lesson.joinable_by(claims.role, datetime.now(UTC), early):
            raise ProtocolError(
                "lesson_not_open",
                f"the lesson has not started yet (starts {lesson.starts_at.isoformat()})",
                ref,
            )
        store = self.app[STORE]
        if await store.is_token_revoked(claims.jti):
            raise ProtocolError("token_revoked", "you were removed from this call", ref)
        if claims.role is Role.GUEST and not (await store.get_settings(lesson.id)).guests_allowed:
            raise ProtocolError("guests_not_allowed", "guests may not join this call", ref)
        call = self.app[CALLS].get_or_create(lesson)
        try:
            self.participant = await call.enter(
                user_id=claims.user_id,
                name=claims.name,
                role=claims.role,
                jti=claims.jti,
                token_expires_at=claims.expires_at,
                send=self.send,
                disconnect=self._disconnected_by_call,
                joined_extra={
                    "ice_servers": self.app[MEDIA].ice_servers,
                    "language": settings.default_language,
                    **_ref(message),
                },
            )
        except CallEnded:
            raise ProtocolError("lesson_ended", "the lesson has ended", ref) from None
        self.call = call
        logger.info("%s joined %s as %s", claims.user_id, lesson.id, claims.role.value)

    async def _disconnected_by_call(self) -> None:
        self.participant = None
        await self.close()

    async def _handle(self, data: str, max_bytes: int) -> None:
        try:
            message = parse_message(data, max_bytes)
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
        elif kind == "join":
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
        elif kind == "subscribe_answer":
            try:
                await call.subscribe_answer(participant, message["sdp"])
            except NegotiationError as exc:
                raise ProtocolError("no_offer", str(exc), ref) from None
            except SdpError as exc:
                raise ProtocolError("bad_sdp", str(exc)[:300], ref) from None
        elif kind == "media_state":
            await call.set_media_state(
                participant, message["audio"], message["video"], message.get("screen")
            )
        elif kind == "hand":
            await call.set_hand(participant, message["raised"])
        elif kind == "lower_hand":
            await call.lower_hand(participant, message["participant_id"])
        elif kind == "lower_all_hands":
            await call.lower_all_hands(participant)
        elif kind in ("admit", "admit_all"):
            await call.admit(participant, message.get("participant_id"))
        elif kind in ("deny", "deny_all"):
            await call.deny(participant, message.get("participant_id"))
        elif kind == "nudge":
            await call.nudge(participant, message["participant_id"])
        elif kind == "mute":
            await call.mute(participant, message["participant_id"], message["kind"])
        elif kind == "mute_all":
            await call.mute_all(participant)
        elif kind == "remove":
            await call.remove(participant, message["participant_id"])
        elif kind == "set_cohost":
            await call.set_cohost(participant, message["participant_id"], message["cohost"])
        elif kind == "set_permissions":
            await call.set_permissions(participant, Role(message["role"]), message["permissions"])
        elif kind == "set_call_settings":
            await call.set_call_settings(
                participant, message.get("waiting_room"), message.get("guests_allowed")
            )
        elif kind == "chat_send":
            await call.chat_send(participant, message["text"])
        elif kind == "recording_start":
            await call.recording_start(participant, message.get("title"), message.get("visibility"))
        elif kind == "recording_stop":
            await call.recording_stop(participant)
        elif kind == "end_call":
            await self._end_call(call, participant)
        elif kind.startswith("breakout_"):
            await self._breakout(call, participant, kind, message)

    async def _breakout(
        self, call: Call, participant: Participant, kind: str, message: dict[str, Any]
    ) -> None:
        if kind == "breakout_configure":
            await call.breakout_configure(participant, message["count"], message.get("names"))
        elif kind == "breakout_assign":
            await call.breakout_assign(participant, message["assignments"])
        elif kind == "breakout_assign_random":
            await call.breakout_assign_random(participant, message.get("include_hosts", False))
        elif kind == "breakout_open":
            await call.breakout_open(
                participant, message.get("minutes"), message.get("allow_return", False)
            )
        elif kind == "breakout_move":
            await call.breakout_move(participant, message["participant_id"], message["room_id"])
        elif kind == "breakout_visit":
            await call.breakout_visit(participant, message["room_id"])
        elif kind == "breakout_broadcast":
            await call.breakout_broadcast(participant, message["text"])
        elif kind == "breakout_close":
            await call.breakout_close(participant, message.get("countdown_seconds", 30))
        elif kind == "breakout_help":
            await call.breakout_help(participant)
        elif kind == "breakout_return":
            await call.breakout_return(participant)

    async def _end_call(self, call: Call, participant: Participant) -> None:
        if not participant.host:
            raise CallError("not_host", "only the teacher or a co-host may end the call")
        # The lesson's end callbacks end the call for everyone (this host too).
        await self.app[LESSONS].end(call.id, None, datetime.now(UTC), "ended_by_host")

    async def _leave(self) -> None:
        call, participant = self.call, self.participant
        self.participant = None
        if call is not None and participant is not None:
            await call.leave(participant)
            await self.app[CALLS].remove_if_empty(call)
        await self.close()


def _ref(message: dict[str, Any]) -> dict[str, Any]:
    return {"ref": message["id"]} if "id" in message else {}


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    # aiohttp closes on frames above max_msg_size; ours answers `too_large`
    # below that and keeps the connection.
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=settings.max_ws_message_bytes * 4)
    await ws.prepare(request)
    session = Session(request, ws)
    try:
        await session.run()
    except Exception:
        logger.exception("websocket session failed")
    finally:
        await session._leave()
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/ws", websocket_handler)
