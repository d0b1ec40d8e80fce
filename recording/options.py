"""Recording settings, validated once when a recording is set up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Sample rates the AAC encoder accepts (MPEG-4 sampling frequency index).
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
DEFAULT_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class RecordingOptionsError(ValueError):
    """A recording setting is out of range."""


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    """What the composite recording looks like and how it is paced.

    Every field has a default that suits a lesson; the constructor refuses values the
    encoder or the layout could not honour.
    """

    width: int = 1280
    height: int = 720
    fps: int = 15
    audio_rate: int = 48000
    audio_channels: int = 1
    # H.264 (libx264): constant-quality mode; lower is better and bigger.
    video_crf: int = 23
    video_preset: str = "veryfast"
    # A cap on the video bitrate (bits/s; None: quality only). Keeps an hour of a noisy
    # class under about 1.4 GB at the default.
    video_max_bitrate: int | None = 3_000_000
    audio_bitrate: int = 96_000
    # A keyframe (and so an MP4 fragment) this often: a crash loses at most this much.
    keyframe_interval_s: float = 1.0
    # Aspect of a person's tile in the grid (frames inside are letterboxed).
    tile_aspect: float = 16 / 9
    # The share's part of the canvas width when a screen is shared.
    screen_share_fraction: float = 0.75
    # A camera tile falls back to the placeholder when no frame came for this long.
    stale_video_s: float = 2.0
    # Wall-clock allowance for packets to reach the recorder before a frame is composed.
    input_lag_s: float = 0.12
    # Audio is mixed this far behind real time so late packets still find their place.
    # A file has no latency to keep: this absorbs home-link jitter and a busy server's
    # stalls (a sender that catches up after 0.2-0.4 s), which would otherwise be gaps.
    audio_delay_s: float = 0.6
    # Beyond this lag behind real time, frames are skipped (not composed) to catch up.
    max_behind_s: float = 3.0
    # Packets waiting in the parent before new ones are dropped (a few seconds of a full class).
    max_pending_packets: int = 20_000
    # How often the parent hands queued packets to the recorder process.
    flush_interval_s: float = 0.02
    # Width of the JPEG still next to the recording (at most the canvas width; 0: none).
    thumbnail_width: int = 640
    font_path: Path | None = DEFAULT_FONT
    # The recorder runs this much nicer than the server (0..19): when CPU is short, the
    # forwarding of the live call goes first and the recorder catches up (or skips frames).
    niceness: int = 10

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise RecordingOptionsError(message)

        for name in ("width", "height", "fps", "audio_rate", "audio_channels", "video_crf"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool), f"{name} must be an int")
        need(160 <= self.width <= 3840 and self.width % 2 == 0, "width: even, 160..3840")
        need(90 <= self.height <= 2160 and self.height % 2 == 0, "height: even, 90..2160")
        need(1 <= self.fps <= 60, "fps: 1..60")
        need(self.audio_rate in AAC_RATES, f"audio_rate: one of {AAC_RATES}")
        need(self.audio_channels in (1, 2), "audio_channels: 1 or 2")
        need(0 <= self.video_crf <= 51, "video_crf: 0..51")
        need(bool(self.video_preset), "video_preset: an x264 preset name")
        need(
            self.video_max_bitrate is None or 100_000 <= self.video_max_bitrate <= 50_000_000,
            "video_max_bitrate: None or 100000..50000000",
        )
        need(16_000 <= self.audio_bitrate <= 512_000, "audio_bitrate: 16000..512000")
        need(0.1 <= self.keyframe_interval_s <= 10, "keyframe_interval_s: 0.1..10")
        need(0.25 <= self.tile_aspect <= 4, "tile_aspect: 0.25..4")
        need(0.5 <= self.screen_share_fraction <= 0.9, "screen_share_fraction: 0.5..0.9")
        need(self.stale_video_s > 0, "stale_video_s: > 0")
        need(0 <= self.input_lag_s <= 2, "input_lag_s: 0..2")
        need(0.05 <= self.audio_delay_s <= 2, "audio_delay_s: 0.05..2")
        need(self.max_behind_s >= 0.5, "max_behind_s: >= 0.5")
        need(self.max_pending_packets >= 100, "max_pending_packets: >= 100")
        need(0.001 <= self.flush_interval_s <= 0.5, "flush_interval_s: 0.001..0.5")
        need(0 <= self.thumbnail_width <= 3840, "thumbnail_width: 0 (none)..3840")
        need(0 <= self.niceness <= 19, "niceness: 0..19")

    @property
    def audio_late_tolerance_s(self) -> float:
        """How far behind its arrival time a packet may still be placed by its timestamp:
        all of the delay but a little, so a late packet still lands ahead of the read head."""
        return max(0.6 * self.audio_delay_s, self.audio_delay_s - 0.05)

    @property
    def gop_frames(self) -> int:
        """Frames between keyframes."""
        return max(1, round(self.keyframe_interval_s * self.fps))
