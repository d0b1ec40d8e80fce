"""Polls in a call: what a poll and an answer are, the rules for asking and answering,
and the tally. Plain, I/O-free code: the store keeps the records, rooms/calls/polls.py
applies the rules to people.

Rules (docs/protocol.md "Polls"):

* a question of 1-300 characters and 2-10 distinct answers of 1-100 characters each
  (whitespace collapsed; control and invisible characters dropped, as in the chat);
* single choice: exactly one answer index; multiple choice: 1 to all of them, no
  repeats; every index within the poll's answers;
* one answer per person (by journal user id, so a reconnect or a second tab is the
  same person): a second answer is refused (`already_answered`), never replaces the
  first, so what a host saw counted stays counted;
* bounded: at most MAX_OPEN_POLLS open at once in a call, MAX_OPEN_POLLS_PER_ROOM in
  one room, MAX_POLLS asked in a call in all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rooms.chat import ChatError, ChatLimits, prepare_message

MAX_QUESTION = 300
MAX_OPTION = 100
MIN_OPTIONS = 2
MAX_OPTIONS = 10
MAX_OPEN_POLLS = 10  # in a call, all rooms together
MAX_OPEN_POLLS_PER_ROOM = 3
MAX_POLLS = 100  # asked in one call, closed ones included (the store keeps them all)

OPEN = "open"
CLOSED = "closed"


class PollError(Exception):
    """A refused poll request; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PollRecord:
    id: str
    room: str  # "" the main room, else the breakout room it was asked in
    question: str
    options: tuple[str, ...]
    multiple: bool
    anonymous: bool
    author_id: str
    author_user_id: str
    author_name: str
    author_role: str
    created_at: datetime
    state: str = OPEN
    shared: bool = False  # the results are shown to everyone in the room, live
    closed_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state == OPEN

    def closed(self, at: datetime) -> PollRecord:
        return replace(self, state=CLOSED, closed_at=at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "question": self.question,
            "options": list(self.options),
            "multiple": self.multiple,
            "anonymous": self.anonymous,
            "author_id": self.author_id,
            "author_user_id": self.author_user_id,
            "author_name": self.author_name,
            "author_role": self.author_role,
            "created_at": self.created_at.isoformat(),
            "state": self.state,
            "shared": self.shared,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollRecord:
        closed_at = data.get("closed_at")
        return cls(
            **{
                **data,
                "options": tuple(data["options"]),
                "created_at": datetime.fromisoformat(data["created_at"]),
                "closed_at": datetime.fromisoformat(closed_at) if closed_at else None,
            }
        )


@dataclass(frozen=True)
class PollAnswer:
    voter: str  # the person's journal user id
    name: str
    choices: tuple[int, ...]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "voter": self.voter,
            "name": self.name,
            "choices": list(self.choices),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollAnswer:
        return cls(
            voter=data["voter"],
            name=data["name"],
            choices=tuple(int(c) for c in data["choices"]),
            at=datetime.fromisoformat(data["at"]),
        )


def _clean(text: str, limit: int, what: str) -> str:
    try:
        cleaned = prepare_message(text, ChatLimits(max_length=10 * limit))
    except ChatError:
        raise PollError("bad_poll", f"the {what} is empty") from None
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        raise PollError(
            "bad_poll", f"the {what} has {len(cleaned)} characters, at most {limit} allowed"
        )
    return cleaned


def checked_question(question: str, options: list[str]) -> tuple[str, tuple[str, ...]]:
    """The question and answers as a poll keeps them, or PollError saying what is wrong."""
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise PollError(
            "bad_poll", f"a poll has {MIN_OPTIONS} to {MAX_OPTIONS} answers, not {len(options)}"
        )
    cleaned = tuple(
        _clean(text, MAX_OPTION, f"answer {index + 1}") for index, text in enumerate(options)
    )
    folded = [text.casefold() for text in cleaned]
    if len(set(folded)) != len(folded):
        raise PollError("bad_poll", "two answers are the same")
    return _clean(question, MAX_QUESTION, "question"), cleaned


def checked_choices(poll: PollRecord, choices: list[int]) -> tuple[int, ...]:
    """The answer's indexes in order, or PollError (`bad_choice`) saying what is wrong."""
    if not choices:
        raise PollError("bad_choice", "choose at least one answer")
    if not poll.multiple and len(choices) != 1:
        raise PollError("bad_choice", "this poll takes exactly one answer")
    if len(set(choices)) != len(choices):
        raise PollError("bad_choice", "an answer is chosen twice")
    for choice in choices:
        if not 0 <= choice < len(poll.options):
            raise PollError(
                "bad_choice",
                f"no answer {choice}: this poll's answers are 0 to {len(poll.options) - 1}",
            )
    return tuple(sorted(choices))


def check_room_for_poll(polls: list[PollRecord], room: str) -> None:
    """May one more poll be asked in `room`, given the call's polls so far?"""
    if len(polls) >= MAX_POLLS:
        raise PollError("too_many_polls", f"at most {MAX_POLLS} polls in one call")
    open_polls = [p for p in polls if p.open]
    if len(open_polls) >= MAX_OPEN_POLLS:
        raise PollError("too_many_polls", f"at most {MAX_OPEN_POLLS} open polls in a call")
    if sum(1 for p in open_polls if p.room == room) >= MAX_OPEN_POLLS_PER_ROOM:
        raise PollError(
            "too_many_polls", f"at most {MAX_OPEN_POLLS_PER_ROOM} open polls in one room"
        )


def tally(poll: PollRecord, answers: list[PollAnswer], names: bool) -> dict[str, Any]:
    """The results: how many chose each answer, how many answered, and (`names`, for a
    named poll's hosts) who chose each answer, in the order they answered."""
    counts = [0] * len(poll.options)
    voters: list[list[str]] = [[] for _ in poll.options]
    for answer in sorted(answers, key=lambda a: a.at):
        for choice in answer.choices:
            if 0 <= choice < len(counts):
                counts[choice] += 1
                voters[choice].append(answer.name)
    results: dict[str, Any] = {"counts": counts, "voters": len(answers)}
    if names and not poll.anonymous:
        results["names"] = voters
    return results
