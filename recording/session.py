"""One recording inside the recorder process: sources, tiles, the mix and the file.

Driven by `recording.worker` in event time: every command and packet carries the parent's
monotonic time, and frame `i` shows what had arrived by `t0 + i / fps`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc.rtp import RtpPacket

from recording.compositor import Compositor, Tile
from recording.labels import LabelRenderer
from recording.mixer import AudioMixer
from recording.options import RecordingOptions
from recording.protocol import (
    AddParticipant,
    AddSource,
    Command,
    Event,
    RemoveParticipant,
    RemoveSource,
    SetLabel,
)
from recording.sources import AudioSource, Timeline, UnsupportedCodec, VideoSource
from recording.thumbnail import ThumbnailPicker
from recording.writer import FragmentedMp4Writer

logger = logging.getLogger(__name__)

# A video source asks the SFU for a keyframe at most this often.
KEYFRAME_REQUEST_INTERVAL_S = 1.0


@dataclass(slots=True)
class Participant:
    label: str
    explicit: bool
    sources: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SessionCounters:
    unknown_packets: int = 0
    bad_packets: int = 0
    wrong_payload_type: int = 0
    skipped_frames: int = 0
    # Of sources removed since: dropped packets and decode errors.
    removed_dropped: int = 0
    removed_decode_errors: int = 0


class RecordingSession:
    def __init__(
        self,
        output: Path,
        options: RecordingOptions,
        t0: float,
        notify: Callable[[Event], None] = lambda event: None,
    ) -> None:
        self.output = output
        self.options = options
        self.t0 = t0
        self._notify = notify
        self.timeline = Timeline(t0, options.audio_rate)
        self.mixer = AudioMixer(options.audio_rate, options.audio_channels)
        self.compositor = Compositor(
            options.width,
            options.height,
            aspect=options.tile_aspect,
            screen_fraction=options.screen_share_fraction,
            labels=LabelRenderer(options.font_path),
        )
        self.writer = FragmentedMp4Writer(output, options)
        self.thumbnails = ThumbnailPicker(min(options.thumbnail_width, options.width))
        self.sources: dict[str, VideoSource | AudioSource] = {}
        self._specs: dict[str, AddSource] = {}
        self._source_labels: dict[str, str] = {}
        self.participants: dict[str, Participant] = {}
        self._screens: list[str] = []  # newest last
        self._keyframe_asked: dict[str, float] = {}
        self.counters = SessionCounters()

    # -- commands and packets -------------------------------------------------------------

    def command(self, command: Command, t: float) -> None:
        match command:
            case AddParticipant(participant_id, label):
                participant = self.participants.get(participant_id)
                if participant is None:
                    self.participants[participant_id] = Participant(label, explicit=True)
                else:
                    participant.label = label
                    participant.explicit = True
            case RemoveParticipant(participant_id):
                self.participants.pop(participant_id, None)
            case AddSource():
                self._add_source(command)
            case RemoveSource(source_id):
                self._remove_source(source_id)
            case SetLabel(target_id, label):
                if target_id in self.participants:
                    self.participants[target_id].label = label
                elif target_id in self._source_labels:
                    self._source_labels[target_id] = label
            case _:
                logger.warning("unknown command %r", command)

    def _add_source(self, spec: AddSource) -> None:
        if spec.source_id in self.sources:
            self._remove_source(spec.source_id)
        try:
            source: VideoSource | AudioSource
            if spec.kind == "video":
                source = VideoSource(spec.source_id, spec.codec)
            else:
                source = AudioSource(
                    spec.source_id,
                    spec.codec,
                    self.mixer,
                    self.timeline,
                    late_tolerance_s=self.options.audio_late_tolerance_s,
                )
        except UnsupportedCodec:
            self._notify(("warning", f"source {spec.source_id}: unsupported {spec.codec.mime}"))
            return
        self.sources[spec.source_id] = source
        self._specs[spec.source_id] = spec
        self._source_labels[spec.source_id] = spec.label
        if spec.screen and spec.kind == "video":
            self._screens.append(spec.source_id)
            return
        owner = spec.participant_id or spec.source_id
        participant = self.participants.get(owner)
        if participant is None:
            participant = self.participants[owner] = Participant(spec.label, explicit=False)
        participant.sources.append(spec.source_id)

    def _remove_source(self, source_id: str) -> None:
        source = self.sources.pop(source_id, None)
        spec = self._specs.pop(source_id, None)
        self._source_labels.pop(source_id, None)
        self._keyframe_asked.pop(source_id, None)
        if source is not None:
            source.close()
            self.counters.removed_dropped += source.stats.dropped
            self.counters.removed_decode_errors += source.stats.decode_errors
        if source_id in self._screens:
            self._screens.remove(source_id)
        if spec is None:
            return
        owner = spec.participant_id or spec.source_id
        participant = self.participants.get(owner)
        if participant is not None and source_id in participant.sources:
            participant.sources.remove(source_id)
            if not participant.sources and not participant.explicit:
                del self.participants[owner]

    def packet(self, source_id: str, t: float, data: bytes) -> None:
        source = self.sources.get(source_id)
        if source is None:
            self.counters.unknown_packets += 1
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.counters.bad_packets += 1
            return
        if source.payload_types and packet.payload_type not in source.payload_types:
            self.counters.wrong_payload_type += 1
            return
        source.push(packet, t)
        if isinstance(source, VideoSource) and source.wants_keyframe:
            last = self._keyframe_asked.get(source_id)
            if last is None or t - last >= KEYFRAME_REQUEST_INTERVAL_S:
                self._keyframe_asked[source_id] = t
                self._notify(("keyframe", source_id))

    # -- output ---------------------------------------------------------------------------

    def tiles(self, t: float) -> tuple[list[Tile], list[VideoSource | None]]:
        """Tiles in layout order (the newest screen share first, shown large; then people),
        each with the video source to draw in it, if any."""
        tiles: list[Tile] = []
        videos: list[VideoSource | None] = []
        for source_id in reversed(self._screens):
            source = self.sources.get(source_id)
            tiles.append(Tile(self._source_labels.get(source_id, ""), None, screen=True))
            videos.append(source if isinstance(source, VideoSource) else None)
        stale = self.options.stale_video_s
        for participant in self.participants.values():
            camera: VideoSource | None = None
            for source_id in reversed(participant.sources):
                source = self.sources.get(source_id)
                if isinstance(source, VideoSource):
                    camera = source
                    break
            if camera is not None and (camera.frame_time is None or t - camera.frame_time > stale):
                camera = None  # camera off (the SFU stopped forwarding) or not started yet
            tiles.append(Tile(participant.label, None))
            videos.append(camera)
        return tiles, videos

    def video_frame(self, index: int, t: float) -> None:
        """Compose and encode frame `index`, showing the state at time `t`."""
        tiles, videos = self.tiles(t)
        rects = self.compositor.layout(tiles)
        for tile, rect, video in zip(tiles, rects, videos, strict=True):
            size = video.size if video is not None else None
            if video is None or size is None:
                continue
            w, h = self.compositor.frame_size(rect, *size)
            tile.frame = video.rgb(w, h)
        canvas = self.compositor.compose(tiles, rects)
        self.writer.write_video(canvas, index)
        self.thumbnails.offer(t - self.t0, canvas)

    def skip_frame(self) -> None:
        self.counters.skipped_frames += 1

    def audio_until(self, t: float) -> None:
        """Encode the mix up to time `t` (everything due before it has been placed)."""
        position = self.timeline.position(t)
        if position > self.mixer.position:
            self.writer.write_audio(self.mixer.read_until(position))

    def finish(self, end: float) -> dict[str, Any]:
        self.audio_until(end)
        self.writer.close()
        duration = max(0.0, end - self.t0)
        thumbnail = self.thumbnails.write(self.output.with_suffix(".jpg"), duration)
        dropped = (
            self.counters.unknown_packets
            + self.counters.bad_packets
            + self.counters.wrong_payload_type
            + self.counters.removed_dropped
            + sum(source.stats.dropped for source in self.sources.values())
        )
        return {
            "duration_s": duration,
            "video_frames": self.writer.video_frames,
            "skipped_frames": self.counters.skipped_frames,
            "audio_samples": self.writer.audio_samples,
            "thumbnail": str(thumbnail) if thumbnail is not None else None,
            "dropped_packets": dropped,
            "late_audio_samples": self.mixer.late_samples,
            "decode_errors": self.counters.removed_decode_errors
            + sum(s.stats.decode_errors for s in self.sources.values()),
            "encoder": self.writer.encoder_name,
            "cpu_s": time.process_time(),
        }
