"""Calls: who is in which call, with what rights, and what they publish and receive.

A call belongs to one lesson and owns one SFU router. Shared state (who is in
the call or waiting, hands, settings and permissions, chat, attendance) lives
in the store; what only this node can hold (connections, transports,
producers) lives in memory here. The package's files, one concern each:

- errors.py: CallError, CallEnded
- participant.py: Participant (one person's connection), safe_send
- core.py: CallCore - joining, media, rights, rooms, leaving; the only owner of
  the lock and of `participants` / `waiting`; ChatPolicy
- moderation.py: hands, waiting room, mute / remove / co-host, permissions, settings
- chat_control.py: a person's chat message
- polls.py: polls (ask, answer once, results, close into a chat card)
- privacy.py: privacy mode's rule (pupils' cameras reach hosts only)
- recording_control.py: recording the main room
- breakout_control.py: breakout rooms
- weak_links.py: each person's downlink judged, videos held back, "audio only";
  downlink.py: the SFU's counters of one subscriber turned into a sample;
  subscriber_link.py: one person's link state; link_measure.py: congestion and
  what the link carried, from a sample; link_probes.py: probes before a climb;
  link_messages.py: the connection_quality messages
- speakers.py: who speaks in each room, `active_speakers` when it changes
- call.py: Call - the core plus one of each concern (why composition: see there)
- registry.py: CallRegistry, the calls of this node

Importers use this package's names: `from rooms.calls import Call, CallError, ...`.
"""

from rooms.calls.call import Call
from rooms.calls.core import CallCore, ChatPolicy
from rooms.calls.errors import CallEnded, CallError
from rooms.calls.participant import Disconnect, Participant, PresenceObserver, Send
from rooms.calls.registry import CallRegistry

__all__ = [
    "Call",
    "CallCore",
    "CallEnded",
    "CallError",
    "CallRegistry",
    "ChatPolicy",
    "Disconnect",
    "Participant",
    "PresenceObserver",
    "Send",
]
