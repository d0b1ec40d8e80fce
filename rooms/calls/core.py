"""The call's core: who is in it, with what rights, and what they publish and receive.

`CallCore` is the only owner of the call's lock and of its people: `participants`
(admitted, on this node) and `waiting` change only here. It joins people, applies
their media, answers what they may do, moves media between rooms and lets people go.
The concerns (moderation, chat, ...) receive the core and use it; the core never
calls them: errors, participant <- core <- concerns <- call."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from breakout.model import MAX_ROOMS, BreakoutState
from rooms.calls.errors import CallEnded, CallError
from rooms.calls.offer_tracks import describe_tracks
from rooms.calls.participant import Disconnect, Participant, PresenceObserver, Send, safe_send
from rooms.calls.privacy import pinned, shown
from rooms.chat import ChatLimits, ProfanityFilter
from rooms.chat import system_message as chat_system_message
from rooms.model import CallSettings, ChatMessage, ParticipantRecord, Permissions
from rooms.recordings import CallRecorder
from rooms.store import DEFAULT_RETENTION_SECONDS, Store
from rooms.vocabulary import Lesson, Role
from sfu.consumer import Consumer
from sfu.engine import MediaEngine
from sfu.producer import Producer
from sfu.router import Router

logger = logging.getLogger(__name__)

SOURCES_BY_KIND = {"audio": ("microphone",), "video": ("camera", "screen")}
# Which media_state flag and which permission govern each source.
SOURCE_FLAG = {"microphone": "audio", "camera": "video", "screen": "screen"}
FLAG_PERMISSION = {"audio": "unmute", "video": "video", "screen": "screen"}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ChatPolicy:
    limits: ChatLimits = field(default_factory=ChatLimits)
    profanity: ProfanityFilter | None = None
    # How long after its expiry a join token still reads the chat (and watches recordings).
    history_seconds: int = DEFAULT_RETENTION_SECONDS


class CallCore:
    def __init__(
        self,
        lesson: Lesson,
        router: Router,
        store: Store,
        chat: ChatPolicy | None = None,
        presence: list[PresenceObserver] | None = None,
        media: MediaEngine | None = None,
    ) -> None:
        self.lesson = lesson
        self.router = router  # the main room
        self.media = media
        self.room_routers: dict[str, Router] = {}  # breakout rooms on this node
        self.store = store
        self.chat = chat or ChatPolicy()
        self.presence = presence if presence is not None else []
        self.participants: dict[str, Participant] = {}  # admitted, on this node
        self.waiting: dict[str, Participant] = {}  # in the waiting room, on this node
        self.ended = False
        self.privacy_mode = False  # the setting's copy (rooms/calls/privacy.py), read per consumer
        self._recorder: CallRecorder | None = None  # taps the main room while it records
        # Serialises state changes of this call (joins, admissions, moderation).
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.lesson.id

    def locked(self) -> asyncio.Lock:
        """The call's one lock, for the concerns' changes that must not interleave."""
        return self._lock

    def describe(self) -> dict[str, Any]:
        return self.lesson.public()

    # ------------------------------------------------------------------ messaging

    async def broadcast(self, message: dict[str, Any], exclude: Participant | None = None) -> None:
        targets = [p for p in self.participants.values() if p is not exclude]
        await asyncio.gather(*(safe_send(p, message) for p in targets))

    async def to_hosts(self, message: dict[str, Any]) -> None:
        hosts = [p for p in self.participants.values() if p.host]
        await asyncio.gather(*(safe_send(p, message) for p in hosts))

    async def announce_waiting(self) -> None:
        waiting = [r.public() for r in await self.store.waiting(self.id)]
        await self.to_hosts({"type": "waiting_list", "waiting": waiting})

    async def announce_hands(self, queue: list[str]) -> None:
        await self.broadcast({"type": "hands", "queue": queue})

    async def announce_update(self, participant: Participant) -> None:
        await self.store.put_participant(self.id, participant.record)
        await self.broadcast({"type": "participant_updated", "participant": participant.to_json()})

    async def post_system(self, event: str, data: dict[str, Any], room: str = "") -> None:
        message = chat_system_message(event, data, now())
        message = await self.store.append_chat(self.id, replace(message, room=room))
        await self.post_chat(message)

    async def post_chat(self, message: ChatMessage) -> None:
        """Deliver a stored chat message to its room (or everyone, for "*")."""
        if message.room == "*":
            targets = list(self.participants.values())
        else:
            targets = self.in_room(message.room or None)
        payload = {"type": "chat_message", "message": message.to_json()}
        await asyncio.gather(*(safe_send(p, payload) for p in targets))

    async def room_history(self, room: str | None) -> list[ChatMessage]:
        visible = {room or "", "*"}
        return [m for m in await self.store.chat_history(self.id) if m.room in visible]

    async def send_breakout(self, participant: Participant, state: BreakoutState) -> None:
        await safe_send(
            participant, {"type": "breakout", "state": state.to_json(), "room": participant.room}
        )

    # ------------------------------------------------------------------ rights

    async def settings(self) -> CallSettings:
        return await self.store.get_settings(self.id)

    async def permissions_of(self, participant: Participant) -> Permissions:
        return participant.permissions_in(await self.settings())

    def require_host(self, participant: Participant) -> None:
        if not participant.host:
            logger.warning(
                "%s (%s) tried a host action in %s",
                participant.user_id,
                participant.role.value,
                self.id,
            )
            raise CallError("not_host", "only the teacher or a co-host may do this")

    def require_admitted(self, participant: Participant) -> None:
        if not participant.admitted:
            raise CallError("not_admitted", "wait until a host lets you in")

    def target(self, participant_id: str) -> Participant:
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
            await safe_send(old, {"type": "call_ended", "reason": "replaced"})
            await self.leave(old)
            await old.disconnect()
        host = role is Role.TEACHER
        record = ParticipantRecord("p_" + secrets.token_hex(5), user_id, name, role, host)
        participant = Participant(
            record=record,
            send=send,
            disconnect=disconnect,
            jti=jti,
            token_expires_at=token_expires_at,
            joined_extra=joined_extra or {},
        )
        returning = await self.restore_after_restart(participant)
        settings = await self.settings()
        if settings.waiting_room and not participant.host and not returning:
            await self._wait(participant)
        else:
            await self.let_in(participant)
        return participant

    async def restore_after_restart(self, participant: Participant) -> bool:
        """True for a person admitted before this node restarted (Call: restart.py)."""
        return False

    async def _wait(self, participant: Participant) -> None:
        self.waiting[participant.id] = participant
        await self.store.put_waiting(self.id, participant.record)
        await participant.send(
            {
                "type": "waiting",
                "call": self.describe(),
                "self": participant.to_json(),
                **participant.connection_details(),
            }
        )
        await self.announce_waiting()
        await self.post_system(
            "waiting", {"name": participant.name, "participant_id": participant.id}
        )

    def waiting_ids(self, participant_id: str | None) -> list[str]:
        """Who a host means: one waiting person (refused if not waiting), or all (None)."""
        if participant_id is not None and participant_id not in self.waiting:
            raise CallError("unknown_participant", "nobody with that id is waiting")
        return [participant_id] if participant_id is not None else list(self.waiting)

    async def take_waiting(self, participant_id: str) -> Participant:
        """Out of the waiting room (to be admitted or denied)."""
        participant = self.waiting.pop(participant_id)
        await self.store.remove_waiting(self.id, participant_id)
        return participant

    async def let_in(self, participant: Participant) -> None:
        """Let a person in: media rights, their room, the joined message, everyone told."""
        participant.admitted = True
        # Start with what the person may switch on; their media_state follows.
        settings = await self.settings()
        self.privacy_mode = settings.privacy_mode
        start = settings.start_media(participant.role, participant.host)
        record = participant.record  # off stays off (one muted before a restart)
        kept = {flag: on and getattr(record, flag) for flag, on in start.items()}
        participant.record = record.with_media(kept)
        self.participants[participant.id] = participant
        # Back to their breakout room, if rooms are open and they have one.
        breakout = await self.store.get_breakout(self.id)
        participant.room = breakout.room_of(participant.user_id) if breakout else None
        router = self.router_of(participant.room)
        participant.subscriber = router.create_subscriber_transport(
            lambda sdp, tracks: self.send_subscribe_offer(participant, sdp, tracks)
        )
        await self.store.put_participant(self.id, participant.record)
        at = now()
        await self.store.record_join(
            self.id, participant.user_id, participant.name, participant.role.value, at
        )
        self._tell_presence("joined", participant, at)
        await participant.send(await self.joined_message(participant))
        if breakout is not None:
            await self.send_breakout(participant, breakout)
        await self.broadcast(
            {"type": "participant_joined", "participant": participant.to_json()},
            exclude=participant,
        )
        self.subscribe_in_room(participant)
        self.sync_recording()

    async def joined_message(self, p: Participant, chat: list[ChatMessage] | None = None) -> dict:
        """`joined`: the call as it is now; `chat` the history (default: the room's)."""
        participant, settings = p, await self.settings()
        chat = await self.room_history(participant.room) if chat is None else chat
        joined: dict[str, Any] = {
            "type": "joined",
            "self": participant.to_json(),
            "call": self.describe(),
            "participants": [
                p.to_json() for p in self.participants.values() if p is not participant
            ],
            "hands": await self.store.hands(self.id),
            "chat": [m.to_json() for m in chat],
            "settings": settings.to_json(),
            "permissions": participant.permissions_in(settings).to_json(),
            "recording": self.recording_state(),
            "limits": {"breakout_rooms": MAX_ROOMS},  # the page's bounds, not a copy
            **participant.connection_details(),
        }
        if participant.host:
            joined["waiting"] = [r.public() for r in await self.store.waiting(self.id)]
        return joined

    async def send_subscribe_offer(
        self, participant: Participant, sdp: str, tracks: dict[str, Consumer]
    ) -> None:
        if self.ended or self.participants.get(participant.id) is not participant:
            return  # the call ended, or they left, while the offer was being made
        slots = participant.subscriber.audio_slots if participant.subscriber else []
        described = describe_tracks(tracks, slots)
        participant.pending_offer = {"type": "subscribe_offer", "sdp": sdp, "tracks": described}
        await participant.send(participant.pending_offer)

    def _tell_presence(self, event: str, participant: Participant, at: datetime) -> None:
        for observer in self.presence:
            try:
                observer(self.lesson, event, participant, at)
            except Exception:
                logger.exception("presence observer failed")

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
            participant.publisher = self.router_of(participant.room).create_publisher_transport()
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
        await self.apply_media(participant)
        router = self.router_of(participant.room)
        for producer in producers:
            for other in self.in_room(participant.room):
                if other is not participant:
                    self.forward(router, other, producer)
        self.sync_recording()
        return answer

    async def apply_media(self, participant: Participant) -> None:
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
        participant.pending_offer = None  # answered (a bad answer ends the round too)
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
        participant.record = participant.record.with_media(wanted)
        await self.apply_media(participant)
        await self.announce_update(participant)

    # ------------------------------------------------------------------ the recorder's tap

    @property
    def recorder(self) -> CallRecorder | None:
        """The recording running now, if any (rooms/calls/recording_control.py runs it)."""
        return self._recorder

    def attach_recorder(self, recorder: CallRecorder) -> None:
        self._recorder = recorder
        self.sync_recording()

    def detach_recorder(self) -> CallRecorder | None:
        recorder, self._recorder = self._recorder, None
        return recorder

    def recording_state(self) -> dict[str, Any] | None:
        return self._recorder.state() if self._recorder is not None else None

    def sync_recording(self) -> None:
        """The recorder records exactly the main room: tell it who is there now."""
        if self._recorder is not None:
            self._recorder.sync(self.in_room(None))

    # ------------------------------------------------------------------ rooms

    def router_of(self, room: str | None) -> Router:
        """The router of the main room (None) or of a breakout room, made on first use."""
        if room is None:
            return self.router
        router = self.room_routers.get(room)
        if router is None:
            assert self.media is not None, "breakout rooms need the media engine"
            router = self.media.create_router({"lesson_id": self.id, "room": room})
            self.room_routers[room] = router
        return router

    def in_room(self, room: str | None) -> list[Participant]:
        return [p for p in self.participants.values() if p.room == room]

    def subscribe_in_room(self, participant: Participant) -> None:
        """Subscribe `participant` to everyone else in their room."""
        router = self.router_of(participant.room)
        for producer in router.producers:
            if producer.app_data.get("participant_id") != participant.id:
                self.forward(router, participant, producer)

    def forward(self, router: Router, viewer: Participant, producer: Producer) -> None:
        """Send `producer` to `viewer` unless privacy mode keeps it from them (every
        subscription of the call is made here; sending it again is a no-op)."""
        owner = self.participants.get(producer.app_data.get("participant_id", ""))
        sub = viewer.receiving
        if sub is not None and shown(self.privacy_mode, viewer, owner, producer):
            router.consume(sub, producer, pinned(owner, producer))

    def move(self, participant: Participant, room: str | None) -> None:
        """Move a person's media to another room: renegotiation, no new connections."""
        if participant.room == room:
            return
        old, new = self.router_of(participant.room), self.router_of(room)
        for transport in (participant.publisher, participant.subscriber):
            if transport is not None:
                old.transfer(transport, new)
        participant.room = room
        self.subscribe_in_room(participant)
        for other in self.in_room(room):
            if other is not participant:
                for producer in participant.producers.values():
                    self.forward(new, other, producer)
        self.sync_recording()

    async def close_room_routers(self) -> None:
        routers, self.room_routers = list(self.room_routers.values()), {}
        for router in routers:
            if self.media is not None:
                await self.media.close_router(router)
            else:
                await router.close()

    # ------------------------------------------------------------------ leaving

    async def leave(self, participant: Participant, at: datetime | None = None) -> None:
        # `at`: when they went (a dropped connection not resumed went when it dropped).
        participant.cancel_hold()
        if self.waiting.pop(participant.id, None) is not None:
            await self.store.remove_waiting(self.id, participant.id)
            if not self.ended:
                await self.announce_waiting()
            return
        if self.participants.pop(participant.id, None) is None:
            return
        await self.store.remove_participant(self.id, participant.id)
        at = at or now()
        await self.store.record_leave(self.id, participant.user_id, at)
        self._tell_presence("left", participant, at)
        self.sync_recording()
        router = self.router_of(participant.room)
        for transport in (participant.publisher, participant.subscriber):
            if transport is not None:
                await router.close_transport(transport)
        if not self.ended:  # after call_ended, nobody needs to hear who left
            queue = await self.store.hands(self.id)
            if participant.id in queue:
                await self.announce_hands(await self.store.lower_hand(self.id, participant.id))
            await self.broadcast({"type": "participant_left", "participant_id": participant.id})

    async def let_everyone_go(self, reason: str) -> None:
        """The call has ended: everyone, admitted or waiting, is told, let go and disconnected."""
        self.ended = True
        everyone = [*self.participants.values(), *self.waiting.values()]
        await asyncio.gather(
            *(safe_send(p, {"type": "call_ended", "reason": reason}) for p in everyone)
        )
        for participant in everyone:
            await self.leave(participant)
            await participant.disconnect()
