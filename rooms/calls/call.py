"""`Call`: the call as the signalling layer sees it - the core plus its concerns.

Why composition: each concern (moderation, chat, recording, breakout rooms) is a
small class that receives the core and is readable alone; none of them can reach
another's state, and only the core holds the lock and changes who is in the call.
`Call` is the core (it extends `CallCore`, so joining, media and leaving are its
own methods) and builds one of each concern; every other request of the protocol
is one line here, forwarded to the concern that handles it, so signalling/ws.py
finds all of them on the call. Mixins would have put every concern's state on one
object again, which is what this package was split to avoid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from breakout.model import BreakoutState
from rooms.calls.audio_slots import AudioSlots
from rooms.calls.breakout_control import BreakoutControl
from rooms.calls.chat_control import ChatControl
from rooms.calls.core import CallCore, ChatPolicy
from rooms.calls.dynacast import Dynacast
from rooms.calls.ice_restart import IceRestarts
from rooms.calls.moderation import Moderation
from rooms.calls.participant import Disconnect, Participant, PresenceObserver, Send
from rooms.calls.polls import PollControl
from rooms.calls.recording_control import RecordingControl
from rooms.calls.restart import Restarts
from rooms.calls.resume import OnExpired, Resumption
from rooms.calls.speakers import ActiveSpeakers
from rooms.calls.spotlight import Spotlights
from rooms.calls.track_views import TrackViews
from rooms.calls.video_quality import set_video_quality
from rooms.calls.weak_links import WeakLinks
from rooms.model import CallSettings, ChatMessage
from rooms.recordings import RecordingService
from rooms.store import Store
from rooms.vocabulary import Lesson, Role
from sfu.engine import MediaEngine
from sfu.router import Router


class Call(CallCore):
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
        super().__init__(lesson, router, store, chat, presence, media)
        self.recordings = recordings
        self.moderation = Moderation(self)
        self.chat_control = ChatControl(self)
        self.recording = RecordingControl(self, recordings)
        self.polls = PollControl(self)
        # A breakout room's open polls close with it, their results in its chat.
        self.breakout = BreakoutControl(self, before_close=self.polls.close_in_rooms)
        self.links = WeakLinks(self)
        self.resumption = Resumption(self)
        self.speakers = ActiveSpeakers(self)
        self.audio_slots = AudioSlots(self)
        self.ice_restarts = IceRestarts(self)
        self.spotlights = Spotlights(self)
        self.restarts = Restarts(self, self.spotlights)
        self.views = TrackViews(self, self.spotlights.of_room, self.speakers.speaking)
        self.dynacast = Dynacast(self)
        self.links.views = self.views

    # ------------------------------------------------------------------ broken media paths

    async def restart_publisher(
        self, participant: Participant, sdp: str, sources: dict[str, str]
    ) -> str:
        return await self.ice_restarts.restart_publisher(participant, sdp, sources)

    async def restart_subscriber(self, participant: Participant, reply: dict[str, Any]) -> None:
        await self.ice_restarts.restart_subscriber(participant, reply)

    # ------------------------------------------------------------------ entering

    async def let_in(self, participant: Participant) -> None:
        """The core's entry, and the links and speakers watched while anybody is here."""
        await super().let_in(participant)
        if await self.polls.open_in(participant.room):
            await self.polls.send_state(participant)
        self.links.watch()
        self.speakers.watch()
        self.audio_slots.watch()
        self.dynacast.watch()
        if participant.host:
            await self.links.tell_host(participant)
        await self.restarts.after_let_in(participant)

    async def restore_after_restart(self, participant: Participant) -> bool:
        returning = await self.restarts.restore(participant)
        if returning:
            await self.breakout.resume_countdown()
        return returning

    async def suspend_for_restart(self, ttl_seconds: int) -> int:
        """The node drains to restart: keep what people had for their return (restart.py)."""
        return await self.restarts.suspend(ttl_seconds)

    async def joined_message(self, p: Participant, chat: list[ChatMessage] | None = None) -> dict:
        """The core's `joined` (also the body of `resumed`), with the room's spotlight."""
        joined = await super().joined_message(p, chat)
        joined["spotlight"] = self.spotlights.told(p)
        return joined

    async def leave(self, participant: Participant, at: datetime | None = None) -> None:
        """The core's leave; a spotlight on the leaver goes out with them."""
        present = participant.id in self.participants
        await super().leave(participant, at)
        if present:
            await self.spotlights.after_leave(participant)

    # ------------------------------------------------------------------ dropped connections

    def find_session(self, session: str) -> Participant | None:
        return self.resumption.find(session)

    async def hold(
        self, participant: Participant, owner: Disconnect, grace: float, on_expired: OnExpired
    ) -> bool:
        return await self.resumption.hold(participant, owner, grace, on_expired)

    async def resume(
        self,
        participant: Participant,
        send: Send,
        disconnect: Disconnect,
        last_chat_seq: int,
        details: dict[str, Any],
    ) -> None:
        await self.resumption.resume(participant, send, disconnect, last_chat_seq, details)
        if participant.admitted and await self.polls.open_in(participant.room):
            await self.polls.send_state(participant)

    async def send_breakout(self, participant: Participant, state: BreakoutState) -> None:
        """The breakout state, and the polls of the room the person is in now (a move
        takes them to another room's polls)."""
        await super().send_breakout(participant, state)
        if await self.polls.open_in(None, any_room=True):
            await self.polls.send_state(participant)
        # A move: the spotlight of the new room; one on a person who left a room goes.
        self.spotlights.follow_people()
        await self.spotlights.tell(participant)

    # ------------------------------------------------------------------ ending

    async def end(self, reason: str = "ended") -> None:
        """Everyone is told and let go; the recording is finished; the breakout rooms close."""
        if self.ended:
            return
        # The watchers first: nothing of theirs may follow `call_ended`.
        await self.links.stop()
        await self.speakers.stop()
        await self.audio_slots.stop()
        await self.dynacast.stop()
        await self.polls.stop()
        await self.let_everyone_go(reason)
        if not self.restarts.suspended:  # else they stay open for after the restart
            await self.polls.close_in_rooms(None)  # their results stay in the chat history
        await self.finish_recordings()
        await self.close_rooms()

    async def finish_recordings(self) -> None:
        """Stop a running recording and wait until every stopped one is finished."""
        await self.recording.finish_all()

    async def close_rooms(self) -> None:
        """Close the breakout rooms' routers (and stop a close countdown)."""
        await self.breakout.close_rooms()

    # ------------------------------------------------------------------ hands, waiting room

    async def set_hand(self, participant: Participant, raised: bool) -> None:
        await self.moderation.set_hand(participant, raised)

    async def lower_hand(self, host: Participant, participant_id: str) -> None:
        await self.moderation.lower_hand(host, participant_id)

    async def lower_all_hands(self, host: Participant) -> None:
        await self.moderation.lower_all_hands(host)

    async def admit(self, host: Participant, participant_id: str | None) -> None:
        await self.moderation.admit(host, participant_id)

    async def deny(self, host: Participant, participant_id: str | None) -> None:
        await self.moderation.deny(host, participant_id)

    # ------------------------------------------------------------------ moderation, settings

    async def nudge(self, host: Participant, participant_id: str) -> None:
        await self.moderation.nudge(host, participant_id)

    async def mute(self, host: Participant, participant_id: str, kind: str) -> None:
        await self.moderation.mute(host, participant_id, kind)

    async def mute_all(self, host: Participant) -> None:
        await self.moderation.mute_all(host)

    async def remove(self, host: Participant, participant_id: str) -> None:
        await self.moderation.remove(host, participant_id)

    async def give_floor(self, host: Participant, participant_id: str, floor: bool) -> None:
        await self.moderation.give_floor(host, participant_id, floor)

    async def set_cohost(self, host: Participant, participant_id: str, cohost: bool) -> None:
        await self.moderation.set_cohost(host, participant_id, cohost)
        target = self.target(participant_id)
        if cohost:
            await self.links.tell_host(target)
        if await self.polls.open_in(target.room):  # a host sees results (and names)
            await self.polls.send_state(target)

    async def spotlight(self, host: Participant, participant_id: str | None, source: str) -> None:
        await self.spotlights.set(host, participant_id, source)

    # ------------------------------------------------------------------ weak links

    async def set_audio_only(self, participant: Participant, enabled: bool) -> None:
        await self.links.set_audio_only(participant, enabled)

    async def set_video_quality(
        self, participant: Participant, participant_id: str, source: str, quality: str
    ) -> None:
        set_video_quality(self, participant, participant_id, source, quality)

    async def set_track_views(self, participant: Participant, views: list[dict[str, Any]]) -> None:
        try:
            self.views.set_views(participant, views)
        finally:  # a view of somebody gone is refused, the others count
            await self.links.refresh(participant)

    async def set_save_data(self, participant: Participant, mode: str) -> None:
        self.views.set_save_data(participant, mode)
        await self.links.refresh(participant, answer=True)

    async def set_permissions(
        self, host: Participant, role: Role, changes: dict[str, bool]
    ) -> None:
        await self.moderation.set_permissions(host, role, changes)

    async def set_call_settings(self, host: Participant, changes: dict[str, bool]) -> None:
        await self.moderation.set_call_settings(host, changes)

    async def change_settings(self, **changes: bool) -> CallSettings:
        """The journal's switch (no host check); a host's goes through set_call_settings."""
        return await self.moderation.change_settings(changes)

    # ------------------------------------------------------------------ chat, recording

    async def chat_send(self, participant: Participant, text: str) -> ChatMessage:
        return await self.chat_control.chat_send(participant, text)

    def default_recording_title(self, at: datetime) -> str:
        return self.recording.default_title(at)

    async def recording_start(
        self, host: Participant, title: str | None, visibility: list[str] | None
    ) -> dict[str, Any]:
        return await self.recording.start(host, title, visibility)

    async def recording_stop(self, host: Participant) -> None:
        await self.recording.stop(host)

    # ------------------------------------------------------------------ polls

    async def poll_create(
        self, host: Participant, question: str, options: list[str], multiple: bool, anonymous: bool
    ) -> None:
        await self.polls.create(host, question, options, multiple, anonymous)

    async def poll_answer(self, participant: Participant, poll_id: str, choices: list[int]) -> None:
        await self.polls.answer(participant, poll_id, choices)

    async def poll_share(self, host: Participant, poll_id: str, shared: bool) -> None:
        await self.polls.share(host, poll_id, shared)

    async def poll_close(self, host: Participant, poll_id: str) -> None:
        await self.polls.close(host, poll_id)

    # ------------------------------------------------------------------ breakout rooms

    async def breakout_configure(
        self, host: Participant, count: int, names: list[str] | None
    ) -> None:
        await self.breakout.configure(host, count, names)

    async def breakout_assign(self, host: Participant, assignments: dict[str, str | None]) -> None:
        await self.breakout.assign(host, assignments)

    async def breakout_assign_random(self, host: Participant, include_hosts: bool) -> None:
        await self.breakout.assign_random(host, include_hosts)

    async def breakout_open(
        self, host: Participant, minutes: float | None, allow_return: bool
    ) -> None:
        await self.breakout.open(host, minutes, allow_return)

    async def breakout_move(self, host: Participant, participant_id: str, room: str | None) -> None:
        await self.breakout.move(host, participant_id, room)

    async def breakout_visit(self, host: Participant, room: str | None) -> None:
        await self.breakout.visit(host, room)

    async def breakout_broadcast(self, host: Participant, text: str) -> None:
        await self.breakout.broadcast(host, text)

    async def breakout_help(self, participant: Participant) -> None:
        await self.breakout.help(participant)

    async def breakout_return(self, participant: Participant) -> None:
        await self.breakout.return_to_main(participant)

    async def breakout_close(self, host: Participant, countdown: float) -> None:
        await self.breakout.close(host, countdown)
