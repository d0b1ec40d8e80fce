"""What the SFU side sends to the recorder process, and what comes back.

Kept free of numpy/PyAV imports: the parent (the server) imports this module.

Parent -> child: pickled batches, each a list of `(source_id, t, data)` items in feed
order, `t` being `time.monotonic()` in the parent (the clock is system-wide, so the child
reads the same one). A packet item has a source id and the RTP packet's bytes; a command
item has `source_id=None` and one of the command dataclasses below as data.

Child -> parent: `Event` tuples: ("ready", pid), ("keyframe", source_id),
("result", dict), ("error", text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["audio", "video"]
Item = tuple[str | None, float, Any]
Event = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """An RTP codec as negotiated: the SFU's `RTCRtpCodecParameters` in plain fields."""

    mime: str
    clock_rate: int
    channels: int | None = None
    payload_type: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, codec: CodecSpec | Mapping[str, Any] | Any) -> CodecSpec:
        """From a CodecSpec, a mapping with mime/clock_rate/channels/payload_type/parameters,
        or anything shaped like aiortc's RTCRtpCodecParameters."""
        if isinstance(codec, CodecSpec):
            return codec
        if isinstance(codec, Mapping):
            return cls(
                mime=str(codec["mime"]),
                clock_rate=int(codec["clock_rate"]),
                channels=codec.get("channels"),
                payload_type=codec.get("payload_type"),
                parameters=dict(codec.get("parameters") or {}),
            )
        return cls(
            mime=str(codec.mimeType),
            clock_rate=int(codec.clockRate),
            channels=getattr(codec, "channels", None),
            payload_type=getattr(codec, "payloadType", None),
            parameters=dict(getattr(codec, "parameters", None) or {}),
        )

    @property
    def name(self) -> str:
        return self.mime.split("/")[-1].upper()


@dataclass(frozen=True, slots=True)
class AddParticipant:
    participant_id: str
    label: str


@dataclass(frozen=True, slots=True)
class RemoveParticipant:
    participant_id: str


@dataclass(frozen=True, slots=True)
class AddSource:
    source_id: str
    kind: Kind
    codec: CodecSpec
    label: str
    screen: bool = False
    participant_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveSource:
    source_id: str


@dataclass(frozen=True, slots=True)
class SetLabel:
    """Renames a participant, or a source's tile (a screen share) when no participant has
    that id."""

    target_id: str
    label: str


@dataclass(frozen=True, slots=True)
class Stop:
    """End the recording at the item's time `t`; nothing follows."""


Command = AddParticipant | RemoveParticipant | AddSource | RemoveSource | SetLabel | Stop
