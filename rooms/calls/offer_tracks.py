"""What a subscribe offer tells the page about each of its m-sections (docs/protocol.md
"subscribe_offer"): whose media it is, or that it is an audio slot."""

from __future__ import annotations

from collections.abc import Iterable

from sfu.consumer import Consumer


def describe_tracks(
    tracks: dict[str, Consumer], slots: Iterable[Consumer]
) -> dict[str, dict[str, object]]:
    """mid -> {participant_id, kind, source}; an audio slot carries anybody's voice,
    changing with no new offer, so it names nobody: {kind: audio, slot: true}."""
    slot_set = set(slots)
    described: dict[str, dict[str, object]] = {}
    for mid, consumer in tracks.items():
        if consumer in slot_set:
            described[mid] = {"kind": "audio", "slot": True}
            continue
        producer = consumer.producer
        if producer is None:
            continue
        described[mid] = {
            "participant_id": producer.app_data["participant_id"],
            "kind": producer.kind,
            "source": producer.app_data["source"],
        }
    return described
