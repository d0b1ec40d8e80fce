"""Composite recording of a call: a grid of the participants' video (a shared screen large),
everyone's audio mixed, written as fragmented MP4 (H.264 + AAC) by a separate process.

The SFU side uses `RecorderProcess` (this package's parent-side modules import only the
standard library); decoding, composing and encoding happen in the child
(`recording.worker` -> `recording.session`).
"""

from recording.options import RecordingOptions, RecordingOptionsError
from recording.process import RecorderError, RecorderProcess, RecordingResult
from recording.protocol import CodecSpec

__all__ = [
    "CodecSpec",
    "RecorderError",
    "RecorderProcess",
    "RecordingOptions",
    "RecordingOptionsError",
    "RecordingResult",
]
