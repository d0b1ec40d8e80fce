"""Client message validation (signalling.protocol) against docs/protocol.md, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from signalling.protocol import MAX_SDP, SCHEMAS, ProtocolError, parse_message

MAX = 320 * 1024  # the default max_ws_message_bytes
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

# Every client message in docs/protocol.md, as the spec writes it.
VALID: dict[str, dict[str, Any]] = {
    "join": {"type": "join", "token": "eyJhbGciOiJIUzI1NiJ9.e30.sig"},
    "resume": {
        "type": "resume",
        "session": "s_3q2-7wEvXwBvjGYz1MHeyAdLHq0XkVl5",
        "token": "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "last_chat_seq": 12,
    },
    "publish": {
        "type": "publish",
        "sdp": SDP,
        "tracks": [{"mid": "0", "source": "microphone"}, {"mid": "1", "source": "camera"}],
    },
    "subscribe_answer": {"type": "subscribe_answer", "sdp": SDP},
    "ice_restart": {
        "type": "ice_restart",
        "connection": "publisher",
        "sdp": SDP,
        "tracks": [{"mid": "0", "source": "microphone"}],
    },
    "media_state": {"type": "media_state", "audio": True, "video": False},
    "leave": {"type": "leave"},
    "ping": {"type": "ping"},
    # classroom control
    "hand": {"type": "hand", "raised": True},
    "lower_hand": {"type": "lower_hand", "participant_id": "p_1"},
    "lower_all_hands": {"type": "lower_all_hands"},
    "admit": {"type": "admit", "participant_id": "p_1"},
    "admit_all": {"type": "admit_all"},
    "deny": {"type": "deny", "participant_id": "p_1"},
    "deny_all": {"type": "deny_all"},
    "nudge": {"type": "nudge", "participant_id": "p_1"},
    "mute": {"type": "mute", "participant_id": "p_1", "kind": "screen"},
    "mute_all": {"type": "mute_all"},
    "remove": {"type": "remove", "participant_id": "p_1"},
    "set_cohost": {"type": "set_cohost", "participant_id": "p_1", "cohost": True},
    "give_floor": {"type": "give_floor", "participant_id": "p_1", "floor": False},
    "set_permissions": {
        "type": "set_permissions",
        "role": "student",
        "permissions": {"screen": True, "chat": False},
    },
    "set_call_settings": {
        "type": "set_call_settings",
        "waiting_room": True,
        "privacy_mode": True,
        "join_muted": False,
        "join_camera_off": True,
    },
    "chat_send": {"type": "chat_send", "text": "Здравствуйте!"},
    "end_call": {"type": "end_call"},
    # weak links
    "audio_only": {"type": "audio_only", "enabled": True},
    "video_quality": {
        "type": "video_quality",
        "participant_id": "p_x5",
        "source": "camera",
        "quality": "low",
    },
    "track_view": {
        "type": "track_view",
        "views": [
            {
                "participant_id": "p_x5",
                "source": "camera",
                "visible": True,
                "width": 320,
                "height": 180,
            },
            {"participant_id": "p_x6", "source": "screen", "visible": False},
        ],
    },
    "save_data": {"type": "save_data", "mode": "one_video"},
    # breakout rooms
    "breakout_configure": {"type": "breakout_configure", "count": 3, "names": ["Ромашки"]},
    "breakout_assign": {"type": "breakout_assign", "assignments": {"p_1": "r1", "p_2": None}},
    "breakout_assign_random": {"type": "breakout_assign_random", "include_hosts": False},
    "breakout_open": {"type": "breakout_open", "minutes": 10, "allow_return": True},
    "breakout_move": {"type": "breakout_move", "participant_id": "p_1", "room_id": None},
    "breakout_visit": {"type": "breakout_visit", "room_id": "r2"},
    "breakout_broadcast": {"type": "breakout_broadcast", "text": "Осталось 5 минут"},
    "breakout_close": {"type": "breakout_close", "countdown_seconds": 30},
    "breakout_help": {"type": "breakout_help"},
    "breakout_return": {"type": "breakout_return"},
    # recording
    "recording_start": {
        "type": "recording_start",
        "title": "Дроби, повторение",
        "visibility": ["teacher", "student"],
    },
    "recording_stop": {"type": "recording_stop"},
    "poll_create": {
        "type": "poll_create",
        "question": "Сколько будет 2+2?",
        "options": ["3", "4"],
        "multiple": False,
        "anonymous": True,
    },
    "poll_answer": {"type": "poll_answer", "poll_id": "poll_1a2b", "choices": [1]},
    "poll_share": {"type": "poll_share", "poll_id": "poll_1a2b", "shared": True},
    "poll_close": {"type": "poll_close", "poll_id": "poll_1a2b"},
    "spotlight": {"type": "spotlight", "participant_id": "p_1a2b", "source": "screen"},
}

CLASSROOM_INVALID = [
    {"type": "ice_restart"},
    {"type": "ice_restart", "connection": "both"},
    {"type": "ice_restart", "connection": "publisher"},
    {"type": "ice_restart", "connection": "publisher", "sdp": "v=0"},
    {"type": "ice_restart", "connection": "subscriber", "sdp": "v=0"},
    {"type": "ice_restart", "connection": "subscriber", "tracks": []},
    {"type": "resume", "token": "t"},
    {"type": "resume", "session": "s_1"},
    {"type": "resume", "session": "", "token": "t"},
    {"type": "resume", "session": "s" * 65, "token": "t"},
    {"type": "resume", "session": "s_1", "token": "t", "last_chat_seq": -1},
    {"type": "resume", "session": "s_1", "token": "t", "last_chat_seq": "7"},
    {"type": "resume", "session": "s_1", "token": "t", "last_chat_seq": 1.5},
    {"type": "resume", "session": "s_1", "token": "t", "room": "r1"},
    {"type": "video_quality", "participant_id": "p_x5", "source": "camera"},
    {"type": "video_quality", "participant_id": "p_x5", "source": "camera", "quality": "ultra"},
    {"type": "video_quality", "participant_id": "p_x5", "source": "microphone", "quality": "low"},
    {"type": "video_quality", "participant_id": "p_x5", "source": "camera", "quality": 2},
    {"type": "track_view", "views": []},
    {"type": "track_view", "views": [{"participant_id": "p_x5", "source": "camera"}]},
    {"type": "track_view", "views": [{"participant_id": "p", "source": "mic", "visible": True}]},
    {"type": "track_view", "views": [{"participant_id": "p", "source": "camera", "visible": 1}]},
    {
        "type": "track_view",
        "views": [{"participant_id": "p", "source": "camera", "visible": True, "width": -1}],
    },
    {
        "type": "track_view",
        "views": [{"participant_id": "p", "source": "camera", "visible": True, "height": 16385}],
    },
    {
        "type": "track_view",
        "views": [{"participant_id": "p", "source": "camera", "visible": True, "width": 1.5}],
    },
    {"type": "track_view", "views": [{"participant_id": "", "source": "camera", "visible": True}]},
    {
        "type": "track_view",
        "views": [{"participant_id": "p", "source": "camera", "visible": True, "x": 1}],
    },
    {
        "type": "track_view",
        "views": [{"participant_id": "p", "source": "camera", "visible": False}] * 129,
    },
    {"type": "save_data"},
    {"type": "save_data", "mode": "max"},
    {"type": "save_data", "mode": True},
    {"type": "audio_only"},
    {"type": "audio_only", "enabled": "yes"},
    {"type": "audio_only", "enabled": True, "video": False},
    {"type": "hand"},
    {"type": "hand", "raised": "yes"},
    {"type": "mute", "participant_id": "p_1", "kind": "everything"},
    {"type": "mute", "participant_id": "", "kind": "audio"},
    {"type": "admit", "participant_id": 5},
    {"type": "set_permissions", "role": "teacher", "permissions": {"chat": True}},
    {"type": "set_permissions", "role": "student", "permissions": {}},
    {"type": "set_permissions", "role": "student", "permissions": {"fly": True}},
    {"type": "set_permissions", "role": "student", "permissions": {"chat": 1}},
    {"type": "set_call_settings", "waiting_room": "on"},
    {"type": "chat_send"},
    {"type": "chat_send", "text": "x" * 4001},
    {"type": "set_cohost", "participant_id": "p_1"},
    {"type": "give_floor"},
    {"type": "give_floor", "participant_id": "p_1", "floor": "yes"},
    {"type": "end_call", "now": True},
    {"type": "breakout_configure", "count": 0},
    {"type": "breakout_configure", "count": 51},
    {"type": "breakout_configure", "count": 2.5},
    {"type": "breakout_configure", "count": 2, "names": ["x" * 61]},
    {"type": "breakout_assign", "assignments": {"p_1": 3}},
    {"type": "breakout_assign", "assignments": []},
    {"type": "breakout_open", "minutes": 0},
    {"type": "breakout_open", "minutes": 241},
    {"type": "breakout_move", "participant_id": "p_1"},
    {"type": "breakout_close", "countdown_seconds": -1},
    {"type": "breakout_close", "countdown_seconds": 301},
    {"type": "recording_start", "title": "x" * 201},
    {"type": "recording_start", "title": 5},
    {"type": "recording_start", "visibility": ["guest"]},
    {"type": "recording_start", "visibility": ["student", "student"]},
    {"type": "recording_start", "visibility": "student"},
    {"type": "recording_stop", "now": True},
    {"type": "set_call_settings", "privacy_mode": 1},
    {"type": "poll_create", "question": "?", "options": ["один"]},
    {"type": "poll_create", "question": "?", "options": ["а"] * 11},
    {"type": "poll_create", "question": "?", "options": ["а", 2]},
    {"type": "poll_create", "options": ["а", "б"]},
    {"type": "poll_answer", "poll_id": "poll_1", "choices": []},
    {"type": "poll_answer", "poll_id": "poll_1", "choices": [-1]},
    {"type": "poll_answer", "poll_id": "poll_1", "choices": [10]},
    {"type": "poll_answer", "poll_id": "poll_1", "choices": [0] * 11},
    {"type": "poll_share", "poll_id": "poll_1"},
    {"type": "poll_close", "poll_id": ""},
    {"type": "spotlight"},
    {"type": "spotlight", "participant_id": ""},
    {"type": "spotlight", "participant_id": None, "source": "microphone"},
]


@pytest.mark.parametrize("message", CLASSROOM_INVALID, ids=lambda m: json.dumps(m)[:60])
def test_classroom_messages_are_validated(message: dict[str, Any]) -> None:
    assert rejected(message).code == "bad_message"


def parse(message: Any) -> dict[str, Any]:
    return parse_message(message if isinstance(message, str | bytes) else json.dumps(message), MAX)


def rejected(message: Any, max_bytes: int = MAX) -> ProtocolError:
    text = message if isinstance(message, str | bytes) else json.dumps(message)
    with pytest.raises(ProtocolError) as info:
        parse_message(text, max_bytes)
    return info.value


def test_every_documented_type_has_a_schema() -> None:
    assert set(SCHEMAS) == set(VALID)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_accepts_each_documented_message(kind: str) -> None:
    assert parse(VALID[kind]) == VALID[kind]


@pytest.mark.parametrize("kind", sorted(VALID))
def test_accepts_each_message_with_an_id(kind: str) -> None:
    message = {**VALID[kind], "id": "x" * 64}
    assert parse(message) == message


def test_accepts_bytes_and_the_optional_join_lesson_id() -> None:
    assert parse(json.dumps(VALID["ping"]).encode()) == VALID["ping"]
    join = {**VALID["join"], "lesson_id": "les_abc"}
    assert parse(join) == join


def test_accepts_screen_source_and_an_empty_track_list() -> None:
    screen = {**VALID["publish"], "tracks": [{"mid": "2", "source": "screen"}]}
    assert parse(screen) == screen
    # A renegotiation that stops sending names no tracks.
    empty = {**VALID["publish"], "tracks": []}
    assert parse(empty) == empty


def test_accepts_sdp_of_exactly_the_maximum_length() -> None:
    message = {"type": "subscribe_answer", "sdp": "v" * MAX_SDP}
    assert parse(message)["sdp"] == "v" * MAX_SDP


# --- too_large


def test_too_large_counts_utf8_bytes_not_characters() -> None:
    # 30 000 Cyrillic characters are 60 000 bytes: too large for a 50 000 byte limit.
    text = json.dumps({"type": "ping", "id": "я" * 30_000}, ensure_ascii=False)
    assert len(text) < 50_000 < len(text.encode())
    error = rejected(text, max_bytes=50_000)
    assert error.code == "too_large"
    assert error.ref is None


def test_too_large_is_checked_before_json() -> None:
    assert rejected("x" * (MAX + 1)).code == "too_large"
    assert rejected(b"\xff" * (MAX + 1)).code == "too_large"
    ping = json.dumps({"type": "ping", "id": "a"})
    assert rejected(ping, max_bytes=len(ping) - 1).code == "too_large"
    assert parse_message(ping, max_bytes=len(ping)) == {"type": "ping", "id": "a"}


# --- bad_json


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "{",
        '{"type": "ping"',
        "{'type': 'ping'}",
        '{"type": "ping"} trailing',
        "ping",
        "NaN",
        "-Infinity",
        '{"type": "ping", "id": NaN}',
        '{"type": "media_state", "audio": Infinity, "video": true}',
    ],
)
def test_bad_json(text: str) -> None:
    error = rejected(text)
    assert error.code == "bad_json"
    assert error.ref is None


@pytest.mark.parametrize(
    "data", [b"\xff\xfe\xfd\x00garbage", b"\x00\x01\x02\x03", b"\x80abc", b"\xc3\x28"]
)
def test_bad_json_for_binary_garbage(data: bytes) -> None:
    assert rejected(data).code == "bad_json"


@pytest.mark.parametrize("open_, close", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_an_error_not_a_crash(open_: str, close: str) -> None:
    # Fits in the size limit, but nests deeper than Python's recursion limit.
    for template in ("%s", '{"type": "ping", "x": %s}'):
        text = template % (open_ * 10_000 + "1" + close * 10_000)
        assert rejected(text).code == "bad_json"


def test_nesting_just_below_the_recursion_limit_is_an_error_not_a_crash() -> None:
    # Decodes, but describing the wrong value in the error message recurses again.
    for depth in range(900, 1000, 7):
        tracks = "[" * depth + "1" + "]" * depth
        text = f'{{"type": "publish", "sdp": "x", "tracks": {tracks}}}'
        assert rejected(text).code in ("bad_json", "bad_message")


# --- unknown_type


@pytest.mark.parametrize(
    "message",
    [
        [],
        [{"type": "ping"}],
        42,
        1.5,
        "ping",
        None,
        True,
        {},
        {"id": "a"},
        {"type": "pingg"},
        {"type": "PING"},
        {"type": ""},
        {"type": "error"},  # a server message, not a client one
        {"type": "joined"},
        {"type": None},
        {"type": 1},
        {"type": ["ping"]},
        {"type": {"name": "ping"}},
        {"type": True},
    ],
)
def test_unknown_type(message: Any) -> None:
    assert rejected(json.dumps(message)).code == "unknown_type"


def test_unknown_type_names_the_type_shortly() -> None:
    assert "pingg" in rejected({"type": "pingg"}).message
    long_type = rejected({"type": "z" * 10_000}).message
    assert "zzz" in long_type
    assert len(long_type) < 200


# --- bad_message


@pytest.mark.parametrize(
    ("message", "field"),
    [
        # a required field missing
        ({"type": "join"}, "token"),
        ({"type": "publish", "tracks": []}, "sdp"),
        ({"type": "publish", "sdp": SDP}, "tracks"),
        ({"type": "subscribe_answer"}, "sdp"),
        ({"type": "media_state", "audio": True}, "video"),
        ({"type": "media_state", "video": True}, "audio"),
        ({"type": "publish", "sdp": SDP, "tracks": [{"mid": "0"}]}, "source"),
        ({"type": "publish", "sdp": SDP, "tracks": [{"source": "camera"}]}, "mid"),
        # a field of the wrong type
        ({"type": "join", "token": 123}, "token"),
        ({"type": "join", "token": None}, "token"),
        ({"type": "join", "token": "t", "lesson_id": 5}, "lesson_id"),
        ({"type": "publish", "sdp": ["v=0"], "tracks": []}, "sdp"),
        ({"type": "publish", "sdp": SDP, "tracks": {"0": "camera"}}, "tracks"),
        ({"type": "publish", "sdp": SDP, "tracks": ["camera"]}, "tracks.0"),
        ({"type": "publish", "sdp": SDP, "tracks": [{"mid": 0, "source": "camera"}]}, "mid"),
        ({"type": "subscribe_answer", "sdp": 1}, "sdp"),
        ({"type": "media_state", "audio": "yes", "video": True}, "audio"),
        ({"type": "media_state", "audio": True, "video": 1}, "video"),
        ({"type": "media_state", "audio": True, "video": None}, "video"),
        ({"type": "ping", "id": 7}, "id"),
        ({"type": "ping", "id": None}, "id"),
        # an extra field
        ({"type": "ping", "extra": 1}, "extra"),
        ({"type": "leave", "reason": "bye"}, "reason"),
        ({"type": "join", "token": "t", "role": "teacher"}, "role"),
        ({"type": "media_state", "audio": True, "video": True, "screen": "on"}, "screen"),
        (
            {"type": "publish", "sdp": SDP, "tracks": [{"mid": "0", "source": "camera", "x": 1}]},
            "x",
        ),
        # out of range
        ({"type": "join", "token": ""}, "token"),
        ({"type": "join", "token": "t" * 4097}, "token"),
        ({"type": "subscribe_answer", "sdp": ""}, "sdp"),
        ({"type": "subscribe_answer", "sdp": "v" * (MAX_SDP + 1)}, "sdp"),
        ({"type": "publish", "sdp": "v" * (MAX_SDP + 1), "tracks": []}, "sdp"),
        ({"type": "publish", "sdp": SDP, "tracks": [{"mid": "0", "source": "tv"}]}, "source"),
        ({"type": "publish", "sdp": SDP, "tracks": [{"mid": "0", "source": None}]}, "source"),
        ({"type": "publish", "sdp": SDP, "tracks": [{"mid": "", "source": "camera"}]}, "mid"),
        (
            {"type": "publish", "sdp": SDP, "tracks": [{"mid": "0" * 17, "source": "camera"}]},
            "mid",
        ),
        (
            {
                "type": "publish",
                "sdp": SDP,
                "tracks": [{"mid": str(i), "source": "camera"} for i in range(9)],
            },
            "tracks",
        ),
        ({"type": "ping", "id": "i" * 65}, "id"),
    ],
)
def test_bad_message_names_the_field(message: dict[str, Any], field: str) -> None:
    error = rejected(message)
    assert error.code == "bad_message"
    assert field in error.message
    assert message["type"] in error.message
    assert len(error.message) < 400


def test_eight_tracks_are_allowed() -> None:
    tracks = [{"mid": str(i), "source": "camera"} for i in range(8)]
    assert parse({"type": "publish", "sdp": SDP, "tracks": tracks})["tracks"] == tracks


def test_bad_message_does_not_echo_a_huge_value() -> None:
    error = rejected({"type": "subscribe_answer", "sdp": "v" * (MAX_SDP + 1)})
    assert len(error.message) < 400


# --- ref


def test_errors_carry_ref_from_a_string_id() -> None:
    assert rejected({"type": "nope", "id": "r1"}).ref == "r1"
    assert rejected({"type": "ping", "id": "r2", "extra": 1}).ref == "r2"
    assert rejected({"type": "publish", "id": "r3", "sdp": SDP}).ref == "r3"
    assert rejected({"type": "join", "id": "r4", "token": 5}).ref == "r4"
    assert rejected({"id": "r5"}).ref == "r5"
    assert rejected({"type": "nope", "id": "урок-1"}).ref == "урок-1"


def test_an_empty_string_id_is_still_a_ref() -> None:
    # "" is a valid id (a string of at most 64 characters); replies carry it back.
    assert parse({"type": "ping", "id": ""}) == {"type": "ping", "id": ""}
    assert rejected({"type": "nope", "id": ""}).ref == ""


def test_no_ref_without_a_string_id() -> None:
    assert rejected({"type": "nope"}).ref is None
    assert rejected({"type": "nope", "id": 5}).ref is None
    assert rejected({"type": "ping", "id": ["a"]}).ref is None
    assert rejected("{not json").ref is None
    assert rejected([{"id": "a"}]).ref is None


def test_an_overlong_id_is_refused_and_its_ref_cut_to_64() -> None:
    error = rejected({"type": "ping", "id": "i" * 100})
    assert error.code == "bad_message"
    assert error.ref == "i" * 64


def test_error_to_json() -> None:
    error = rejected({"type": "nope", "id": "r"})
    assert error.to_json() == {
        "type": "error",
        "code": "unknown_type",
        "message": error.message,
        "ref": "r",
    }
    assert "ref" not in rejected({"type": "nope"}).to_json()


@pytest.mark.parametrize("kind", ["publish", "ice_restart"])
def test_publish_tracks_name_each_mid_once(kind: str) -> None:
    message = {
        **VALID[kind],
        "tracks": [{"mid": "0", "source": "screen"}, {"mid": "0", "source": "microphone"}],
    }
    assert rejected(message).code == "bad_message"


def test_every_message_type_has_a_handler() -> None:
    from signalling.ws_actions import ACTIONS

    handled_in_ws = {
        *("join", "resume", "ping", "leave", "publish", "subscribe_answer", "end_call"),
        "ice_restart",
    }
    assert set(SCHEMAS) == set(ACTIONS) | handled_in_ws
    assert not set(ACTIONS) & handled_in_ws
