"""Privacy mode (a host's setting): pupils see only the hosts and shared screens.

The rule is the server's, not the page's: while it is on, nobody but a host is
sent the camera of someone who is not a host, so no consumer of it exists for
them (rooms/calls/core.py `forward`, the only place subscriptions are made;
rooms/calls/moderation.py applies a change of the setting, or of who is a host,
to the consumers that exist). Microphones and screen shares reach everyone.
"""

from __future__ import annotations

from rooms.calls.participant import Participant
from sfu.producer import Producer


def shown(
    privacy_mode: bool, viewer: Participant, owner: Participant | None, producer: Producer
) -> bool:
    """May `viewer` receive `producer` (published by `owner`, if still in the call)?"""
    if not privacy_mode or viewer.host or producer.app_data.get("source") != "camera":
        return True
    return owner is not None and owner.host


def pinned(owner: Participant | None, producer: Producer) -> bool:
    """Whether every page shows `producer`: a host's camera, a shared screen. The media
    plane never parks it past a subscriber's video bound (sfu/video_slots.py)."""
    return producer.app_data.get("source") == "screen" or (owner is not None and owner.host)
