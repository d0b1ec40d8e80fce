"""Per-source RTP -> decoded media, with aiortc's own depayloaders, jitter buffer and decoders.

`VideoSource` reassembles frames in aiortc's `JitterBuffer`, decodes them and keeps the
latest picture (scaled to RGB on demand, cached until the next picture). `AudioSource`
decodes every packet, resamples it to the mix format and places it on the mixer's
timeline by its RTP timestamp (the mixer's ring is the audio jitter buffer: a packet's
position comes from its timestamp, so reordering and loss need no buffering here).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace

import av
import numpy as np
from aiortc.codecs import depayload, get_decoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av.video.reformatter import VideoReformatter

from recording.mixer import AudioMixer
from recording.protocol import CodecSpec
from sfu.aiortc_hooks import jitter_buffer_add
from sfu.red import parse_red, red_primary_type

logger = logging.getLogger(__name__)

# Video packets held while waiting for a missing one (aiortc's receiver uses 512 too).
VIDEO_JITTER_CAPACITY = 512
# With packets coming but no picture for this long, the source starts over at a keyframe.
VIDEO_STALL_S = 1.0
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
SUPPORTED = {"video/vp8", "video/h264", "audio/opus", "audio/pcmu", "audio/pcma", "audio/g722"}


class UnsupportedCodec(ValueError):
    pass


def codec_parameters(spec: CodecSpec) -> RTCRtpCodecParameters:
    if spec.mime.lower() not in SUPPORTED:
        raise UnsupportedCodec(spec.mime)
    return RTCRtpCodecParameters(
        mimeType=spec.mime,
        clockRate=spec.clock_rate,
        channels=spec.channels,
        payloadType=spec.payload_type if spec.payload_type is not None else 0,
        parameters=dict(spec.parameters),
    )


class Timeline:
    """Positions in samples since the recording's start, from parent monotonic times."""

    def __init__(self, t0: float, rate: int) -> None:
        self.t0 = t0
        self.rate = rate

    def position(self, t: float) -> int:
        return round((t - self.t0) * self.rate)


def _signed32(delta: int) -> int:
    return ((delta + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class SourceStats:
    __slots__ = ("decode_errors", "dropped", "frames", "packets", "reanchors", "recovered")

    def __init__(self) -> None:
        self.packets = 0
        self.frames = 0
        self.dropped = 0
        self.decode_errors = 0
        self.reanchors = 0
        self.recovered = 0  # audio packets that never came, decoded from RED's redundancy


class VideoSource:
    kind = "video"

    def __init__(self, source_id: str, codec: CodecSpec) -> None:
        self.source_id = source_id
        self.codec = codec
        self.payload_types = frozenset(p for p in (codec.payload_type,) if p is not None)
        self._params = codec_parameters(codec)
        self._is_vp8 = codec.name == "VP8"
        self._decoder = get_decoder(self._params)
        self._jitter = JitterBuffer(capacity=VIDEO_JITTER_CAPACITY, is_video=True)
        self._reformatter = VideoReformatter()
        self.stats = SourceStats()
        self.frame: av.VideoFrame | None = None
        self.frame_time: float | None = None  # arrival time of the latest picture
        self._serial = 0
        self._rgb_key: tuple[int, int, int] | None = None
        self._rgb: np.ndarray | None = None
        self._seen_keyframe = not self._is_vp8
        # When the jitter buffer last handed over a frame (or the first packet came), and
        # packets added since: packets but no frame for a while means it waits on a hole.
        self._last_release: float | None = None
        self._packets_since_release = 0
        # Set when a keyframe is needed to go on (first frames were not one, a loss, a
        # decode error); cleared by the next picture.
        self.wants_keyframe = False

    def push(self, packet: RtpPacket, arrival: float) -> None:
        self.stats.packets += 1
        if self._last_release is None:
            self._last_release = arrival
        elif self._packets_since_release and arrival - self._last_release > VIDEO_STALL_S:
            # A hole that never filled (or the camera came back after a pause): drop what
            # is held and start over from the next keyframe.
            self._jitter = JitterBuffer(capacity=VIDEO_JITTER_CAPACITY, is_video=True)
            self._seen_keyframe = not self._is_vp8
            self._last_release = arrival
            self._packets_since_release = 0
            self.wants_keyframe = True
        self._packets_since_release += 1
        try:
            payload = packet.payload
            depayloaded = depayload(self._params, payload) if payload else b""
        except ValueError:
            self.stats.dropped += 1
            return
        pli, encoded = jitter_buffer_add(self._jitter, packet, depayloaded)
        if pli:
            self.wants_keyframe = True
        if encoded is not None:
            self._last_release = arrival
            self._packets_since_release = 0
            self._decode(encoded, arrival)

    def _decode(self, encoded: JitterFrame, arrival: float) -> None:
        if not encoded.data:
            return
        if not self._seen_keyframe:
            # VP8 payload header: the P bit (bit 0 of the first byte) is 0 on keyframes.
            if encoded.data[0] & 0x01:
                self.wants_keyframe = True
                return
            self._seen_keyframe = True
        try:
            frames = self._decoder.decode(encoded)
        except av.FFmpegError as exc:
            self.stats.decode_errors += 1
            self.wants_keyframe = True
            logger.debug("video %s: decode failed: %s", self.source_id, exc)
            return
        for frame in frames:
            if not isinstance(frame, av.VideoFrame):
                continue  # a video decoder gives video frames only
            self.frame = frame
            self.frame_time = arrival
            self._serial += 1
            self.stats.frames += 1
            self.wants_keyframe = False

    def rgb(self, width: int, height: int) -> np.ndarray | None:
        """The latest picture scaled to width x height, RGB; cached until the next picture."""
        if self.frame is None or width < 2 or height < 2:
            return None
        key = (self._serial, width, height)
        if key != self._rgb_key:
            scaled = self._reformatter.reformat(
                self.frame, width=width, height=height, format="rgb24", interpolation="BILINEAR"
            )
            self._rgb = scaled.to_ndarray()
            self._rgb_key = key
        return self._rgb

    @property
    def size(self) -> tuple[int, int] | None:
        if self.frame is None:
            return None
        return (self.frame.width, self.frame.height)

    def close(self) -> None:
        self.frame = None
        self._rgb = None


class AudioSource:
    """One audio producer: Opus (or G.711/G.722) packets, or RED (RFC 2198) over Opus.

    Of a RED packet the primary block is decoded, and its redundant blocks stand in
    for the packets just before it when those never came (lost on the publisher's
    uplink): the recording gets the same protection a subscriber does."""

    kind = "audio"

    def __init__(
        self,
        source_id: str,
        codec: CodecSpec,
        mixer: AudioMixer,
        timeline: Timeline,
        *,
        late_tolerance_s: float,
        ahead_tolerance_s: float = 0.5,
    ) -> None:
        self.source_id = source_id
        self.codec = codec
        self._red_pt: int | None = None
        self._inner_pt = codec.payload_type
        if codec.mime.lower() == "audio/red":
            self._red_pt, self._inner_pt = codec.payload_type, red_primary_type(codec.parameters)
            if self._inner_pt is None:
                raise UnsupportedCodec(f"{codec.mime} without its primary payload type")
            codec = replace(codec, mime="audio/opus", payload_type=self._inner_pt)
        # What the producer may send: RED, and the codec RED carries.
        self.payload_types = frozenset(p for p in (self._red_pt, self._inner_pt) if p is not None)
        self._params = codec_parameters(codec)
        self._decoder = get_decoder(self._params)
        self._mixer = mixer
        self._timeline = timeline
        self._channels = mixer.channels
        self._resampler = av.AudioResampler(
            format="s16", layout="mono" if mixer.channels == 1 else "stereo", rate=mixer.rate
        )
        self._ratio = mixer.rate / codec.clock_rate
        self._late = round(late_tolerance_s * mixer.rate)
        self._ahead = round(ahead_tolerance_s * mixer.rate)
        self._last_ts: int | None = None
        self._last_pos = 0
        self._highest_seq: int | None = None
        self._recent: deque[int] = deque(maxlen=64)
        self._recent_set: set[int] = set()
        self.stats = SourceStats()

    def push(self, packet: RtpPacket, arrival: float) -> None:
        self.stats.packets += 1
        if self._red_pt is not None and packet.payload_type == self._red_pt:
            self._push_red(packet, arrival)
            return
        if not self._first_time(packet.sequence_number):
            self.stats.dropped += 1  # a duplicate would double the sound
            return
        if packet.payload:
            self._decode(packet.payload, packet.timestamp, arrival)

    def _push_red(self, packet: RtpPacket, arrival: float) -> None:
        blocks = parse_red(packet.payload)
        seq = packet.sequence_number
        if blocks is None or any(b.payload_type != self._inner_pt for b in blocks):
            self.stats.dropped += 1
            return
        previous = self._highest_seq
        if not self._first_time(seq):
            self.stats.dropped += 1
            return
        # The k-th block back from the primary is the sender's packet seq - k. Only a gap
        # that the blocks cover is filled: a longer one is a pause (nothing to hear).
        count = len(blocks) - 1
        gap = (seq - previous) % SEQ_MOD if previous is not None else 0
        for index, block in enumerate(blocks[:-1]):
            back = count - index
            if back < gap <= count + 1 and block.data and self._first_time((seq - back) % SEQ_MOD):
                self.stats.recovered += 1
                self._decode(
                    block.data, (packet.timestamp - block.timestamp_offset) % TS_MOD, arrival
                )
        if blocks[-1].data:
            self._decode(blocks[-1].data, packet.timestamp, arrival)

    def _first_time(self, seq: int) -> bool:
        """Remember `seq`; False when it was seen already."""
        if seq in self._recent_set:
            return False
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)
        if self._highest_seq is None or 0 < (seq - self._highest_seq) % SEQ_MOD < SEQ_MOD // 2:
            self._highest_seq = seq
        return True

    def _decode(self, payload: bytes, timestamp: int, arrival: float) -> None:
        position = self._place(timestamp, arrival)
        try:
            data = depayload(self._params, payload)
            frames = self._decoder.decode(JitterFrame(data=data, timestamp=timestamp))
        except (av.FFmpegError, ValueError) as exc:
            self.stats.decode_errors += 1
            logger.debug("audio %s: decode failed: %s", self.source_id, exc)
            return
        for frame in frames:
            if not isinstance(frame, av.AudioFrame):
                continue  # an audio decoder gives audio frames only
            frame.pts = None
            for out in self._resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1, self._channels)
                self.stats.frames += 1
                used = self._mixer.add(position, samples)
                if used < samples.shape[0]:
                    self.stats.dropped += 1
                position += samples.shape[0]

    def _place(self, timestamp: int, arrival: float) -> int:
        """Mixer position for a packet: follows its RTP timestamp from the previous packet,
        unless that strays from the arrival time (start, pause, clock drift, a burst after a
        stall): then the source re-anchors at the arrival time."""
        expected = self._timeline.position(arrival)
        if self._last_ts is None:
            position = expected
        else:
            delta = _signed32(timestamp - self._last_ts)
            position = self._last_pos + round(delta * self._ratio)
            if position < expected - self._late or position > expected + self._ahead:
                self.stats.reanchors += 1
                position = expected
        self._last_ts = timestamp
        self._last_pos = position
        return position

    def close(self) -> None:
        pass
