"""The calls of this node, by lesson id, each with its own router in the media engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from rooms.calls.call import Call
from rooms.calls.core import ChatPolicy
from rooms.calls.participant import Participant, PresenceObserver
from rooms.recordings import RecordingService
from rooms.store import Store
from rooms.vocabulary import Lesson
from sfu.engine import MediaEngine


class CallRegistry:
    """Calls by lesson id, each with its own router in the media engine."""

    def __init__(
        self,
        media: MediaEngine,
        store: Store,
        chat: ChatPolicy | None = None,
        recordings: RecordingService | None = None,
        thumbnails_half_rate: bool = True,
        dynacast: bool = True,
    ) -> None:
        self.media = media
        # Thumbnails at half the frame rate (rooms/calls/track_views.py).
        self.thumbnails_half_rate = thumbnails_half_rate
        # Publishers encode only the layers somebody receives (rooms/calls/dynacast.py).
        self.dynacast = dynacast
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
            call.views.thumbnails_half_rate = self.thumbnails_half_rate
            call.dynacast.enabled = self.dynacast
        return call

    def get(self, lesson_id: str) -> Call | None:
        return self.calls.get(lesson_id)

    def find_session(self, session: str) -> tuple[Call, Participant] | None:
        """The call and participant a resume session id was issued to, if still there."""
        for call in self.calls.values():
            participant = call.find_session(session)
            if participant is not None and not call.ended:
                return call, participant
        return None

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
            await call.close_rooms()
            await self.media.close_router(call.router)

    async def close_all(self) -> None:
        for lesson_id in list(self.calls):
            await self.end(lesson_id, "server_shutdown")
        for task in list(self._tasks):
            task.cancel()
