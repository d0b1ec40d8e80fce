"""Client message schemas (docs/protocol.md): every message is checked here first."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

# aiortc's SDP takes ~1.2 KB per audio and ~1.8 KB per video m-section: room for
# a subscriber receiving 60 people's camera, microphone and a screen or two.
MAX_SDP = 256 * 1024
_ID = {"type": "string", "maxLength": 64}
_SDP = {"type": "string", "minLength": 1, "maxLength": MAX_SDP}
_PID = {"type": "string", "minLength": 1, "maxLength": 64}
_ROOM = {"type": "string", "minLength": 1, "maxLength": 16}


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
    "publish": _message(
        "publish",
        {
            "sdp": _SDP,
            "tracks": {
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
            },
        },
        ["sdp", "tracks"],
    ),
    "subscribe_answer": _message("subscribe_answer", {"sdp": _SDP}, ["sdp"]),
    "media_state": _message(
        "media_state",
        {"audio": {"type": "boolean"}, "video": {"type": "boolean"}, "screen": {"type": "boolean"}},
        ["audio", "video"],
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
    "set_cohost": _message(
        "set_cohost",
        {"participant_id": _PID, "cohost": {"type": "boolean"}},
        ["participant_id", "cohost"],
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
        "set_call_settings",
        {"waiting_room": {"type": "boolean"}, "guests_allowed": {"type": "boolean"}},
        [],
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
    "leave": _message("leave", {}, []),
    "ping": _message("ping", {}, []),
}
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in SCHEMAS.items()}


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


def parse_message(text: str | bytes, max_bytes: int) -> dict[str, Any]:
    """Decode and validate one client frame, or raise ProtocolError saying what is wrong."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise ProtocolError("too_large", f"message of {size} bytes exceeds {max_bytes}")
    try:
        message = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ProtocolError("bad_json", "message is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"message is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("unknown_type", "message must be a JSON object with a 'type'")
    ref = message.get("id") if isinstance(message.get("id"), str) else None
    ref = ref[:64] if ref is not None else None
    type_ = message.get("type")
    validator = _VALIDATORS.get(type_) if isinstance(type_, str) else None
    if validator is None:
        shown = type_ if isinstance(type_, str) else json.dumps(type_)[:40]
        raise ProtocolError("unknown_type", f"unknown message type {shown[:40]!r}", ref)
    try:
        error = next(iter(sorted(validator.iter_errors(message), key=lambda e: list(e.path))), None)
    except RecursionError:  # describing a deeply nested wrong value
        raise ProtocolError("bad_message", f"{type_}: message is nested too deeply", ref) from None
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "message"
        if error.validator == "additionalProperties":
            where = "message"
        raise ProtocolError("bad_message", f"{type_}: {where}: {error.message[:200]}", ref)
    if type_ == "publish":
        mids = [track["mid"] for track in message["tracks"]]
        if len(set(mids)) != len(mids):
            raise ProtocolError("bad_message", "publish: tracks: each mid may appear once", ref)
    return message
