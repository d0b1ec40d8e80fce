"""Breakout rooms ("session halls"): plain, I/O-free state and the rules that change it.

The host splits the class into up to 50 rooms, assigns people by hand or at
random, opens the rooms (optionally with a timer), and closes them with a
countdown after which everyone is back in the main room. The state is one
record per call, kept in the store, so any node (or a reconnect) can see who
belongs where.

Assignments are by user id, not by connection, so a person who reconnects
goes back to their room.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

MAX_ROOMS = 50
MAX_NAME = 60


class BreakoutError(ValueError):
    """A request the rules refuse; `code` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Room:
    id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class BreakoutState:
    rooms: tuple[Room, ...] = ()
    # user id -> room id; people not in here stay in the main room.
    assignments: dict[str, str] = field(default_factory=dict)
    opened: bool = False
    opened_at: datetime | None = None
    ends_at: datetime | None = None  # the timer, if any (informational: hosts close)
    closing_at: datetime | None = None  # countdown running: everyone returns then
    allow_return: bool = False  # participants may go back to the main room themselves
    help_requests: tuple[str, ...] = ()  # room ids that asked for help, in order

    # --- queries

    def room(self, room_id: str) -> Room:
        for room in self.rooms:
            if room.id == room_id:
                return room
        raise BreakoutError("unknown_room", f"there is no room {room_id[:64]!r}")

    def room_of(self, user_id: str) -> str | None:
        """The room a person is in while rooms are open (None: the main room)."""
        if not self.opened:
            return None
        return self.assignments.get(user_id)

    def members(self, room_id: str) -> list[str]:
        return [user for user, room in self.assignments.items() if room == room_id]

    # --- changes (each returns a new state)

    def configure(self, names: list[str | None]) -> BreakoutState:
        """Set up 1..50 rooms ("Room 1…N" by default); assignments to removed rooms go."""
        if self.opened:
            raise BreakoutError("breakout_open", "close the rooms before changing them")
        if not 1 <= len(names) <= MAX_ROOMS:
            raise BreakoutError("bad_room_count", f"between 1 and {MAX_ROOMS} rooms, please")
        rooms = []
        for index, name in enumerate(names, start=1):
            name = (name or "").strip() or f"Комната {index}"
            if len(name) > MAX_NAME:
                raise BreakoutError(
                    "bad_room_name", f"room names have at most {MAX_NAME} characters"
                )
            rooms.append(Room(id=f"r{index}", name=name))
        ids = {room.id for room in rooms}
        assignments = {u: r for u, r in self.assignments.items() if r in ids}
        return replace(self, rooms=tuple(rooms), assignments=assignments, help_requests=())

    def assign(self, changes: dict[str, str | None]) -> BreakoutState:
        """Put people (user ids) in rooms by hand; None sends them to the main room."""
        for room_id in changes.values():
            if room_id is not None:
                self.room(room_id)  # every room must exist, or nothing changes
        assignments = dict(self.assignments)
        for user_id, room_id in changes.items():
            if room_id is None:
                assignments.pop(user_id, None)
            else:
                assignments[user_id] = room_id
        return replace(self, assignments=assignments)

    def assign_random(self, user_ids: list[str], rng: random.Random | None = None) -> BreakoutState:
        """Spread `user_ids` over the rooms so that sizes differ by at most one.

        People already assigned and not in `user_ids` keep their rooms and count
        towards the balance (late joiners fill the smallest rooms first).
        """
        if not self.rooms:
            raise BreakoutError("no_rooms", "create the rooms first")
        rng = rng or random.Random()
        people = list(dict.fromkeys(user_ids))
        rng.shuffle(people)
        assignments = {u: r for u, r in self.assignments.items() if u not in people}
        sizes = {room.id: 0 for room in self.rooms}
        for room_id in assignments.values():
            sizes[room_id] += 1
        order = {room.id: i for i, room in enumerate(self.rooms)}
        for user_id in people:
            smallest = min(sizes, key=lambda r: (sizes[r], order[r]))
            assignments[user_id] = smallest
            sizes[smallest] += 1
        return replace(self, assignments=assignments)

    def open(self, now: datetime, minutes: float | None, allow_return: bool) -> BreakoutState:
        if not self.rooms:
            raise BreakoutError("no_rooms", "create the rooms first")
        if self.opened:
            raise BreakoutError("breakout_open", "the rooms are open already")
        ends_at = now + timedelta(minutes=minutes) if minutes else None
        return replace(
            self,
            opened=True,
            opened_at=now,
            ends_at=ends_at,
            closing_at=None,
            allow_return=allow_return,
            help_requests=(),
        )

    def start_closing(self, now: datetime, countdown_seconds: float) -> BreakoutState:
        if not self.opened:
            raise BreakoutError("breakout_closed", "the rooms are not open")
        return replace(self, closing_at=now + timedelta(seconds=countdown_seconds))

    def close(self) -> BreakoutState:
        """Everyone back in the main room; rooms and assignments are kept for next time."""
        return replace(
            self, opened=False, opened_at=None, ends_at=None, closing_at=None, help_requests=()
        )

    def ask_help(self, room_id: str) -> BreakoutState:
        self.room(room_id)
        if room_id in self.help_requests:
            return self
        return replace(self, help_requests=(*self.help_requests, room_id))

    def clear_help(self, room_id: str) -> BreakoutState:
        return replace(self, help_requests=tuple(r for r in self.help_requests if r != room_id))

    # --- JSON

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "rooms": [room.to_json() for room in self.rooms],
            "assignments": dict(self.assignments),
            "opened": self.opened,
            "opened_at": when(self.opened_at),
            "ends_at": when(self.ends_at),
            "closing_at": when(self.closing_at),
            "allow_return": self.allow_return,
            "help_requests": list(self.help_requests),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BreakoutState:
        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            rooms=tuple(Room(id=r["id"], name=r["name"]) for r in data.get("rooms", [])),
            assignments=dict(data.get("assignments", {})),
            opened=bool(data.get("opened", False)),
            opened_at=when(data.get("opened_at")),
            ends_at=when(data.get("ends_at")),
            closing_at=when(data.get("closing_at")),
            allow_return=bool(data.get("allow_return", False)),
            help_requests=tuple(data.get("help_requests", [])),
        )
