"""rooms/calls/audio_slots.py: whose microphones the SFU's audio slots pin, per room."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from rooms.calls.audio_slots import AudioSlots
from rooms.calls.core import CallCore


@dataclass
class _Person:  # what the pins read of a Participant
    host: bool
    room: str | None
    producers: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Call:  # what the pins read of a CallCore
    participants: dict[str, _Person]


def test_the_hosts_microphones_are_grouped_by_room_in_one_pass() -> None:
    teacher_mic, cohost_mic, pupil_mic, camera = object(), object(), object(), object()
    call = _Call(
        {
            "teacher": _Person(True, None, {"microphone": teacher_mic, "camera": camera}),
            "cohost": _Person(True, "room-2", {"microphone": cohost_mic}),
            "pupil": _Person(False, "room-2", {"microphone": pupil_mic}),
            "muted host": _Person(True, "room-3"),  # no microphone: nothing to pin
        }
    )
    slots = AudioSlots(cast(CallCore, call))
    by_room = slots._hosts_microphones()
    assert by_room == {None: [teacher_mic], "room-2": [cohost_mic]}
