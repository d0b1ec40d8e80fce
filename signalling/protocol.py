"""Client message schemas (docs/protocol.md): every message is checked here first.

Parsing costs time linear in the frame and small: the frame's structure is
bounded before it is decoded (MAX_JSON_VALUES), so is every number in it
(MAX_NUMBER_CHARS, MAX_EXPONENT), only the schema of the
message's own type is checked, every array and string in the schemas is
capped before its items are looked at, and checking stops at the first error.
"""

from __future__ import annotations

import json
from typing import Any

from rooms.model import SETTING_FLAGS
from signalling.schema_check import SchemaCheck

# aiortc's SDP takes ~1.2 KB per audio and ~1.8 KB per video m-section: room for
# a subscriber receiving 60 people's camera, microphone and a screen or two.
MAX_SDP = 256 * 1024
_ID = {"type": "string", "maxLength": 64}
_SDP = {"type": "string", "minLength": 1, "maxLength": MAX_SDP}
_PID = {"type": "string", "minLength": 1, "maxLength": 64}
_ROOM = {"type": "string", "minLength": 1, "maxLength": 16}
# A bound on the values a frame may hold, counted (over-counted: also inside
# strings) from its '{', '[' and ',' before decoding. The largest valid
# messages (a 500-person breakout assignment, 4,000 commas of chat) stay
# below it; SDP has no commas or brackets.
MAX_JSON_VALUES = 4096
# A number is at most this many characters, with an exponent of at most
# MAX_EXPONENT: the protocol's numbers are counts, minutes and seconds, and the
# API's bodies have none. Longer ones cost far more than their bytes: Python
# turns a 4,299-digit integer into an int in quadratic time (76 of them in a
# frame: 47 ms, and as much again for the schema check), and a float of
# hundreds of digits near a rounding boundary takes ~0.1 ms (38 ms a frame).
MAX_NUMBER_CHARS = 24
MAX_EXPONENT = 40
# Before `join` only `join`, `resume` and `ping` are read: a token is at most 4 KiB.
MAX_UNJOINED_BYTES = 8 * 1024


_TRACKS: dict[str, Any] = {
    "type": "array",
    "maxItems": 8,
    "items": {
        "type": "object",
        "properties": {
            "mid": {"type": "string", "minLength": 1, "maxLength": 16},
            "source": {"enum": ["microphone", "camera", "screen"]},
        },
        "required": ["mid", "source"],
        "additionalProperties": False,
    },
}


def _message(type_: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"type": {"const": type_}, "id": _ID, **properties},
        "required": ["type", *required],
        "additionalProperties": False,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "join": _message(
        "join",
        {
            "token": {"type": "string", "minLength": 1, "maxLength": 4096},
            "lesson_id": {"type": "string", "minLength": 1, "maxLength": 64},
        },
        ["token"],
    ),
    # After a dropped connection (docs/protocol.md "resume"), instead of join.
    "resume": _message(
        "resume",
        {
            "session": {"type": "string", "minLength": 1, "maxLength": 64},
            "token": {"type": "string", "minLength": 1, "maxLength": 4096},
            "last_chat_seq": {"type": "integer", "minimum": 0, "maximum": 2**53},
        },
        ["session", "token"],
    ),
    "publish": _message(
        "publish",
        {
            "sdp": _SDP,
            "tracks": _TRACKS,
        },
        ["sdp", "tracks"],
    ),
    # A broken media path (docs/protocol.md "ice_restart"): a new connection; the
    # publisher's comes with the page's offer, the subscriber's with none.
    "ice_restart": {
        **_message(
            "ice_restart",
            {"connection": {"enum": ["publisher", "subscriber"]}, "sdp": _SDP, "tracks": _TRACKS},
            ["connection"],
        ),
        "if": {"properties": {"connection": {"const": "publisher"}}},
        "then": {"required": ["sdp", "tracks"]},
        "else": {"not": {"anyOf": [{"required": ["sdp"]}, {"required": ["tracks"]}]}},
    },
    "subscribe_answer": _message("subscribe_answer", {"sdp": _SDP}, ["sdp"]),
    "media_state": _message(
        "media_state",
        {"audio": {"type": "boolean"}, "video": {"type": "boolean"}, "screen": {"type": "boolean"}},
        ["audio", "video"],
    ),
    "audio_only": _message("audio_only", {"enabled": {"type": "boolean"}}, ["enabled"]),
    "video_quality": _message(
        "video_quality",
        {
            "participant_id": _PID,
            "source": {"enum": ["camera", "screen"]},
            "quality": {"enum": ["low", "medium", "high"]},
        },
        ["participant_id", "source", "quality"],
    ),
    # Adaptive subscription (docs/protocol.md "Track views"): what the page shows of
    # each video, in one frame per relayout; sizes in device pixels.
    "track_view": _message(
        "track_view",
        {
            "views": {
                "type": "array",
                "minItems": 1,
                "maxItems": 128,
                "items": {
                    "type": "object",
                    "properties": {
                        "participant_id": _PID,
                        "source": {"enum": ["camera", "screen"]},
                        "visible": {"type": "boolean"},
                        "width": {"type": "integer", "minimum": 0, "maximum": 16384},
                        "height": {"type": "integer", "minimum": 0, "maximum": 16384},
                    },
                    "required": ["participant_id", "source", "visible"],
                    "additionalProperties": False,
                },
            }
        },
        ["views"],
    ),
    "save_data": _message(
        "save_data", {"mode": {"enum": ["off", "audio_screen", "one_video"]}}, ["mode"]
    ),
    "hand": _message("hand", {"raised": {"type": "boolean"}}, ["raised"]),
    "lower_hand": _message("lower_hand", {"participant_id": _PID}, ["participant_id"]),
    "lower_all_hands": _message("lower_all_hands", {}, []),
    "admit": _message("admit", {"participant_id": _PID}, ["participant_id"]),
    "admit_all": _message("admit_all", {}, []),
    "deny": _message("deny", {"participant_id": _PID}, ["participant_id"]),
    "deny_all": _message("deny_all", {}, []),
    "nudge": _message("nudge", {"participant_id": _PID}, ["participant_id"]),
    "mute": _message(
        "mute",
        {"participant_id": _PID, "kind": {"enum": ["audio", "video", "screen"]}},
        ["participant_id", "kind"],
    ),
    "mute_all": _message("mute_all", {}, []),
    "remove": _message("remove", {"participant_id": _PID}, ["participant_id"]),
    "give_floor": _message(
        "give_floor", {"participant_id": _PID, "floor": {"type": "boolean"}}, ["participant_id"]
    ),
    "set_cohost": _message(
        "set_cohost",
        {"participant_id": _PID, "cohost": {"type": "boolean"}},
        ["participant_id", "cohost"],
    ),
    # The host's spotlight for everyone in the room (docs/protocol.md "spotlight"); null: off.
    "spotlight": _message(
        "spotlight",
        {
            "participant_id": {"anyOf": [_PID, {"type": "null"}]},
            "source": {"enum": ["camera", "screen"]},
        },
        ["participant_id"],
    ),
    "set_permissions": _message(
        "set_permissions",
        {
            "role": {"enum": ["student", "parent", "guest"]},
            "permissions": {
                "type": "object",
                "properties": {
                    k: {"type": "boolean"} for k in ("unmute", "video", "screen", "chat")
                },
                "additionalProperties": False,
                "minProperties": 1,
            },
        },
        ["role", "permissions"],
    ),
    "set_call_settings": _message(
        "set_call_settings", {flag: {"type": "boolean"} for flag in SETTING_FLAGS}, []
    ),
    "chat_send": _message("chat_send", {"text": {"type": "string", "maxLength": 4000}}, ["text"]),
    "end_call": _message("end_call", {}, []),
    "recording_start": _message(
        "recording_start",
        {
            "title": {"type": "string", "maxLength": 200},
            "visibility": {
                "type": "array",
                "maxItems": 3,
                "uniqueItems": True,
                "items": {"enum": ["teacher", "student", "parent"]},
            },
        },
        [],
    ),
    "recording_stop": _message("recording_stop", {}, []),
    "breakout_configure": _message(
        "breakout_configure",
        {
            "count": {"type": "integer", "minimum": 1, "maximum": 50},
            "names": {
                "type": "array",
                "maxItems": 50,
                "items": {"type": "string", "maxLength": 60},
            },
        },
        ["count"],
    ),
    "breakout_assign": _message(
        "breakout_assign",
        {
            "assignments": {
                "type": "object",
                "maxProperties": 500,
                "propertyNames": {"minLength": 1, "maxLength": 64},
                "additionalProperties": {"anyOf": [_ROOM, {"type": "null"}]},
            }
        },
        ["assignments"],
    ),
    "breakout_assign_random": _message(
        "breakout_assign_random", {"include_hosts": {"type": "boolean"}}, []
    ),
    "breakout_open": _message(
        "breakout_open",
        {
            "minutes": {"type": "number", "minimum": 1, "maximum": 240},
            "allow_return": {"type": "boolean"},
        },
        [],
    ),
    "breakout_move": _message(
        "breakout_move",
        {"participant_id": _PID, "room_id": {"anyOf": [_ROOM, {"type": "null"}]}},
        ["participant_id", "room_id"],
    ),
    "breakout_visit": _message(
        "breakout_visit", {"room_id": {"anyOf": [_ROOM, {"type": "null"}]}}, ["room_id"]
    ),
    "breakout_broadcast": _message(
        "breakout_broadcast", {"text": {"type": "string", "maxLength": 4000}}, ["text"]
    ),
    "breakout_close": _message(
        "breakout_close",
        {"countdown_seconds": {"type": "number", "minimum": 0, "maximum": 300}},
        [],
    ),
    "breakout_help": _message("breakout_help", {}, []),
    "breakout_return": _message("breakout_return", {}, []),
    # Polls (docs/protocol.md "Polls"): the strings are cleaned and bounded again by
    # rooms/polls.py (a question of 300 characters, answers of 100 after cleaning).
    "poll_create": _message(
        "poll_create",
        {
            "question": {"type": "string", "maxLength": 1000},
            "options": {
                "type": "array",
                "minItems": 2,
                "maxItems": 10,
                "items": {"type": "string", "maxLength": 400},
            },
            "multiple": {"type": "boolean"},
            "anonymous": {"type": "boolean"},
        },
        ["question", "options"],
    ),
    "poll_answer": _message(
        "poll_answer",
        {
            "poll_id": _PID,
            "choices": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {"type": "integer", "minimum": 0, "maximum": 9},
            },
        },
        ["poll_id", "choices"],
    ),
    "poll_share": _message(
        "poll_share", {"poll_id": _PID, "shared": {"type": "boolean"}}, ["poll_id", "shared"]
    ),
    "poll_close": _message("poll_close", {"poll_id": _PID}, ["poll_id"]),
    "leave": _message("leave", {}, []),
    "ping": _message("ping", {}, []),
}
_VALIDATORS = {name: SchemaCheck(schema) for name, schema in SCHEMAS.items()}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, ref: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.extra = extra  # more fields of the error message, e.g. retry_after

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        out.update(self.extra)
        if self.ref is not None:
            out["ref"] = self.ref
        return out


def _not_json(constant: str) -> None:
    # Python's json accepts NaN and Infinity; JSON does not.
    raise ValueError(f"{constant} is not JSON")


def _bounded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number longer than {MAX_NUMBER_CHARS} characters")
    return int(literal)


def _bounded_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number longer than {MAX_NUMBER_CHARS} characters")
    if ("e" in literal or "E" in literal) and abs(
        int(literal.replace("E", "e").rpartition("e")[2])
    ) > MAX_EXPONENT:
        raise ValueError(f"a number with an exponent beyond ±{MAX_EXPONENT}")
    return float(literal)


def json_values_bound(text: str | bytes) -> int:
    """An upper bound on the JSON values and keys in `text`, in linear C-speed time."""
    if isinstance(text, bytes):
        return text.count(b"{") + text.count(b"[") + text.count(b",")
    return text.count("{") + text.count("[") + text.count(",")


def decode_json(text: str | bytes, max_values: int = MAX_JSON_VALUES) -> Any:
    """Decode a JSON document of bounded structure and numbers, or raise ValueError saying why."""
    if json_values_bound(text) > max_values:
        raise ValueError(f"more than {max_values} values")
    try:
        return json.loads(
            text, parse_constant=_not_json, parse_int=_bounded_int, parse_float=_bounded_float
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_message(
    text: str | bytes, max_bytes: int, allowed: frozenset[str] | None = None
) -> dict[str, Any]:
    """Decode and validate one client frame, or raise ProtocolError saying what is wrong.

    `allowed`: the only types read now; another known type is answered
    `not_joined` without looking at the rest of the message.
    """
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise ProtocolError("too_large", f"message of {size} bytes exceeds {max_bytes}")
    try:
        message = decode_json(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"message is not valid JSON: {exc}"[:300]) from None
    if not isinstance(message, dict):
        raise ProtocolError("unknown_type", "message must be a JSON object with a 'type'")
    ref = message.get("id") if isinstance(message.get("id"), str) else None
    ref = ref[:64] if ref is not None else None
    type_ = message.get("type")
    validator = _VALIDATORS.get(type_) if isinstance(type_, str) else None
    if validator is None:
        shown = type_ if isinstance(type_, str) else json.dumps(type_)[:40]
        raise ProtocolError("unknown_type", f"unknown message type {shown[:40]!r}", ref)
    if allowed is not None and type_ not in allowed:
        raise ProtocolError("not_joined", "send join first", ref)
    error = validator.first_error(message)
    if error is not None:
        where = ".".join(str(p) for p in error.path) or "message"
        raise ProtocolError("bad_message", f"{type_}: {where}: {error.describe()}", ref)
    if "tracks" in message:  # publish, ice_restart
        mids = [track["mid"] for track in message["tracks"]]
        if len(set(mids)) != len(mids):
            raise ProtocolError("bad_message", f"{type_}: tracks: each mid may appear once", ref)
    return message
