"""Which quality of a person's video this subscriber receives (simulcast layers).

A browser publishes its camera in three sizes (web_client/static/js/media.js);
the SFU forwards one of them to each subscriber (sfu/layer_select.py). The
person's page asks for the size it shows the video at: `low`, `medium` or
`high` (docs/protocol.md, `video_quality`). A video published without simulcast
has one quality, whatever is asked.
"""

from __future__ import annotations

from rooms.calls.core import CallCore
from rooms.calls.participant import Participant

# The layers of the call page's simulcast, smallest first.
QUALITY_LAYERS = {"low": 0, "medium": 1, "high": 2}


def set_video_quality(
    core: CallCore, participant: Participant, participant_id: str, source: str, quality: str
) -> None:
    """Forward `quality` of `participant_id`'s `source` video to `participant` (kept for
    that video while it is published, also across renegotiations)."""
    core.require_admitted(participant)
    target = core.target(participant_id)
    producer = target.producers.get(source)
    subscriber = participant.subscriber
    if producer is None or subscriber is None:
        return
    subscriber.prefer_layer(producer.id, QUALITY_LAYERS[quality])
