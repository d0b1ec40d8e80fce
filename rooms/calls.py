"""Calls: who is in which call, with what rights, and what they publish and receive.

A call belongs to one lesson and owns one SFU router. Shared state (who is in
the call or waiting, hands, settings and permissions, chat, attendance) lives
in the store; what only this node can hold (connections, transports,
producers) lives here. The connection to each person is abstracted as two
callables, so this module knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from breakout.model import BreakoutError, BreakoutState
from rooms.chat import ChatError, ChatLimits, ProfanityFilter, RateLimiter, prepare_message
from rooms.chat import system_message as chat_system_message
from rooms.lessons import Lesson, Role
from rooms.model import (
    CONFIGURABLE_ROLES,
    RECORDING_VIEWER_ROLES,
    CallSettings,
    ChatMessage,
    ParticipantRecord,
    Permissions,
    RecordingRecord,
    RecordingStatus,
)
from rooms.recordings import (
    CallRecorder,
    RecordingService,
    RecordingUnavailable,
    finished_record,
    new_recording_id,
    ready_chat_data,
)
from rooms.store import DEFAULT_RETENTION_SECONDS, Store
from sfu.consumer import Consumer
from sfu.engine import MediaEngine
from sfu.producer import Producer
from sfu.router import Router
from sfu.transport import PublisherTransport, SubscriberTransport

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Disconnect = Callable[[], Awaitable[None]]
# (lesson, "joined" | "left", participant, when): for the journal's webhooks.
PresenceObserver = Callable[[Lesson, str, "Participant", datetime], None]

SOURCES_BY_KIND = {"audio": ("microphone",), "video": ("camera", "screen")}
# Which media_state flag and which permission govern each source.
SOURCE_FLAG = {"microphone": "audio", "camera": "video", "screen": "screen"}
FLAG_PERMISSION = {"audio": "unmute", "video": "video", "screen": "screen"}
KIND_TO_FLAG = {"audio": "audio", "video": "video", "screen": "screen"}


class CallError(Exception):
    """A request the call refuses; `code` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CallEnded(Exception):
    """The call has ended; nobody can join it any more."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Participant:
    """One person's connection to this call on this node."""

    record: ParticipantRecord
    send: Send
    disconnect: Disconnect
    jti: str = ""
    token_expires_at: datetime | None = None
    admitted: bool = False
    # Connection details the joined / waiting messages carry (ICE servers, language, ref).
    joined_extra: dict[str, Any] = field(default_factory=dict)
    publisher: PublisherTransport | None = None
    subscriber: SubscriberTransport | None = None
    producers: dict[str, Producer] = field(default_factory=dict)  # by source
    room: str | None = None  # breakout room id; None: the main room

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def user_id(self) -> str:
        return self.record.user_id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def role(self) -> Role:
        return self.record.role

    @property
    def host(self) -> bool:
        return self.record.host

    def to_json(self) -> dict[str, Any]:
        return self.record.public()

    def brief(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass
class ChatPolicy:
    limits: ChatLimits = field(default_factory=ChatLimits)
    profanity: ProfanityFilter | None = None
    # How long after its expiry a join token still reads the chat (and watches recordings).
    history_seconds: int = DEFAULT_RETENTION_SECONDS


class Call:
    def __init__(
        self,
        lesson: Lesson,
        router: Router,
        store: Store,
        chat: ChatPolicy | None = None,
        presence: list[PresenceObserver] | None = None,
        media: MediaEngine | None = None,
        recordings: RecordingService | None = None,
    ) -> None:
        self.lesson = lesson
        self.recordings = recordings
        self._recorder: CallRecorder | None = None  # the recording running now, if any
        self._finishing: set[asyncio.Task[None]] = set()  # stopped recordings being finished
        self._disk_watch: asyncio.Task[None] | None = None  # of the running recording
        self.router = router  # the main room
        self.media = media
        self.room_routers: dict[str, Router] = {}  # breakout rooms on this node
        self._closing: asyncio.Task[None] | None = None
        self.store = store
        self.chat = chat or ChatPolicy()
        self.presence = presence if presence is not None else []
        self.participants: dict[str, Participant] = {}  # admitted, on this node
        self.waiting: dict[str, Participant] = {}  # in the waiting room, on this node
        self.ended = False
        self._rate = RateLimiter(self.chat.limits.rate_messages, self.chat.limits.rate_window)
        # Serialises state changes of this call (joins, admissions, moderation).
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.lesson.id

    def describe(self) -> dict[str, Any]:
        lesson = self.lesson
        return {
            "id": lesson.id,
            "title": lesson.title,
            "subject": lesson.subject,
            "group_title": lesson.group_title,
            "starts_at": lesson.starts_at.isoformat(),
            "ends_at": lesson.ends_at.isoformat(),
        }

    # ------------------------------------------------------------------ messaging

    async def broadcast(self, message: dict[str, Any], exclude: Participant | None = None) -> None:
        targets = [p for p in self.participants.values() if p is not exclude]
        await asyncio.gather(*(_safe_send(p, message) for p in targets))

    async def _to_hosts(self, message: dict[str, Any]) -> None:
        hosts = [p for p in self.participants.values() if p.host]
        await asyncio.gather(*(_safe_send(p, message) for p in hosts))

    async def _announce_waiting(self) -> None:
        waiting = [r.public() for r in await self.store.waiting(self.id)]
        await self._to_hosts({"type": "waiting_list", "waiting": waiting})

    async def _announce_hands(self, queue: list[str]) -> None:
        await self.broadcast({"type": "hands", "queue": queue})

    async def _announce_update(self, participant: Participant) -> None:
        await self.store.put_participant(self.id, participant.record)
        await self.broadcast({"type": "participant_updated", "participant": participant.to_json()})

    async def _post_system(self, event: str, data: dict[str, Any], room: str = "") -> None:
        message = chat_system_message(event, data, _now())
        message = await self.store.append_chat(self.id, replace(message, room=room))
        await self._post_chat(message)

    # ------------------------------------------------------------------ rights

    async def settings(self) -> CallSettings:
        return await self.store.get_settings(self.id)

    async def permissions_of(self, participant: Participant) -> Permissions:
        return (await self.settings()).permissions_for(participant.role, participant.host)

    def _require_host(self, participant: Participant) -> None:
        if not participant.host:
            logger.warning(
                "%s (%s) tried a host action in %s",
                participant.user_id,
                participant.role.value,
                self.id,
            )
            raise CallError("not_host", "only the teacher or a co-host may do this")

    def _target(self, participant_id: str) -> Participant:
        target = self.participants.get(participant_id)
        if target is None:
            raise CallError("unknown_participant", f"no participant {participant_id[:64]!r}")
        return target

    # ------------------------------------------------------------------ joining

    async def enter(
        self,
        *,
        user_id: str,
        name: str,
        role: Role,
        jti: str,
        token_expires_at: datetime | None,
        send: Send,
        disconnect: Disconnect,
        joined_extra: dict[str, Any] | None = None,
    ) -> Participant:
        """Join the call, or its waiting room when that is on and this is not a host."""
        if self.ended:
            raise CallEnded(self.id)
        # One connection per person: a second tab or a reconnect replaces the first.
        for old in [
            p for p in (*self.participants.values(), *self.waiting.values()) if p.user_id == user_id
        ]:
            await _safe_send(old, {"type": "call_ended", "reason": "replaced"})
            await self.leave(old)
            await old.disconnect()
        participant = Participant(
            record=ParticipantRecord(
                id="p_" + secrets.token_hex(5),
                user_id=user_id,
                name=name,
                role=role,
                host=role is Role.TEACHER,
            ),
            send=send,
            disconnect=disconnect,
            jti=jti,
            token_expires_at=token_expires_at,
            joined_extra=joined_extra or {},
        )
        settings = await self.settings()
        if settings.waiting_room and not participant.host:
            self.waiting[participant.id] = participant
            await self.store.put_waiting(self.id, participant.record)
            await send(
                {
                    "type": "waiting",
                    "call": self.describe(),
                    "self": participant.to_json(),
                    **participant.joined_extra,
                }
            )
            await self._announce_waiting()
            await self._post_system("waiting", {"name": name, "participant_id": participant.id})
            return participant
        await self._admit(participant)
        return participant

    async def _admit(self, participant: Participant) -> None:
        participant.admitted = True
        # Start with what the person may switch on; their media_state follows.
        permissions = await self.permissions_of(participant)
        participant.record = replace(
            participant.record, audio=permissions.unmute, video=permissions.video
        )
        self.participants[participant.id] = participant
        # Back to their breakout room, if rooms are open and they have one.
        breakout = await self.store.get_breakout(self.id)
        participant.room = breakout.room_of(participant.user_id) if breakout else None
        router = self._router(participant.room)
        participant.subscriber = router.create_subscriber_transport(
            lambda sdp, tracks: self._send_subscribe_offer(participant, sdp, tracks)
        )
        await self.store.put_participant(self.id, participant.record)
        now = _now()
        await self.store.record_join(
            self.id, participant.user_id, participant.name, participant.role.value, now
        )
        self._tell_presence("joined", participant, now)
        settings = await self.settings()
        joined: dict[str, Any] = {
            "type": "joined",
            "self": participant.to_json(),
            "call": self.describe(),
            "participants": [
                p.to_json() for p in self.participants.values() if p is not participant
            ],
            "hands": await self.store.hands(self.id),
            "chat": [m.to_json() for m in await self._room_history(participant.room)],
            "settings": settings.to_json(),
            "permissions": settings.permissions_for(participant.role, participant.host).to_json(),
            "recording": self.recording_state(),
            **participant.joined_extra,
        }
        if participant.host:
            joined["waiting"] = [r.public() for r in await self.store.waiting(self.id)]
        await participant.send(joined)
        if breakout is not None:
            await self._send_breakout(participant, breakout)
        await self.broadcast(
            {"type": "participant_joined", "participant": participant.to_json()},
            exclude=participant,
        )
        self._subscribe_in_room(participant)
        self._sync_recording()

    async def _send_subscribe_offer(
        self, participant: Participant, sdp: str, tracks: dict[str, Consumer]
    ) -> None:
        described = {}
        for mid, consumer in tracks.items():
            producer = consumer.producer
            if producer is None:
                continue
            described[mid] = {
                "participant_id": producer.app_data["participant_id"],
                "kind": producer.kind,
                "source": producer.app_data["source"],
            }
        await participant.send({"type": "subscribe_offer", "sdp": sdp, "tracks": described})

    def _tell_presence(self, event: str, participant: Participant, at: datetime) -> None:
        for observer in self.presence:
            try:
                observer(self.lesson, event, participant, at)
            except Exception:
                logger.exception("presence observer failed")

    def require_admitted(self, participant: Participant) -> None:
        if not participant.admitted:
            raise CallError("not_admitted", "wait until a host lets you in")

    # ------------------------------------------------------------------ media

    async def publish(self, participant: Participant, sdp: str, sources: dict[str, str]) -> str:
        """Apply a publisher offer; subscribe everybody else to new tracks; return the answer."""
        self.require_admitted(participant)
        known = participant.publisher.producers if participant.publisher is not None else {}
        # Claiming a screen needs the right, except for an m-section that is a
        # screen share already (an idle one negotiated while sharing was allowed).
        new_screen = any(
            src == "screen" and not (mid in known and known[mid].app_data.get("source") == "screen")
            for mid, src in sources.items()
        )
        if new_screen and not (await self.permissions_of(participant)).screen:
            raise CallError("not_permitted", "you may not share your screen in this call")
        if participant.publisher is None:
            participant.publisher = self._router(participant.room).create_publisher_transport()
        app_data = {
            mid: {"participant_id": participant.id, "source": source}
            for mid, source in sources.items()
        }
        answer, producers = await participant.publisher.handle_offer(sdp, app_data)
        for producer in producers:
            producer.app_data.setdefault("participant_id", participant.id)
            if producer.app_data.get("source") not in SOURCES_BY_KIND[producer.kind]:
                producer.app_data["source"] = SOURCES_BY_KIND[producer.kind][0]
            participant.producers[producer.app_data["source"]] = producer
        await self._apply_media(participant)
        router = self._router(participant.room)
        for producer in producers:
            for other in self._in_room(participant.room):
                if other is not participant and other.subscriber is not None:
                    router.consume(other.subscriber, producer)
        self._sync_recording()
        return answer

    async def _apply_media(self, participant: Participant) -> None:
        """Forward each producer only while it is switched on and permitted."""
        permissions = await self.permissions_of(participant)
        for source, producer in participant.producers.items():
            flag = SOURCE_FLAG[source]
            on = getattr(participant.record, flag) and getattr(permissions, FLAG_PERMISSION[flag])
            if on:
                await producer.resume()
            else:
                producer.pause()

    async def subscribe_answer(self, participant: Participant, sdp: str) -> None:
        self.require_admitted(participant)
        assert participant.subscriber is not None
        await participant.subscriber.handle_answer(sdp)

    async def set_media_state(
        self, participant: Participant, audio: bool, video: bool, screen: bool | None = None
    ) -> None:
        self.require_admitted(participant)
        permissions = await self.permissions_of(participant)
        wanted = {"audio": audio, "video": video}
        if screen is not None:
            wanted["screen"] = screen
        refused = [
            flag
            for flag, on in wanted.items()
            if on
            and not getattr(participant.record, flag)
            and not getattr(permissions, FLAG_PERMISSION[flag])
        ]
        if refused:
            # Nothing of a refused request is applied.
            raise CallError("not_permitted", f"you may not turn on: {', '.join(refused)}")
        participant.record = replace(participant.record, **wanted)
        await self._apply_media(participant)
        await self._announce_update(participant)

    # ------------------------------------------------------------------ hands

    async def set_hand(self, participant: Participant, raised: bool) -> None:
        self.require_admitted(participant)
        if raised:
            queue = await self.store.raise_hand(self.id, participant.id)
        else:
            queue = await self.store.lower_hand(self.id, participant.id)
        await self._announce_hands(queue)

    async def lower_hand(self, host: Participant, participant_id: str) -> None:
        self._require_host(host)
        await self._announce_hands(await self.store.lower_hand(self.id, participant_id))

    async def lower_all_hands(self, host: Participant) -> None:
        self._require_host(host)
        await self._announce_hands(await self.store.lower_all_hands(self.id))

    # ------------------------------------------------------------------ waiting room

    async def admit(self, host: Participant, participant_id: str | None) -> None:
        """Admit one waiting person (or everyone, with None)."""
        self._require_host(host)
        await self._admit_waiting(participant_id)

    async def _admit_waiting(self, participant_id: str | None) -> None:
        async with self._lock:
            ids = [participant_id] if participant_id is not None else list(self.waiting)
            if participant_id is not None and participant_id not in self.waiting:
                raise CallError("unknown_participant", "nobody with that id is waiting")
            for pid in ids:
                participant = self.waiting.pop(pid)
                await self.store.remove_waiting(self.id, pid)
                await self._admit(participant)
            await self._announce_waiting()

    async def deny(self, host: Participant, participant_id: str | None) -> None:
        self._require_host(host)
        async with self._lock:
            ids = [participant_id] if participant_id is not None else list(self.waiting)
            if participant_id is not None and participant_id not in self.waiting:
                raise CallError("unknown_participant", "nobody with that id is waiting")
            for pid in ids:
                participant = self.waiting.pop(pid)
                await self.store.remove_waiting(self.id, pid)
                await _safe_send(participant, {"type": "denied", "by": host.brief()})
                await participant.disconnect()
            await self._announce_waiting()

    # ------------------------------------------------------------------ moderation

    async def nudge(self, host: Participant, participant_id: str) -> None:
        self._require_host(host)
        await _safe_send(self._target(participant_id), {"type": "nudged", "by": host.brief()})

    async def mute(self, host: Participant, participant_id: str, kind: str) -> None:
        self._require_host(host)
        target = self._target(participant_id)
        await self._switch_off(target, KIND_TO_FLAG[kind], host)

    async def _switch_off(self, target: Participant, flag: str, by: Participant | None) -> None:
        if not getattr(target.record, flag):
            return
        target.record = replace(target.record, **{flag: False})
        await self._apply_media(target)
        kind = {"audio": "audio", "video": "video", "screen": "screen"}[flag]
        message: dict[str, Any] = {"type": "muted", "kind": kind}
        if by is not None:
            message["by"] = by.brief()
        await _safe_send(target, message)
        await self._announce_update(target)

    async def mute_all(self, host: Participant) -> None:
        self._require_host(host)
        for target in list(self.participants.values()):
            if not target.host:
                await self._switch_off(target, "audio", host)

    async def remove(self, host: Participant, participant_id: str) -> None:
        self._require_host(host)
        target = self._target(participant_id)
        if target.role is Role.TEACHER:
            raise CallError("not_permitted", "the teacher cannot be removed")
        # Revoke first, so a quick reconnect with the same token already fails.
        # Revoked for as long as the token could still be used, chat history included.
        kept = max(DEFAULT_RETENTION_SECONDS, self.chat.history_seconds)
        until = (target.token_expires_at or _now()) + timedelta(seconds=kept)
        await self.store.revoke_token(target.jti, until)
        await _safe_send(target, {"type": "removed", "by": host.brief()})
        await self.leave(target)
        await target.disconnect()

    async def set_cohost(self, host: Participant, participant_id: str, cohost: bool) -> None:
        self._require_host(host)
        target = self._target(participant_id)
        if target.role is Role.TEACHER:
            raise CallError("not_permitted", "the teacher is always the host")
        target.record = replace(target.record, cohost=cohost, host=cohost)
        await self._announce_update(target)
        await self._send_settings(target, await self.settings())
        if cohost:
            await _safe_send(
                target,
                {
                    "type": "waiting_list",
                    "waiting": [r.public() for r in await self.store.waiting(self.id)],
                },
            )
        else:
            await self._apply_media(target)

    async def set_permissions(
        self, host: Participant, role: Role, changes: dict[str, bool]
    ) -> None:
        self._require_host(host)
        if role not in CONFIGURABLE_ROLES:
            raise CallError("bad_message", f"permissions of {role.value} cannot be changed")
        settings = await self.settings()
        current = settings.permissions_for(role, host=False)
        updated = replace(current, **changes)
        settings = settings.with_permissions(role, updated)
        await self.store.set_settings(self.id, settings)
        # A right taken away is enforced at once, not on the next toggle.
        for target in list(self.participants.values()):
            if target.role is not role or target.host:
                continue
            for flag, permission in FLAG_PERMISSION.items():
                if not getattr(updated, permission):
                    await self._switch_off(target, flag, host)
        await self._broadcast_settings(settings)

    async def set_call_settings(
        self, host: Participant, waiting_room: bool | None, guests_allowed: bool | None
    ) -> None:
        self._require_host(host)
        await self.change_settings(waiting_room, guests_allowed)

    async def change_settings(
        self, waiting_room: bool | None = None, guests_allowed: bool | None = None
    ) -> CallSettings:
        """Switch the waiting room and guests (None: unchanged); everyone in the call hears.

        Turning the waiting room off lets in whoever was waiting. A host's switch
        (set_call_settings) and the journal's (PATCH /api/v1/calls/{id}) both come here.
        """
        settings = await self.settings()
        if waiting_room is not None:
            settings = replace(settings, waiting_room=waiting_room)
        if guests_allowed is not None:
            settings = replace(settings, guests_allowed=guests_allowed)
        await self.store.set_settings(self.id, settings)
        await self._broadcast_settings(settings)
        if waiting_room is False and self.waiting:
            # No waiting room any more: whoever was waiting comes in.
            await self._admit_waiting(None)
        return settings

    async def _send_settings(self, participant: Participant, settings: CallSettings) -> None:
        await _safe_send(
            participant,
            {
                "type": "call_settings",
                "settings": settings.to_json(),
                "permissions": settings.permissions_for(
                    participant.role, participant.host
                ).to_json(),
            },
        )

    async def _broadcast_settings(self, settings: CallSettings) -> None:
        await asyncio.gather(
            *(self._send_settings(p, settings) for p in self.participants.values())
        )

    # ------------------------------------------------------------------ chat

    async def chat_send(self, participant: Participant, text: str) -> ChatMessage:
        self.require_admitted(participant)
        if not (await self.permissions_of(participant)).chat:
            raise CallError("not_permitted", "you may not write in this chat")
        try:
            text = prepare_message(text, self.chat.limits)
        except ChatError as exc:
            raise CallError(f"chat_{exc.code}", exc.message) from None
        wait = self._rate.check(participant.id)
        if wait is not None:
            raise CallError(
                "chat_rate_limited", f"too many messages: try again in {math.ceil(wait)} s"
            )
        filtered = False
        if self.chat.profanity is not None:
            text, filtered = self.chat.profanity.filter(text)
        message = await self.store.append_chat(
            self.id,
            ChatMessage(
                room=participant.room or "",
                id="",
                kind="text",
                text=text,
                at=_now(),
                author_id=participant.id,
                author_user_id=participant.user_id,
                author_name=participant.name,
                author_role=participant.role,
                filtered=filtered,
            ),
        )
        await self._post_chat(message)
        return message

    # ------------------------------------------------------------------ recording

    def recording_state(self) -> dict[str, Any] | None:
        return self._recorder.state() if self._recorder is not None else None

    def _sync_recording(self) -> None:
        if self._recorder is not None:
            self._recorder.sync(self._in_room(None))

    def default_recording_title(self, at: datetime) -> str:
        lesson = self.lesson
        day = lesson.starts_at.date() if lesson.starts_at else at.date()
        date = day.strftime("%d.%m.%Y")
        return ", ".join(p for p in (lesson.title[: 198 - len(date)], date) if p)

    async def recording_start(
        self, host: Participant, title: str | None, visibility: list[str] | None
    ) -> dict[str, Any]:
        """Start recording the main room; everyone is told (and so is whoever joins later)."""
        self._require_host(host)
        service = self.recordings
        async with self._lock:
            if self._recorder is not None:
                raise CallError("recording_active", "this call is being recorded already")
            if service is None:
                raise CallError("recording_unavailable", "recording is not available here")
            try:
                service.check_can_start()
            except RecordingUnavailable as exc:
                raise CallError(exc.code, str(exc)) from None
            now = _now()
            title = " ".join((title or "").split())[:200] or self.default_recording_title(now)
            viewers = {Role(v) for v in visibility} if visibility is not None else None
            recording_id = new_recording_id()
            record = RecordingRecord(
                id=recording_id,
                call_id=self.id,
                integration=self.lesson.integration,
                title=title,
                author_user_id=host.user_id,
                author_name=host.name,
                started_at=now,
                visibility=tuple(
                    role
                    for role in RECORDING_VIEWER_ROLES
                    if viewers is None or role in viewers or role is Role.TEACHER
                ),
                file=f"{recording_id}.mp4",
            )
            recorder_ref: list[CallRecorder] = []
            process = service.process(
                record, lambda source: recorder_ref[0].request_keyframe(source)
            )
            try:
                await service.library.save(record)
                process.start()
                service.running += 1
            except Exception as exc:
                logger.exception("could not start recording %s", recording_id)
                await service.library.save(
                    replace(record, status=RecordingStatus.FAILED, error=str(exc)[:300])
                )
                raise CallError("recording_failed", "the recording could not start") from None
            recorder = CallRecorder(record, process, host.id)
            recorder_ref.append(recorder)
            self._recorder = recorder
            self._sync_recording()
            self._watch_disk(recorder)
        logger.info("%s started recording %s in %s", host.user_id, recording_id, self.id)
        state = recorder.state()
        await self.broadcast({"type": "recording", "recording": state})
        return state

    async def recording_stop(self, host: Participant) -> None:
        self._require_host(host)
        async with self._lock:
            recorder = self._recorder
            if recorder is None:
                raise CallError("no_recording", "nothing is being recorded")
            self._end_recording(recorder)
        logger.info("%s stopped recording %s in %s", host.user_id, recorder.record.id, self.id)
        await self.broadcast({"type": "recording", "recording": None})

    def _end_recording(self, recorder: CallRecorder) -> None:
        """The recording stops now; its file is finished in the background."""
        self._recorder = None
        self._stop_disk_watch()
        task = asyncio.ensure_future(self._stop_recorder(recorder))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _watch_disk(self, recorder: CallRecorder) -> None:
        """Stop the recording (keeping what it has) before the disk fills up."""
        service = self.recordings
        assert service is not None

        async def watch() -> None:
            while self._recorder is recorder:
                await asyncio.sleep(service.disk_check_seconds)
                if not service.disk_nearly_full():
                    continue
                async with self._lock:
                    if self._recorder is not recorder:
                        return
                    logger.warning("disk nearly full: recording %s stopped", recorder.record.id)
                    self._end_recording(recorder)
                await self.broadcast(
                    {"type": "recording", "recording": None, "reason": "disk_full"}
                )
                return

        self._disk_watch = asyncio.ensure_future(watch())

    def _stop_disk_watch(self) -> None:
        watch, self._disk_watch = self._disk_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()

    async def _stop_recorder(self, recorder: CallRecorder) -> None:
        """Finish the file, then list it, post it into the chat and tell the journal."""
        service = self.recordings
        assert service is not None
        library = service.library
        record = replace(recorder.record, status=RecordingStatus.PROCESSING, ended_at=_now())
        try:
            try:
                await library.save(record)
            except Exception:  # the store is down: the recorder must be stopped all the same
                logger.exception("saving recording %s as processing failed", record.id)
            result = await recorder.stop()
            logger.info(
                "recording %s of %s finished: %.1f s, %.1f MB, %d frames (%d skipped to keep up),"
                " %d packets dropped, %.1f CPU s, complete: %s",
                record.id,
                self.id,
                result.duration_s,
                result.size_bytes / 1e6,
                result.video_frames,
                result.skipped_frames,
                result.dropped_packets,
                result.cpu_s,
                result.complete,
            )
            record = finished_record(record, result, record.ended_at)
            await library.save(record)
        except Exception:
            logger.exception("finishing recording %s failed", record.id)
            record = replace(record, status=RecordingStatus.FAILED, error="finishing failed")
            with contextlib.suppress(Exception):
                await library.save(record)
        finally:
            service.running -= 1
        if record.status == RecordingStatus.READY:
            await self._post_system(
                "recording_ready",
                ready_chat_data(record),
                room="*",  # for everyone, in a breakout room or not
            )
            service.ready(self.lesson, record)
        else:
            await self._post_system(
                "recording_failed", {"recording_id": record.id, "title": record.title}, room="*"
            )

    # ------------------------------------------------------------------ rooms

    def _router(self, room: str | None) -> Router:
        """The router of the main room (None) or of a breakout room, made on first use."""
        if room is None:
            return self.router
        router = self.room_routers.get(room)
        if router is None:
            assert self.media is not None, "breakout rooms need the media engine"
            router = self.media.create_router({"lesson_id": self.id, "room": room})
            self.room_routers[room] = router
        return router

    def _in_room(self, room: str | None) -> list[Participant]:
        return [p for p in self.participants.values() if p.room == room]

    def _subscribe_in_room(self, participant: Participant) -> None:
        """Subscribe `participant` to everyone else in their room."""
        router = self._router(participant.room)
        assert participant.subscriber is not None
        for producer in router.producers:
            if producer.app_data.get("participant_id") != participant.id:
                router.consume(participant.subscriber, producer)

    def _move(self, participant: Participant, room: str | None) -> None:
        """Move a person's media to another room: renegotiation, no new connections."""
        if participant.room == room:
            return
        old, new = self._router(participant.room), self._router(room)
        for transport in (participant.publisher, participant.subscriber):
            if transport is not None:
                old.transfer(transport, new)
        participant.room = room
        self._subscribe_in_room(participant)
        for other in self._in_room(room):
            if other is not participant and other.subscriber is not None:
                for producer in participant.producers.values():
                    new.consume(other.subscriber, producer)
        self._sync_recording()

    async def _room_history(self, room: str | None) -> list[ChatMessage]:
        visible = {room or "", "*"}
        return [m for m in await self.store.chat_history(self.id) if m.room in visible]

    async def _post_chat(self, message: ChatMessage) -> None:
        """Deliver a stored chat message to its room (or everyone, for "*")."""
        if message.room == "*":
            targets = list(self.participants.values())
        else:
            targets = self._in_room(message.room or None)
        payload = {"type": "chat_message", "message": message.to_json()}
        await asyncio.gather(*(_safe_send(p, payload) for p in targets))

    async def _close_room_routers(self) -> None:
        if self._closing is not None and self._closing is not asyncio.current_task():
            self._closing.cancel()
        self._closing = None
        routers, self.room_routers = list(self.room_routers.values()), {}
        for router in routers:
            if self.media is not None:
                await self.media.close_router(router)
            else:
                await router.close()

    # ------------------------------------------------------------------ breakout

    async def _breakout(self) -> BreakoutState:
        return await self.store.get_breakout(self.id) or BreakoutState()

    async def _send_breakout(self, participant: Participant, state: BreakoutState) -> None:
        await _safe_send(
            participant, {"type": "breakout", "state": state.to_json(), "room": participant.room}
        )

    async def _save_breakout(self, state: BreakoutState) -> None:
        await self.store.set_breakout(self.id, state)
        await asyncio.gather(*(self._send_breakout(p, state) for p in self.participants.values()))

    def _user_of(self, participant_id: str) -> Participant:
        return self._target(participant_id)

    async def _apply_rooms(self, state: BreakoutState) -> None:
        """Put everybody present where `state` says they belong."""
        for participant in list(self.participants.values()):
            self._move(participant, state.room_of(participant.user_id))

    async def breakout_configure(
        self, host: Participant, count: int, names: list[str] | None
    ) -> None:
        self._require_host(host)
        wanted: list[str | None] = [None] * count
        for index, name in enumerate((names or [])[:count]):
            wanted[index] = name
        async with self._lock:
            current = await self._breakout()
            state = _rules(lambda: current.configure(wanted))
            await self._save_breakout(state)

    async def breakout_assign(self, host: Participant, assignments: dict[str, str | None]) -> None:
        self._require_host(host)
        async with self._lock:
            changes = {self._user_of(pid).user_id: room for pid, room in assignments.items()}
            current = await self._breakout()
            state = _rules(lambda: current.assign(changes))
            await self._apply_rooms(state)
            await self._save_breakout(state)

    async def breakout_assign_random(self, host: Participant, include_hosts: bool) -> None:
        self._require_host(host)
        async with self._lock:
            current = await self._breakout()
            people = [p.user_id for p in self.participants.values() if include_hosts or not p.host]
            if current.opened:  # only late joiners; the others stay where they are
                people = [u for u in people if u not in current.assignments]
            state = _rules(lambda: current.assign_random(people))
            await self._apply_rooms(state)
            await self._save_breakout(state)

    async def breakout_open(
        self, host: Participant, minutes: float | None, allow_return: bool
    ) -> None:
        self._require_host(host)
        async with self._lock:
            current = await self._breakout()
            state = _rules(lambda: current.open(_now(), minutes, allow_return))
            await self._apply_rooms(state)
            await self._save_breakout(state)
            await self._post_system(
                "breakout_opened", {"count": len(state.rooms), "minutes": minutes}, room="*"
            )

    async def breakout_move(self, host: Participant, participant_id: str, room: str | None) -> None:
        self._require_host(host)
        async with self._lock:
            target = self._target(participant_id)
            current = await self._breakout()
            state = _rules(lambda: current.assign({target.user_id: room}))
            await self._apply_rooms(state)
            await self._save_breakout(state)

    async def breakout_visit(self, host: Participant, room: str | None) -> None:
        self._require_host(host)
        async with self._lock:
            current = await self._breakout()
            if not current.opened:
                raise CallError("breakout_closed", "the rooms are not open")
            state = _rules(lambda: current.assign({host.user_id: room}))
            if room is not None:
                state = state.clear_help(room)
            await self._apply_rooms(state)
            await self._save_breakout(state)

    async def breakout_broadcast(self, host: Participant, text: str) -> None:
        self._require_host(host)
        try:
            text = prepare_message(text, self.chat.limits)
        except ChatError as exc:
            raise CallError(f"chat_{exc.code}", exc.message) from None
        message = await self.store.append_chat(
            self.id,
            ChatMessage(
                id="",
                kind="text",
                text=text,
                at=_now(),
                author_id=host.id,
                author_user_id=host.user_id,
                author_name=host.name,
                author_role=host.role,
                room="*",
            ),
        )
        await self._post_chat(message)

    async def breakout_help(self, participant: Participant) -> None:
        self.require_admitted(participant)
        if participant.room is None:
            raise CallError("breakout_closed", "you are not in a breakout room")
        async with self._lock:
            room = participant.room
            current = await self._breakout()
            await self._save_breakout(_rules(lambda: current.ask_help(room)))

    async def breakout_return(self, participant: Participant) -> None:
        self.require_admitted(participant)
        async with self._lock:
            current = await self._breakout()
            if not current.opened or participant.room is None:
                raise CallError("breakout_closed", "you are in the main room already")
            if not current.allow_return and not participant.host:
                raise CallError("not_permitted", "the host has not allowed returning")
            state = current.assign({participant.user_id: None})
            await self._apply_rooms(state)
            await self._save_breakout(state)

    async def breakout_close(self, host: Participant, countdown: float) -> None:
        self._require_host(host)
        async with self._lock:
            current = await self._breakout()
            state = _rules(lambda: current.start_closing(_now(), countdown))
            await self._save_breakout(state)
        if self._closing is not None:
            self._closing.cancel()
        self._closing = asyncio.ensure_future(self._close_rooms_after(countdown))

    async def _close_rooms_after(self, countdown: float) -> None:
        await asyncio.sleep(countdown)
        async with self._lock:
            state = (await self._breakout()).close()
            # A host's place in a room was a visit: it does not outlive the rooms.
            visits = {p.user_id: None for p in self.participants.values() if p.host}
            state = state.assign({u: r for u, r in visits.items() if u in state.assignments})
            await self._apply_rooms(state)
            await self._save_breakout(state)
            await self._post_system("breakout_closed", {}, room="*")
        self._closing = None
        await self._close_room_routers()

    # ------------------------------------------------------------------ leaving

    async def leave(self, participant: Participant) -> None:
        if self.waiting.pop(participant.id, None) is not None:
            await self.store.remove_waiting(self.id, participant.id)
            if not self.ended:
                await self._announce_waiting()
            return
        if self.participants.pop(participant.id, None) is None:
            return
        await self.store.remove_participant(self.id, participant.id)
        self._rate.forget(participant.id)
        now = _now()
        await self.store.record_leave(self.id, participant.user_id, now)
        self._tell_presence("left", participant, now)
        self._sync_recording()
        router = self._router(participant.room)
        if participant.publisher is not None:
            await router.close_transport(participant.publisher)
        if participant.subscriber is not None:
            await router.close_transport(participant.subscriber)
        if not self.ended:  # after call_ended, nobody needs to hear who left
            queue = await self.store.hands(self.id)
            if participant.id in queue:
                await self._announce_hands(await self.store.lower_hand(self.id, participant.id))
            await self.broadcast({"type": "participant_left", "participant_id": participant.id})

    async def end(self, reason: str = "ended") -> None:
        if self.ended:
            return
        self.ended = True
        everyone = [*self.participants.values(), *self.waiting.values()]
        await asyncio.gather(
            *(_safe_send(p, {"type": "call_ended", "reason": reason}) for p in everyone)
        )
        for participant in everyone:
            await self.leave(participant)
            await participant.disconnect()
        await self.finish_recordings()
        await self._close_room_routers()

    async def finish_recordings(self) -> None:
        """Stop a running recording and wait until every stopped one is finished."""
        recorder, self._recorder = self._recorder, None
        self._stop_disk_watch()
        if recorder is not None:
            await self._stop_recorder(recorder)
        while self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)


def _rules(change: Callable[[], BreakoutState]) -> BreakoutState:
    """Apply a breakout rule, turning its refusal into a CallError."""
    try:
        return change()
    except BreakoutError as exc:
        raise CallError(exc.code, exc.message) from None


async def _safe_send(participant: Participant, message: dict[str, Any]) -> None:
    try:
        await participant.send(message)
    except Exception:  # a gone client must not break the call for others
        logger.debug("send to %s failed", participant.id, exc_info=True)


class CallRegistry:
    """Calls by lesson id, each with its own router in the media engine."""

    def __init__(
        self,
        media: MediaEngine,
        store: Store,
        chat: ChatPolicy | None = None,
        recordings: RecordingService | None = None,
    ) -> None:
        self.media = media
        self.store = store
        self.chat = chat or ChatPolicy()
        self.recordings = recordings
        self.presence: list[PresenceObserver] = []
        self.calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get_or_create(self, lesson: Lesson) -> Call:
        call = self.calls.get(lesson.id)
        if call is None or call.ended:
            router = self.media.create_router({"lesson_id": lesson.id})
            call = self.calls[lesson.id] = Call(
                lesson, router, self.store, self.chat, self.presence, self.media, self.recordings
            )
        return call

    def get(self, lesson_id: str) -> Call | None:
        return self.calls.get(lesson_id)

    async def end(self, lesson_id: str, reason: str = "ended") -> None:
        call = self.calls.pop(lesson_id, None)
        if call is None:
            return
        await call.end(reason)
        await self.media.close_router(call.router)

    def end_for_lesson(self, lesson: Lesson, reason: str = "ended") -> None:
        """LessonRegistry callback (synchronous): end the lesson's call in the background."""
        self.spawn(self.end(lesson.id, reason))

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def remove_if_empty(self, call: Call) -> None:
        if not call.participants and not call.waiting and self.calls.get(call.lesson.id) is call:
            del self.calls[call.lesson.id]
            # Nobody is left to record: the recording ends (and is posted) now.
            await call.finish_recordings()
            await call._close_room_routers()
            await self.media.close_router(call.router)

    async def close_all(self) -> None:
        for lesson_id in list(self.calls):
            await self.end(lesson_id, "server_shutdown")
        for task in list(self._tasks):
            task.cancel()
