"""The poll rules of rooms/polls.py: cleaning and bounds of a question, answers,
the limits on open polls, and the tally."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rooms.polls import (
    MAX_OPEN_POLLS,
    MAX_OPEN_POLLS_PER_ROOM,
    MAX_POLLS,
    PollAnswer,
    PollError,
    PollRecord,
    check_room_for_poll,
    checked_choices,
    checked_question,
    tally,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def poll(room: str = "", **changes: Any) -> PollRecord:
    base = PollRecord(
        "poll_1", room, "Вопрос?", ("а", "б", "в"), False, False, "p_1", "t-1", "Анна",
        "teacher", T0,
    )  # fmt: skip
    return replace(base, **changes)


def refused(code: str, check: Callable[..., object], *args: object) -> str:
    with pytest.raises(PollError) as caught:
        check(*args)
    assert caught.value.code == code
    return caught.value.message


def test_question_and_answers_are_cleaned_and_bounded() -> None:
    question, options = checked_question(" Сколько\n  будет\u200b 2+2? ", ["  3 ", "4\t!"])
    assert question == "Сколько будет 2+2?" and options == ("3", "4 !")
    assert "2 to 10" in refused("bad_poll", checked_question, "?", ["один"])
    assert "2 to 10" in refused("bad_poll", checked_question, "?", ["x"] * 11)
    assert "same" in refused("bad_poll", checked_question, "?", ["Да", " да "])
    assert "question is empty" in refused("bad_poll", checked_question, "\u200b", ["a", "b"])
    assert "answer 2 is empty" in refused("bad_poll", checked_question, "?", ["a", " "])
    assert "at most 100" in refused("bad_poll", checked_question, "?", ["a", "b" * 101])
    assert "at most 300" in refused("bad_poll", checked_question, "q" * 301, ["a", "b"])


def test_choices() -> None:
    single, multiple = poll(), poll(multiple=True)
    assert checked_choices(single, [2]) == (2,)
    assert checked_choices(multiple, [2, 0]) == (0, 2)
    assert "exactly one" in refused("bad_choice", checked_choices, single, [0, 1])
    assert "at least one" in refused("bad_choice", checked_choices, multiple, [])
    assert "twice" in refused("bad_choice", checked_choices, multiple, [1, 1])
    assert "0 to 2" in refused("bad_choice", checked_choices, multiple, [3])
    assert "0 to 2" in refused("bad_choice", checked_choices, single, [-1])


def test_open_polls_are_bounded_per_room_per_call_and_in_all() -> None:
    in_room = [poll(id=f"p{i}", room="r1") for i in range(MAX_OPEN_POLLS_PER_ROOM)]
    refused("too_many_polls", check_room_for_poll, in_room, "r1")
    check_room_for_poll(in_room, "r2")  # another room may ask
    closed = [p.closed(T0) for p in in_room]
    check_room_for_poll(closed, "r1")  # closed polls do not count as open
    spread = [poll(id=f"p{i}", room=f"r{i}") for i in range(MAX_OPEN_POLLS)]
    refused("too_many_polls", check_room_for_poll, spread, "elsewhere")
    asked = [poll(id=f"p{i}").closed(T0) for i in range(MAX_POLLS)]
    refused("too_many_polls", check_room_for_poll, asked, "")


def test_tally_names_only_for_hosts_of_named_polls() -> None:
    answers = [
        PollAnswer("s-2", "Ольга", (0, 2), T0 + timedelta(seconds=2)),
        PollAnswer("s-1", "Иван", (2,), T0 + timedelta(seconds=1)),
    ]
    named = poll(multiple=True)
    assert tally(named, answers, names=True) == {
        "counts": [1, 0, 2],
        "voters": 2,
        "names": [["Ольга"], [], ["Иван", "Ольга"]],  # in the order they answered
    }
    assert tally(named, answers, names=False) == {"counts": [1, 0, 2], "voters": 2}
    assert "names" not in tally(replace(named, anonymous=True), answers, names=True)


def test_records_round_trip() -> None:
    record = poll(shared=True).closed(T0 + timedelta(minutes=3))
    assert PollRecord.from_json(record.to_json()) == record
    answer = PollAnswer("s-1", "Иван", (1, 2), T0)
    assert PollAnswer.from_json(answer.to_json()) == answer
