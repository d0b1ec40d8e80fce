"""Calls: who is in which call, with what rights, and what they publish and receive.

A call belongs to one lesson and owns one SFU router. Everybody in it
receives everybody else's media. The transport to each person (WebSocket)
is abstracted as two callables, so this module knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rooms.lessons import Lesson, Role
from sfu.consumer import Consumer
from sfu.engine import MediaEngine
from sfu.producer import Producer
from sfu.router import Router
from sfu.transport import PublisherTransport, SubscriberTransport

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Disconnect = Callable[[], Awaitable[None]]

SOURCES_BY_KIND = {"audio": ("microphone",), "video": ("camera", "screen")}


@dataclass
class Participant:
    id: str
    user_id: str
    name: str
    role: Role
    host: bool
    send: Send
    disconnect: Disconnect
    audio: bool = True
    video: bool = True
    publisher: PublisherTransport | None = None
    subscriber: SubscriberTransport | None = None
    producers: list[Producer] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "name": self.name,
            "role": self.role.value,
            "host": self.host,
            "audio": self.audio,
            "video": self.video,
        }


class CallEnded(Exception):
    """The call has ended; nobody can join it any more."""


class Call:
    def __init__(self, lesson: Lesson, router: Router) -> None:
        self.lesson = lesson
        self.router = router
        self.participants: dict[str, Participant] = {}
        self.ended = False

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

    async def broadcast(self, message: dict[str, Any], exclude: Participant | None = None) -> None:
        targets = [p for p in self.participants.values() if p is not exclude]
        await asyncio.gather(*(_safe_send(p, message) for p in targets))

    async def join(
        self,
        *,
        user_id: str,
        name: str,
        role: Role,
        send: Send,
        disconnect: Disconnect,
        joined_extra: dict[str, Any] | None = None,
    ) -> Participant:
        if self.ended:
            raise CallEnded(self.lesson.id)
        # One connection per person: a second tab or a reconnect replaces the first.
        for old in [p for p in self.participants.values() if p.user_id == user_id]:
            await _safe_send(old, {"type": "call_ended", "reason": "replaced"})
            await self.leave(old)
            await old.disconnect()
        participant = Participant(
            id="p_" + secrets.token_hex(5),
            user_id=user_id,
            name=name,
            role=role,
            host=role is Role.TEACHER,
            send=send,
            disconnect=disconnect,
        )
        participant.subscriber = self.router.create_subscriber_transport(
            lambda sdp, tracks: self._send_subscribe_offer(participant, sdp, tracks)
        )
        self.participants[participant.id] = participant
        await send(
            {
                "type": "joined",
                "self": participant.to_json(),
                "call": self.describe(),
                "participants": [
                    p.to_json() for p in self.participants.values() if p is not participant
                ],
                **(joined_extra or {}),
            }
        )
        await self.broadcast(
            {"type": "participant_joined", "participant": participant.to_json()},
            exclude=participant,
        )
        for producer in self.router.producers:
            if producer.app_data.get("participant_id") != participant.id:
                participant.subscriber.consume(producer)
        return participant

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

    async def publish(self, participant: Participant, sdp: str, sources: dict[str, str]) -> str:
        """Apply a publisher offer; subscribe everybody else to new tracks; return the answer."""
        if participant.publisher is None:
            participant.publisher = self.router.create_publisher_transport()
        app_data = {
            mid: {"participant_id": participant.id, "source": source}
            for mid, source in sources.items()
        }
        answer, producers = await participant.publisher.handle_offer(sdp, app_data)
        for producer in producers:
            producer.app_data.setdefault("participant_id", participant.id)
            if "source" not in producer.app_data:
                producer.app_data["source"] = SOURCES_BY_KIND[producer.kind][0]
            participant.producers.append(producer)
            for other in self.participants.values():
                if other is not participant and other.subscriber is not None:
                    other.subscriber.consume(producer)
        return answer

    async def subscribe_answer(self, participant: Participant, sdp: str) -> None:
        assert participant.subscriber is not None
        await participant.subscriber.handle_answer(sdp)

    async def set_media_state(self, participant: Participant, audio: bool, video: bool) -> None:
        participant.audio = audio
        participant.video = video
        await self.broadcast({"type": "participant_updated", "participant": participant.to_json()})

    async def leave(self, participant: Participant) -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        if participant.publisher is not None:
            await self.router.close_transport(participant.publisher)
        if participant.subscriber is not None:
            await self.router.close_transport(participant.subscriber)
        if not self.ended:  # after call_ended, nobody needs to hear who left
            await self.broadcast({"type": "participant_left", "participant_id": participant.id})

    async def end(self, reason: str = "ended") -> None:
        if self.ended:
            return
        self.ended = True
        participants = list(self.participants.values())
        await asyncio.gather(
            *(_safe_send(p, {"type": "call_ended", "reason": reason}) for p in participants)
        )
        for participant in participants:
            await self.leave(participant)
            await participant.disconnect()


async def _safe_send(participant: Participant, message: dict[str, Any]) -> None:
    try:
        await participant.send(message)
    except Exception:  # a gone client must not break the call for others
        logger.debug("send to %s failed", participant.id, exc_info=True)


class CallRegistry:
    """Calls by lesson id, each with its own router in the media engine."""

    def __init__(self, media: MediaEngine) -> None:
        self.media = media
        self.calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get_or_create(self, lesson: Lesson) -> Call:
        call = self.calls.get(lesson.id)
        if call is None or call.ended:
            router = self.media.create_router({"lesson_id": lesson.id})
            call = self.calls[lesson.id] = Call(lesson, router)
        return call

    def get(self, lesson_id: str) -> Call | None:
        return self.calls.get(lesson_id)

    async def end(self, lesson_id: str, reason: str = "ended") -> None:
        call = self.calls.pop(lesson_id, None)
        if call is None:
            return
        await call.end(reason)
        await self.media.close_router(call.router)

    def end_for_lesson(self, lesson: Lesson) -> None:
        """LessonRegistry callback (synchronous): end the lesson's call in the background."""
        task = asyncio.ensure_future(self.end(lesson.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def remove_if_empty(self, call: Call) -> None:
        if not call.participants and self.calls.get(call.lesson.id) is call:
            del self.calls[call.lesson.id]
            await self.media.close_router(call.router)

    async def close_all(self) -> None:
        for lesson_id in list(self.calls):
            await self.end(lesson_id, "server_shutdown")
        for task in list(self._tasks):
            task.cancel()
