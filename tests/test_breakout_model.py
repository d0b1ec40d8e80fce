"""Breakout room rules (breakout/model.py): configure, assign, balance, open, close."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from breakout.model import MAX_ROOMS, BreakoutError, BreakoutState

T0 = datetime(2026, 11, 24, 9, tzinfo=UTC)


def test_rooms_get_default_names_and_keep_given_ones() -> None:
    state = BreakoutState().configure(["Ромашки", None, "  "])
    assert [r.name for r in state.rooms] == ["Ромашки", "Комната 2", "Комната 3"]
    assert [r.id for r in state.rooms] == ["r1", "r2", "r3"]


@pytest.mark.parametrize("count", [0, MAX_ROOMS + 1])
def test_room_count_outside_1_to_50_is_refused(count: int) -> None:
    with pytest.raises(BreakoutError) as info:
        BreakoutState().configure([None] * count)
    assert info.value.code == "bad_room_count"


def test_fifty_rooms_are_fine() -> None:
    assert len(BreakoutState().configure([None] * 50).rooms) == 50


@pytest.mark.parametrize("people,rooms", [(30, 4), (7, 3), (2, 5), (150, 50), (31, 50)])
def test_random_assignment_is_balanced(people: int, rooms: int) -> None:
    users = [f"u{i}" for i in range(people)]
    state = BreakoutState().configure([None] * rooms).assign_random(users, random.Random(7))
    assert set(state.assignments) == set(users)
    sizes = Counter(state.assignments.values())
    counts = [sizes.get(r.id, 0) for r in state.rooms]
    assert max(counts) - min(counts) <= 1


def test_late_joiners_fill_the_smallest_rooms_and_nobody_else_moves() -> None:
    state = BreakoutState().configure([None, None]).assign({"a": "r1", "b": "r1", "c": "r2"})
    after = state.assign_random(["d"], random.Random(1))
    assert after.assignments["d"] == "r2"
    assert {u: after.assignments[u] for u in "abc"} == {"a": "r1", "b": "r1", "c": "r2"}


def test_hand_assignment_checks_every_room_before_changing_anything() -> None:
    state = BreakoutState().configure([None, None]).assign({"a": "r1"})
    with pytest.raises(BreakoutError) as info:
        state.assign({"b": "r2", "c": "r9"})
    assert info.value.code == "unknown_room"
    assert state.assignments == {"a": "r1"}  # the original is untouched (immutable)
    assert state.assign({"a": None}).assignments == {}


def test_open_timer_close_and_room_of() -> None:
    state = BreakoutState().configure([None]).assign({"a": "r1"})
    assert state.room_of("a") is None  # not open yet
    opened = state.open(T0, 15, allow_return=True)
    assert opened.room_of("a") == "r1" and opened.room_of("b") is None
    assert opened.ends_at == T0 + timedelta(minutes=15)
    with pytest.raises(BreakoutError, match="open already"):
        opened.open(T0, None, allow_return=False)
    with pytest.raises(BreakoutError) as info:
        opened.configure([None, None])
    assert info.value.code == "breakout_open"
    closing = opened.start_closing(T0, 30)
    assert closing.closing_at == T0 + timedelta(seconds=30)
    closed = closing.close()
    assert not closed.opened and closed.room_of("a") is None
    assert closed.assignments == {"a": "r1"}  # kept for the next round
    with pytest.raises(BreakoutError):
        closed.start_closing(T0, 0)


def test_reconfiguring_drops_assignments_to_rooms_that_went_away() -> None:
    state = BreakoutState().configure([None, None, None]).assign({"a": "r3", "b": "r1"})
    assert state.configure([None, None]).assignments == {"b": "r1"}


def test_help_requests_are_kept_once_in_order() -> None:
    state = BreakoutState().configure([None, None]).open(T0, None, False)
    state = state.ask_help("r2").ask_help("r1").ask_help("r2")
    assert state.help_requests == ("r2", "r1")
    assert state.clear_help("r2").help_requests == ("r1",)


def test_json_round_trip() -> None:
    state = (
        BreakoutState().configure(["A", "B"]).assign({"a": "r2"}).open(T0, 5, True).ask_help("r2")
    )
    assert BreakoutState.from_json(state.to_json()) == state
