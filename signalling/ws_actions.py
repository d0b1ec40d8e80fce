"""Protocol messages that map one to one onto a Call method: name -> how to call it.

The message has passed its schema (signalling.protocol), so its fields are
there and of the right type. Messages with more to them (publish,
subscribe_answer, end_call, leave) are handled in signalling.ws.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rooms.calls import Call, Participant
from rooms.lessons import Role
from rooms.model import SETTING_FLAGS

# What the Call method returns is not the connection's business (replies go out as events).
Action = Callable[[Call, Participant, dict[str, Any]], Awaitable[object]]

ACTIONS: dict[str, Action] = {
    "media_state": lambda c, p, m: c.set_media_state(p, m["audio"], m["video"], m.get("screen")),
    "hand": lambda c, p, m: c.set_hand(p, m["raised"]),
    "lower_hand": lambda c, p, m: c.lower_hand(p, m["participant_id"]),
    "lower_all_hands": lambda c, p, m: c.lower_all_hands(p),
    "admit": lambda c, p, m: c.admit(p, m["participant_id"]),
    "admit_all": lambda c, p, m: c.admit(p, None),
    "deny": lambda c, p, m: c.deny(p, m["participant_id"]),
    "deny_all": lambda c, p, m: c.deny(p, None),
    "nudge": lambda c, p, m: c.nudge(p, m["participant_id"]),
    "mute": lambda c, p, m: c.mute(p, m["participant_id"], m["kind"]),
    "mute_all": lambda c, p, m: c.mute_all(p),
    "remove": lambda c, p, m: c.remove(p, m["participant_id"]),
    "set_cohost": lambda c, p, m: c.set_cohost(p, m["participant_id"], m["cohost"]),
    "give_floor": lambda c, p, m: c.give_floor(p, m["participant_id"], m.get("floor", True)),
    "set_permissions": lambda c, p, m: c.set_permissions(p, Role(m["role"]), m["permissions"]),
    "set_call_settings": lambda c, p, m: c.set_call_settings(
        p, {k: v for k, v in m.items() if k in SETTING_FLAGS}
    ),
    "spotlight": lambda c, p, m: c.spotlight(p, m["participant_id"], m.get("source", "camera")),
    "audio_only": lambda c, p, m: c.set_audio_only(p, m["enabled"]),
    "video_quality": lambda c, p, m: c.set_video_quality(
        p, m["participant_id"], m["source"], m["quality"]
    ),
    "track_view": lambda c, p, m: c.set_track_views(p, m["views"]),
    "save_data": lambda c, p, m: c.set_save_data(p, m["mode"]),
    "chat_send": lambda c, p, m: c.chat_send(p, m["text"]),
    "recording_start": lambda c, p, m: c.recording_start(p, m.get("title"), m.get("visibility")),
    "recording_stop": lambda c, p, m: c.recording_stop(p),
    "poll_create": lambda c, p, m: c.poll_create(
        p, m["question"], m["options"], m.get("multiple", False), m.get("anonymous", False)
    ),
    "poll_answer": lambda c, p, m: c.poll_answer(p, m["poll_id"], m["choices"]),
    "poll_share": lambda c, p, m: c.poll_share(p, m["poll_id"], m["shared"]),
    "poll_close": lambda c, p, m: c.poll_close(p, m["poll_id"]),
    "breakout_configure": lambda c, p, m: c.breakout_configure(p, m["count"], m.get("names")),
    "breakout_assign": lambda c, p, m: c.breakout_assign(p, m["assignments"]),
    "breakout_assign_random": lambda c, p, m: c.breakout_assign_random(
        p, m.get("include_hosts", False)
    ),
    "breakout_open": lambda c, p, m: c.breakout_open(
        p, m.get("minutes"), m.get("allow_return", False)
    ),
    "breakout_move": lambda c, p, m: c.breakout_move(p, m["participant_id"], m["room_id"]),
    "breakout_visit": lambda c, p, m: c.breakout_visit(p, m["room_id"]),
    "breakout_broadcast": lambda c, p, m: c.breakout_broadcast(p, m["text"]),
    "breakout_close": lambda c, p, m: c.breakout_close(p, m.get("countdown_seconds", 30)),
    "breakout_help": lambda c, p, m: c.breakout_help(p),
    "breakout_return": lambda c, p, m: c.breakout_return(p),
}
