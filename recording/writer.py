"""Fragmented MP4 (H.264 + AAC) with PyAV.

`empty_moov` puts an empty index at the start and `frag_keyframe` closes a fragment
(moof + mdat) at every keyframe; with `flush_packets` each finished fragment reaches the
file at once, so a recorder killed mid-way leaves a file that plays up to its last
complete fragment.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from recording.options import RecordingOptions

logger = logging.getLogger(__name__)

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# Tried in order; the first that opens is used (libx264 is in PyAV's wheels).
H264_ENCODERS = ("libx264", "libopenh264", "h264")
AAC_FRAME = 1024
# FFmpeg's AAC encoder delays its output by one frame ("priming"). Audio frames start at
# this pts and the first samples of the mix are left out, so that the priming packet
# lands at 0, no stream gets shifted, and sound stays aligned with the picture.
AAC_PRIMING = 1024


class WriterError(RuntimeError):
    pass


class FragmentedMp4Writer:
    """Video frames at given frame indices (1/fps time base) and continuous audio.

    `write_video(rgb, index)` encodes the canvas as frame `index`; indices must grow but
    may skip (frames not composed in time). `write_audio(samples)` appends int16 samples
    (n x channels); audio has no gaps, silence is written as zeros by the caller.
    """

    def __init__(self, path: Path, options: RecordingOptions) -> None:
        self.path = path
        self.options = options
        self._container = av.open(
            str(path),
            "w",
            format="mp4",
            options={"movflags": MOVFLAGS, "flush_packets": "1"},
        )
        try:
            self._video = self._open_video()
            self._audio = self._container.add_stream(
                "aac",
                rate=options.audio_rate,
                layout="mono" if options.audio_channels == 1 else "stereo",
            )
            self._audio.bit_rate = options.audio_bitrate
        except Exception:
            self._container.close()
            raise
        self._to_yuv = VideoReformatter()  # keeps its conversion context between frames
        self._video_time_base = Fraction(1, options.fps)
        self._audio_time_base = Fraction(1, options.audio_rate)
        self._layout = "mono" if options.audio_channels == 1 else "stereo"
        self._pending_audio = np.zeros((options.audio_channels, 0), dtype=np.float32)
        self._audio_pts = AAC_PRIMING
        self._skip_left = AAC_PRIMING
        self._samples_in = 0
        self._last_index = -1
        self.video_frames = 0
        self.closed = False

    @property
    def encoder_name(self) -> str:
        return self._video.codec_context.name

    @property
    def audio_samples(self) -> int:
        """Samples taken by `write_audio()` so far."""
        return self._samples_in

    @property
    def video_end_index(self) -> int:
        """One past the last frame index written."""
        return self._last_index + 1

    def _open_video(self) -> av.VideoStream:
        opts = self.options
        last_error: Exception | None = None
        for name in H264_ENCODERS:
            if name != "h264" and name not in av.codecs_available:
                continue
            options = {"bf": "0", "g": str(opts.gop_frames)}
            if name == "libx264":
                options |= {
                    "preset": opts.video_preset,
                    "crf": str(opts.video_crf),
                    "keyint_min": str(opts.gop_frames),
                    "sc_threshold": "0",
                }
                if opts.video_max_bitrate is not None:
                    options |= {
                        "maxrate": str(opts.video_max_bitrate),
                        "bufsize": str(2 * opts.video_max_bitrate),
                    }
            try:
                stream = self._container.add_stream(name, rate=opts.fps, options=options)
                if not isinstance(stream, av.VideoStream):
                    raise ValueError("not a video encoder")
                stream.width = opts.width
                stream.height = opts.height
                stream.pix_fmt = "yuv420p"
                stream.codec_context.gop_size = opts.gop_frames
                stream.codec_context.open()
                return stream
            except (av.FFmpegError, ValueError) as exc:
                logger.info("H.264 encoder %s unusable: %s", name, exc)
                last_error = exc
        raise WriterError(f"no usable H.264 encoder: {last_error}")

    def write_video(self, rgb: np.ndarray, index: int) -> None:
        if index <= self._last_index:
            raise ValueError(f"frame index {index} after {self._last_index}")
        frame = self._to_yuv.reformat(
            av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p"
        )
        frame.pts = index
        frame.time_base = self._video_time_base
        self._last_index = index
        self.video_frames += 1
        for packet in self._video.encode(frame):
            self._container.mux(packet)

    def write_audio(self, samples: np.ndarray) -> None:
        """Append int16 samples, shape (n, channels)."""
        self._samples_in += samples.shape[0]
        if self._skip_left:
            skip = min(self._skip_left, samples.shape[0])
            samples = samples[skip:]
            self._skip_left -= skip
        if samples.shape[0] == 0:
            return
        planar = samples.T.astype(np.float32) * (1 / 32768)
        self._pending_audio = np.concatenate((self._pending_audio, planar), axis=1)
        self._encode_audio(final=False)

    def _encode_audio(self, final: bool) -> None:
        pending = self._pending_audio
        done = 0
        while pending.shape[1] - done >= AAC_FRAME or (final and pending.shape[1] > done):
            chunk = pending[:, done : done + AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout=self._layout
            )
            frame.sample_rate = self.options.audio_rate
            frame.pts = self._audio_pts
            frame.time_base = self._audio_time_base
            self._audio_pts += chunk.shape[1]
            done += chunk.shape[1]
            for packet in self._audio.encode(frame):
                self._container.mux(packet)
        self._pending_audio = pending[:, done:]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._encode_audio(final=True)
            for packet in self._video.encode(None):
                self._container.mux(packet)
            for packet in self._audio.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


def probe_duration(path: Path) -> float:
    """Seconds covered by a (possibly cut short) MP4: the latest packet end of any stream.

    Reads packet headers only (no decoding). 0.0 when the file cannot be read at all.
    """
    end = 0.0
    try:
        with av.open(str(path)) as container:
            try:
                for packet in container.demux():
                    if packet.pts is None or packet.time_base is None:
                        continue
                    duration = packet.duration or 0
                    end = max(end, float((packet.pts + duration) * packet.time_base))
            except av.FFmpegError:
                pass  # a truncated last fragment
    except (av.FFmpegError, OSError):
        return 0.0
    return end
