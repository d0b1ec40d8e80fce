"""Call state records: plain data that the store keeps and the call logic reads.

Everything here is I/O-free and JSON-serialisable (to_json / from_json), so
the in-memory and Redis stores keep exactly the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from rooms.vocabulary import Role


@dataclass(frozen=True)
class Permissions:
    """What people of one role may do by themselves in a call."""

    unmute: bool = True  # turn their microphone on
    video: bool = True  # turn their camera on
    screen: bool = False  # share their screen
    chat: bool = True  # write in the call chat

    def to_json(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Permissions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: bool(v) for k, v in data.items() if k in names})


# Hosts (the teacher, co-hosts) may always do everything.
HOST_PERMISSIONS = Permissions(unmute=True, video=True, screen=True, chat=True)
CONFIGURABLE_ROLES = (Role.STUDENT, Role.PARENT, Role.GUEST)


def default_permissions() -> dict[Role, Permissions]:
    return {role: Permissions() for role in CONFIGURABLE_ROLES}


# The host's switches of a call besides the rights (set_call_settings, the journal's PATCH).
SETTING_FLAGS = ("waiting_room", "guests_allowed", "privacy_mode", "join_muted", "join_camera_off")


@dataclass(frozen=True)
class CallSettings:
    waiting_room: bool = False
    guests_allowed: bool = False
    # Pupils see only the hosts and shared screens: nobody but a host is sent the
    # camera of someone who is not a host (rooms/calls/privacy.py).
    privacy_mode: bool = False
    # Pupils (everyone but hosts) enter with their microphone / camera off.
    join_muted: bool = False
    join_camera_off: bool = False
    permissions: dict[Role, Permissions] = field(default_factory=default_permissions)

    def permissions_for(self, role: Role, host: bool) -> Permissions:
        if host or role is Role.TEACHER:
            return HOST_PERMISSIONS
        return self.permissions.get(role, Permissions())

    def start_media(self, role: Role, host: bool) -> dict[str, bool]:
        """A person's microphone and camera on entry: on where permitted, unless the host
        has pupils (everyone but hosts) join muted or with the camera off."""
        permissions, pupil = self.permissions_for(role, host), not (host or role is Role.TEACHER)
        return {
            "audio": permissions.unmute and not (pupil and self.join_muted),
            "video": permissions.video and not (pupil and self.join_camera_off),
        }

    def with_permissions(self, role: Role, permissions: Permissions) -> CallSettings:
        return replace(self, permissions={**self.permissions, role: permissions})

    def to_json(self) -> dict[str, Any]:
        return {
            **{flag: getattr(self, flag) for flag in SETTING_FLAGS},
            "permissions": {r.value: p.to_json() for r, p in self.permissions.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallSettings:
        permissions = default_permissions()
        for role, value in data.get("permissions", {}).items():
            permissions[Role(role)] = Permissions.from_json(value)
        flags = {flag: bool(data.get(flag, False)) for flag in SETTING_FLAGS}
        return cls(**flags, permissions=permissions)


@dataclass(frozen=True)
class ParticipantRecord:
    """A person in a call (or waiting to enter it), as everybody sees them."""

    id: str
    user_id: str
    name: str
    role: Role
    host: bool = False  # the teacher, or a co-host
    cohost: bool = False
    audio: bool = True
    video: bool = True
    screen: bool = False
    node: str = ""  # which server node holds their connection

    def with_media(self, flags: dict[str, bool]) -> ParticipantRecord:
        """The record with some of its media flags (audio, video, screen) changed."""
        unknown = set(flags) - {"audio", "video", "screen"}
        if unknown:
            raise ValueError(f"not media flags: {sorted(unknown)}")
        return replace(
            self,
            audio=flags.get("audio", self.audio),
            video=flags.get("video", self.video),
            screen=flags.get("screen", self.screen),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"] = self.role.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParticipantRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["role"] = Role(values["role"])
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """What other participants get to see."""
        data = self.to_json()
        data.pop("node")
        return data


@dataclass(frozen=True)
class ChatMessage:
    id: str  # assigned by the store, increasing within a call
    kind: str  # "text" or "system"
    text: str
    at: datetime
    author_id: str | None = None  # participant id; None for system messages
    author_user_id: str | None = None
    author_name: str | None = None
    author_role: Role | None = None
    filtered: bool = False  # the profanity filter masked something
    data: dict[str, Any] = field(default_factory=dict)  # for system messages
    room: str = ""  # "" the main room, a breakout room id, or "*" (every room)

    @property
    def seq(self) -> int:
        """The message's place in the call's chat (1, 2, 3, ...): its id as a number.
        A resuming client names the last one it saw (docs/protocol.md "resume")."""
        return int(self.id) if self.id.isdigit() else 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["author_role"] = self.author_role.value if self.author_role else None
        out["seq"] = self.seq
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatMessage:
        values = dict(data)
        values.pop("seq", None)  # derived from the id
        values["at"] = datetime.fromisoformat(values["at"])
        values["author_role"] = Role(values["author_role"]) if values.get("author_role") else None
        return cls(**values)


@dataclass(frozen=True)
class AttendanceRecord:
    """One person's presence in a call, for the journal's attendance report."""

    user_id: str
    name: str
    role: Role
    first_join: datetime
    last_leave: datetime | None = None
    seconds_present: float = 0.0
    # Set while connected: when the current stretch of presence began.
    present_since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "role": self.role.value,
            "first_join": self.first_join.isoformat(),
            "last_leave": self.last_leave.isoformat() if self.last_leave else None,
            "seconds_present": self.seconds_present,
            "present_since": self.present_since.isoformat() if self.present_since else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttendanceRecord:
        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        first = when(data["first_join"])
        assert first is not None
        return cls(
            user_id=data["user_id"],
            name=data["name"],
            role=Role(data["role"]),
            first_join=first,
            last_leave=when(data.get("last_leave")),
            seconds_present=float(data.get("seconds_present", 0.0)),
            present_since=when(data.get("present_since")),
        )

    def joined(self, at: datetime) -> AttendanceRecord:
        if self.present_since is not None:
            return self
        return replace(self, present_since=at)

    def left(self, at: datetime) -> AttendanceRecord:
        if self.present_since is None:
            return replace(self, last_leave=at)
        stretch = max(0.0, (at - self.present_since).total_seconds())
        return replace(
            self,
            last_leave=at,
            present_since=None,
            seconds_present=self.seconds_present + stretch,
        )


# Who may watch a recording: people with a school profile, never anonymous guests.
RECORDING_VIEWER_ROLES = (Role.TEACHER, Role.STUDENT, Role.PARENT)


class RecordingStatus:
    RECORDING = "recording"  # being recorded now
    PROCESSING = "processing"  # stopped; the file is being finished
    READY = "ready"  # the file can be watched
    FAILED = "failed"  # nothing usable was written


@dataclass(frozen=True)
class RecordingRecord:
    """A recording of a call: what is listed, who may watch it, where the file is."""

    id: str
    call_id: str
    integration: str  # the journal whose lesson it is (tokens of other journals never match)
    title: str
    author_user_id: str
    author_name: str
    started_at: datetime
    status: str = RecordingStatus.RECORDING
    # Roles whose participants may watch it: a subset of RECORDING_VIEWER_ROLES.
    visibility: tuple[Role, ...] = RECORDING_VIEWER_ROLES
    ended_at: datetime | None = None
    duration_s: float = 0.0
    size_bytes: int = 0
    file: str = ""  # file name inside the recordings directory
    thumbnail: str | None = None  # likewise, a JPEG
    # False when the recorder died and the file holds what was written until then.
    complete: bool = True
    error: str | None = None
    # The node whose recordings directory holds the file ("": this node's, as before nodes).
    node: str = ""

    def visible_to(self, role: Role) -> bool:
        return role in self.visibility and role in RECORDING_VIEWER_ROLES

    def links(self, base_url: str = "") -> tuple[str | None, str | None]:
        """Where participants watch it: (the video's URL, the still's URL); None while there
        is nothing to watch. Paths on this server unless `base_url` is given."""
        if self.status != RecordingStatus.READY:
            return None, None
        base = f"{base_url}/recordings/{self.id}"
        return f"{base}/file", f"{base}/thumbnail" if self.thumbnail else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        data["visibility"] = [role.value for role in self.visibility]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordingRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        ended = values.get("ended_at")
        values["ended_at"] = datetime.fromisoformat(ended) if ended else None
        values["visibility"] = tuple(Role(v) for v in values.get("visibility", ()))
        return cls(**values)
