"""What each person's page shows of every video, and what they chose to save.

Adaptive subscription (docs/protocol.md "Track views", as LiveKit's adaptive
stream): the page says, per remote video (a person and a source), whether it is
visible at all and the size it is shown at, in device pixels (`track_view`).
An invisible video (another page of the grid, the call minimised, the tab
hidden) is held back for that person: the SFU forwards none of its packets and
resumes it from a keyframe when it is visible again (`SubscriberTransport.hold`,
through rooms/calls/weak_links.py, which owns the one hold set per person). A
visible one is forwarded in the smallest simulcast layer that covers its size.
A video never reported is visible at the largest size (older clients, bots).

A camera shown as a thumbnail (a tile the top layer is not needed for) gets half
the frame rate: its lower VP8 temporal layers only (sfu/temporal_layers.py, about
60 % of the bits), unless it is a host's, in the spotlight or speaking.

"Save data" (`save_data`): `audio_screen` holds back every camera (audio and
shared screens go on); `one_video` every video but one, the one that matters
most now: the room's spotlight, else a shared screen, else the loudest speaker
with a camera on, else a host's camera; at most the middle layer of it.

Views are kept by person and source, not by producer: a republished camera is
seen as it was. They are bounded by the people in the call (a view of somebody
unknown is ignored: they may just have left).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rooms.calls.core import CallCore
from rooms.calls.participant import Participant
from sfu.producer import Producer

SAVE_DATA_MODES = ("off", "audio_screen", "one_video")
# The call page's camera (web_client/static/js/media.js, publisher.js): the top
# layer 640x360, each lower one half the size of the next.
TOP_LAYER_SIZE = (640, 360)
# In "one video" the video is at most this layer (the middle: ~320x180, <= 450 kbit/s),
# so audio and the one video fit in 0.6 Mbit/s.
SAVE_DATA_TOP_LAYER = 1
# A thumbnail's temporal layers: TID 0 and 1 (half the frame rate).
THUMBNAIL_TEMPORAL_CAP = 1
# What they carry of a layer's bits (libwebrtc's allocation: 40 + 20 %; Chromium measured
# 55 %, docs/performance.md): what the bandwidth plan counts a thumbnail at.
THUMBNAIL_RATE_SHARE = 0.6

_UNSET = -1  # no layer told yet
VideoKey = tuple[str, str]  # (participant id, source)
Spotlight = Callable[[str | None], dict[str, Any] | None]
Speaking = Callable[[str | None], list[dict[str, Any]]]


def layer_for_size(layer_count: int, width: int, height: int) -> int:
    """The smallest layer (0 the smallest) whose nominal size covers width x height."""
    top_width, top_height = TOP_LAYER_SIZE
    for index in range(layer_count):
        scale = 2 ** (layer_count - 1 - index)
        if top_width // scale >= width and top_height // scale >= height:
            return index
    return layer_count - 1


@dataclass
class Viewer:
    """One person's page: the videos it does not show, the sizes of those it does."""

    hidden: set[VideoKey] = field(default_factory=set)
    sizes: dict[VideoKey, tuple[int, int]] = field(default_factory=dict)
    save_data: str = "off"
    layers: dict[str, int | None] = field(default_factory=dict)  # told the SFU, by producer
    temporal: dict[str, int | None] = field(default_factory=dict)  # the same, temporal caps
    layers_told_to: object = None  # the subscriber transport they were told (a new one: again)
    # Layers the person's bandwidth estimate allows, below the wanted ones (by producer id,
    # rooms/layer_fit.py through rooms/calls/weak_links.py).
    caps: dict[str, int] = field(default_factory=dict)


class TrackViews:
    def __init__(self, call: CallCore, spotlight: Spotlight, speaking: Speaking) -> None:
        self.call = call
        self._spotlight = spotlight  # a room's spotlight (rooms/calls/spotlight.py)
        self._speaking = speaking  # a room's speakers, loudest first (rooms/calls/speakers.py)
        self.viewers: dict[str, Viewer] = {}  # by participant id
        self.thumbnails_half_rate = True  # [media] thumbnail_frame_rate

    def _viewer(self, participant: Participant) -> Viewer:
        present = self.call.participants
        for gone in set(self.viewers) - set(present):
            del self.viewers[gone]
        viewer = self.viewers.setdefault(participant.id, Viewer())
        viewer.hidden = {key for key in viewer.hidden if key[0] in present}
        viewer.sizes = {key: size for key, size in viewer.sizes.items() if key[0] in present}
        return viewer

    def set_views(self, participant: Participant, views: Iterable[dict[str, Any]]) -> None:
        """What the page shows now (a `track_view` message's `views`)."""
        self.call.require_admitted(participant)
        viewer = self._viewer(participant)
        unknown = None
        for view in views:
            key = (view["participant_id"], view["source"])
            if key[0] not in self.call.participants:
                unknown = key[0]  # may have just left: the rest still counts
                continue
            if key[0] == participant.id:
                continue
            if view["visible"]:
                viewer.hidden.discard(key)
                viewer.sizes[key] = (view.get("width", 0), view.get("height", 0))
            else:
                viewer.hidden.add(key)
        self.apply_layers(participant)
        if unknown is not None:
            self.call.target(unknown)  # CallError unknown_participant

    def set_save_data(self, participant: Participant, mode: str) -> None:
        self.call.require_admitted(participant)
        self._viewer(participant).save_data = mode
        self.apply_layers(participant)

    def save_data(self, participant: Participant) -> str:
        viewer = self.viewers.get(participant.id)
        return viewer.save_data if viewer is not None else "off"

    def apply_layers(self, participant: Participant, caps: Mapping[str, int] | None = None) -> None:
        """Each video in the layer that covers the size it is shown at (capped in save
        data, and by `caps`: what the link's estimate allows, kept until the next caps);
        only what changed is passed on (this runs every second, from the links)."""
        subscriber = participant.subscriber
        viewer = self.viewers.get(participant.id)
        if caps is not None and (viewer is not None or caps):
            viewer = self._viewer(participant)
            viewer.caps = dict(caps)
        if subscriber is None or viewer is None:
            return
        if viewer.layers_told_to is not subscriber:  # a replaced connection (ICE restart)
            viewer.layers, viewer.temporal = {}, {}
            viewer.layers_told_to = subscriber
        wanted: dict[str, int | None] = {}
        temporal: dict[str, int | None] = {}
        lively = self._lively(participant.room)
        for key, producer in self._videos(participant).items():
            layer = self._wanted(viewer, key, producer)
            # Save data's one video is not a thumbnail, however small its layer.
            small = layer is not None and layer < producer.layer_count - 1
            thumbnail = small and viewer.save_data == "off" and self.thumbnails_half_rate
            tcap = THUMBNAIL_TEMPORAL_CAP if thumbnail and key[0] not in lively else None
            cap = viewer.caps.get(producer.id)
            if cap is not None and (layer is None or cap < layer):
                layer = cap
            wanted[producer.id], temporal[producer.id] = layer, tcap
            if viewer.layers.get(producer.id, _UNSET) != layer:
                subscriber.prefer_layer(producer.id, layer)
            if viewer.temporal.get(producer.id, _UNSET) != tcap:
                subscriber.cap_temporal(producer.id, tcap)
        viewer.layers, viewer.temporal = wanted, temporal

    def _lively(self, room: str | None) -> set[str]:
        """Whose thumbnails keep their full frame rate: hosts, the spotlight, speakers."""
        lively = {p.id for p in self.call.in_room(room) if p.host}
        lively.update(str(s["participant_id"]) for s in self._speaking(room))
        spot = self.spotlit(room)
        if spot is not None:
            lively.add(spot)
        return lively

    def _wanted(self, viewer: Viewer, key: VideoKey, producer: Producer) -> int | None:
        """The layer the page's size asks for (None: the top), capped in save data."""
        size = viewer.sizes.get(key)
        layer = None if size is None else layer_for_size(producer.layer_count, *size)
        if viewer.save_data != "off":
            layer = SAVE_DATA_TOP_LAYER if layer is None else min(layer, SAVE_DATA_TOP_LAYER)
        return layer

    def wanted_layers(self, participant: Participant) -> dict[str, int]:
        """The layer each video's tile asks for, by producer id (the top when untold)."""
        viewer = self.viewers.get(participant.id) or Viewer()
        wanted = {}
        for key, producer in self._videos(participant).items():
            layer = self._wanted(viewer, key, producer)
            top = producer.layer_count - 1
            wanted[producer.id] = top if layer is None else min(layer, top)
        return wanted

    def rate_shares(self, participant: Participant) -> dict[str, float]:
        """By producer id, the share of each layer's bitrate this person is sent: a
        thumbnail's (capped to its lower temporal layers) for those, else none."""
        viewer = self.viewers.get(participant.id)
        if viewer is None:
            return {}
        capped = (pid for pid, cap in viewer.temporal.items() if cap is not None)
        return dict.fromkeys(capped, THUMBNAIL_RATE_SHARE)

    def spotlit(self, room: str | None) -> str | None:
        """The participant whose video a room (None: the main one) has in the spotlight."""
        spot = self._spotlight(room)
        return None if spot is None else str(spot["participant_id"])

    def _videos(self, participant: Participant) -> dict[VideoKey, Producer]:
        """The videos of the others in this person's room, by person and source."""
        return {
            (person.id, source): producer
            for person in self.call.in_room(participant.room)
            if person is not participant
            for source, producer in person.producers.items()
            if producer.kind == "video"
        }

    def hidden(self, participant: Participant) -> set[str]:
        """Producer ids of the videos this person's page does not show."""
        viewer = self.viewers.get(participant.id)
        return self._producers(viewer.hidden) if viewer is not None else set()

    def saved(self, participant: Participant) -> set[str]:
        """Producer ids of the videos held back by this person's "save data"."""
        viewer = self.viewers.get(participant.id)
        if viewer is None or viewer.save_data == "off":
            return set()
        videos = {key: producer.id for key, producer in self._videos(participant).items()}
        if viewer.save_data == "audio_screen":
            return {pid for (_, source), pid in videos.items() if source != "screen"}
        kept = self._one_video(participant.room, videos)
        return {pid for key, pid in videos.items() if key != kept}

    def _one_video(self, room: str | None, videos: dict[VideoKey, str]) -> VideoKey | None:
        """The one video of "one video": spotlight, screen, speaker, host's camera."""
        spot = self._spotlight(room)
        if spot is not None:
            for source in (spot["source"], "camera"):
                key = (spot["participant_id"], source)
                if key in videos and not self._paused(key):
                    return key
        screens = [key for key in videos if key[1] == "screen" and not self._paused(key)]
        if screens:
            return min(screens, key=self._host_first)
        for speaker in self._speaking(room):
            key = (speaker["participant_id"], "camera")
            if key in videos and not self._paused(key):
                return key
        cameras = [key for key in videos if not self._paused(key)]
        return min(cameras, key=self._host_first) if cameras else None

    def _host_first(self, key: VideoKey) -> tuple[bool, str]:
        owner = self.call.participants.get(key[0])
        return (not (owner is not None and owner.host), key[0])

    def _paused(self, key: VideoKey) -> bool:
        owner = self.call.participants.get(key[0])
        producer = owner.producers.get(key[1]) if owner is not None else None
        return producer is None or producer.paused

    def _producers(self, keys: Iterable[VideoKey]) -> set[str]:
        ids = set()
        for owner_id, source in keys:
            owner = self.call.participants.get(owner_id)
            producer = owner.producers.get(source) if owner is not None else None
            if producer is not None:
                ids.add(producer.id)
        return ids
