"""What hosts do to people and to the call: hands, the waiting room, muting, removing,
co-hosts, permissions and the call's settings.

`Moderation` receives the call's core and changes the call only through it
(the core owns the lock and who is in the call). Every request from a person
checks that they are a host first; `change_settings` does not, so the journal
(signalling/adhoc.py) and a host in the call take one path when settings change.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from rooms.calls.core import FLAG_PERMISSION, CallCore, now
from rooms.calls.errors import CallError
from rooms.calls.participant import Participant, safe_send
from rooms.calls.privacy import shown
from rooms.model import CONFIGURABLE_ROLES, SETTING_FLAGS, CallSettings
from rooms.store import DEFAULT_RETENTION_SECONDS
from rooms.vocabulary import Role

KIND_TO_FLAG = {"audio": "audio", "video": "video", "screen": "screen"}


class Moderation:
    def __init__(self, call: CallCore) -> None:
        self.call = call

    # ------------------------------------------------------------------ hands

    async def set_hand(self, participant: Participant, raised: bool) -> None:
        call = self.call
        call.require_admitted(participant)
        if raised:
            queue = await call.store.raise_hand(call.id, participant.id)
        else:
            queue = await call.store.lower_hand(call.id, participant.id)
        await call.announce_hands(queue)

    async def lower_hand(self, host: Participant, participant_id: str) -> None:
        call = self.call
        call.require_host(host)
        await call.announce_hands(await call.store.lower_hand(call.id, participant_id))

    async def give_floor(self, host: Participant, participant_id: str, floor: bool) -> None:
        """Let one person speak in one click: their hand lowered and unmuting allowed to
        them whatever their role may; or take it back (their microphone off unless the
        role allows it)."""
        call = self.call
        call.require_host(host)
        target = call.target(participant_id)
        target.floor = floor
        settings = await call.settings()
        if floor:
            await call.announce_hands(await call.store.lower_hand(call.id, target.id))
        elif not target.permissions_in(settings).unmute:
            await self._switch_off(target, "audio", host)
        await self._send_settings(target, settings)
        await call.announce_update(target)

    async def lower_all_hands(self, host: Participant) -> None:
        call = self.call
        call.require_host(host)
        await call.announce_hands(await call.store.lower_all_hands(call.id))

    # ------------------------------------------------------------------ waiting room

    async def admit(self, host: Participant, participant_id: str | None) -> None:
        """Admit one waiting person (or everyone, with None)."""
        self.call.require_host(host)
        await self._admit_waiting(participant_id)

    async def _admit_waiting(self, participant_id: str | None) -> None:
        call = self.call
        async with call.locked():
            for pid in call.waiting_ids(participant_id):
                await call.let_in(await call.take_waiting(pid))
            await call.announce_waiting()

    async def deny(self, host: Participant, participant_id: str | None) -> None:
        call = self.call
        call.require_host(host)
        async with call.locked():
            for pid in call.waiting_ids(participant_id):
                participant = await call.take_waiting(pid)
                await safe_send(participant, {"type": "denied", "by": host.brief()})
                await participant.disconnect()
            await call.announce_waiting()

    # ------------------------------------------------------------------ people

    async def nudge(self, host: Participant, participant_id: str) -> None:
        call = self.call
        call.require_host(host)
        await safe_send(call.target(participant_id), {"type": "nudged", "by": host.brief()})

    async def mute(self, host: Participant, participant_id: str, kind: str) -> None:
        call = self.call
        call.require_host(host)
        target = call.target(participant_id)
        await self._switch_off(target, KIND_TO_FLAG[kind], host)

    async def _switch_off(self, target: Participant, flag: str, by: Participant | None) -> None:
        if not getattr(target.record, flag):
            return
        target.record = target.record.with_media({flag: False})
        await self.call.apply_media(target)
        kind = {"audio": "audio", "video": "video", "screen": "screen"}[flag]
        message: dict[str, Any] = {"type": "muted", "kind": kind}
        if by is not None:
            message["by"] = by.brief()
        await safe_send(target, message)
        await self.call.announce_update(target)

    async def mute_all(self, host: Participant) -> None:
        self.call.require_host(host)
        for target in list(self.call.participants.values()):
            if not target.host:
                await self._switch_off(target, "audio", host)

    async def remove(self, host: Participant, participant_id: str) -> None:
        call = self.call
        call.require_host(host)
        target = call.target(participant_id)
        if target.role is Role.TEACHER:
            raise CallError("not_permitted", "the teacher cannot be removed")
        # Revoke first, so a quick reconnect with the same token already fails.
        # Revoked for as long as the token could still be used, chat history included.
        kept = max(DEFAULT_RETENTION_SECONDS, call.chat.history_seconds)
        until = (target.token_expires_at or now()) + timedelta(seconds=kept)
        await call.store.revoke_token(target.jti, until)
        await safe_send(target, {"type": "removed", "by": host.brief()})
        await call.leave(target)
        await target.disconnect()

    async def set_cohost(self, host: Participant, participant_id: str, cohost: bool) -> None:
        call = self.call
        call.require_host(host)
        target = call.target(participant_id)
        if target.role is Role.TEACHER:
            raise CallError("not_permitted", "the teacher is always the host")
        target.record = replace(target.record, cohost=cohost, host=cohost)
        if call.privacy_mode:  # a host sees pupils' cameras, and is seen by them
            self.apply_privacy()
        await call.announce_update(target)
        await self._send_settings(target, await call.settings())
        if cohost:
            await safe_send(
                target,
                {
                    "type": "waiting_list",
                    "waiting": [r.public() for r in await call.store.waiting(call.id)],
                },
            )
        else:
            await call.apply_media(target)

    # ------------------------------------------------------------------ permissions, settings

    async def set_permissions(
        self, host: Participant, role: Role, changes: dict[str, bool]
    ) -> None:
        call = self.call
        call.require_host(host)
        if role not in CONFIGURABLE_ROLES:
            raise CallError("bad_message", f"permissions of {role.value} cannot be changed")
        settings = await call.settings()
        current = settings.permissions_for(role, host=False)
        updated = replace(current, **changes)
        settings = settings.with_permissions(role, updated)
        await call.store.set_settings(call.id, settings)
        # A right taken away is enforced at once, not on the next toggle (the floor stays).
        for target in list(call.participants.values()):
            if target.role is not role or target.host:
                continue
            for flag, permission in FLAG_PERMISSION.items():
                if not getattr(target.permissions_in(settings), permission):
                    await self._switch_off(target, flag, host)
        await self._broadcast_settings(settings)

    async def set_call_settings(self, host: Participant, changes: dict[str, bool]) -> None:
        self.call.require_host(host)
        await self.change_settings(changes)

    async def change_settings(self, changes: dict[str, bool]) -> CallSettings:
        """Switch the call's settings (SETTING_FLAGS; those left out are unchanged);
        everyone in the call hears.

        Turning the waiting room off lets in whoever was waiting; privacy mode adds or
        removes the consumers it concerns at once. A host's switch (set_call_settings)
        and the journal's (PATCH /api/v1/calls/{id}) both come here.
        """
        call = self.call
        unknown = set(changes) - set(SETTING_FLAGS)
        if unknown:
            raise ValueError(f"not call settings: {sorted(unknown)}")
        settings = CallSettings.from_json({**(await call.settings()).to_json(), **changes})
        await call.store.set_settings(call.id, settings)
        await self._broadcast_settings(settings)
        if settings.privacy_mode != call.privacy_mode:
            call.privacy_mode = settings.privacy_mode
            self.apply_privacy()
        if changes.get("waiting_room") is False and call.waiting:
            # No waiting room any more: whoever was waiting comes in.
            await self._admit_waiting(None)
        return settings

    def apply_privacy(self) -> None:
        """Make the consumers that exist follow privacy mode and who is a host now:
        what it keeps from a person stops (renegotiated away), what it allows starts."""
        call = self.call
        for viewer in list(call.participants.values()):
            sub = viewer.receiving
            if sub is None:
                continue
            received = [c.producer for c in sub.consumers if c.producer is not None]
            for producer in received + sub.parked:  # parked: no m-section yet (video bound)
                if producer.kind != "video":
                    continue
                owner = call.participants.get(producer.app_data.get("participant_id", ""))
                if not shown(call.privacy_mode, viewer, owner, producer):
                    sub.stop_consuming(producer)
            call.subscribe_in_room(viewer)

    async def _send_settings(self, participant: Participant, settings: CallSettings) -> None:
        await safe_send(
            participant,
            {
                "type": "call_settings",
                "settings": settings.to_json(),
                "permissions": participant.permissions_in(settings).to_json(),
            },
        )

    async def _broadcast_settings(self, settings: CallSettings) -> None:
        await asyncio.gather(
            *(self._send_settings(p, settings) for p in self.call.participants.values())
        )
