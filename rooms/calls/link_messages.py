"""The "connection_quality" messages (docs/protocol.md): what the person is told of their
own link, and the brief the hosts get."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rooms.calls.participant import Participant
from rooms.calls.subscriber_link import SubscriberLink
from rooms.link_quality import Quality
from sfu.subscriber_transport import SubscriberTransport


def own_message(
    participant: Participant,
    link: SubscriberLink,
    paused: list[dict[str, str]],
    save_data: str = "off",
) -> dict[str, Any]:
    return {
        "type": "connection_quality",
        "participant_id": participant.id,
        **levels(link.quality),
        "paused": paused,
        "audio_only": link.audio_only,
        "save_data": save_data,
    }


def levels(quality: Quality) -> dict[str, str]:
    """`quality` as 1.2 clients know it ("bad" is "weak" to them), and the `level`."""
    return {
        "quality": Quality.WEAK.value if quality is Quality.BAD else quality.value,
        "level": quality.value,
    }


def described(subscriber: SubscriberTransport, held: Collection[str]) -> list[dict[str, str]]:
    """Whose video each held-back stream is, as the page names tiles."""
    described = [
        {
            "participant_id": str(producer.app_data.get("participant_id", "")),
            "source": str(producer.app_data.get("source", "")),
        }
        for producer in (consumer.producer for consumer in subscriber.consumers)
        if producer is not None and producer.id in held
    ]
    return sorted(described, key=lambda d: (d["participant_id"], d["source"]))
